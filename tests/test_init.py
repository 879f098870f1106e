"""`bpttcheck init` and the "no style matched" message on class-based models of several shapes
(tests/classmodels/, written for these tests in the styles real code uses): the inspection
names what the file defines, init writes a functional-style wrapper that `bpttcheck run`
passes for the correct model with no edit, and fails with the right group and diagnosis for a
planted bug. Only the wrapper's marked lines are guesses; none of these models needs an edit."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bpttcheck import glue, inspection
from bpttcheck.check.engine import Options, check

MODELS = Path(__file__).parent / "classmodels"

# model file -> (class, methods the message must name, a planted bug: (correct line, buggy line),
#               the diagnosis it must get, groups that must fail)
CASES = {
    "char_rnn_class": ("RNN", ["train(self, inputs"],
                       ("dWhh += np.dot(dhraw, hs[t - 1].T)", "dWhh += np.dot(dhraw, hs[t].T)"),
                       "rnn.dwhh-uses-current-h", {"Whh"}),
    "lstm_class": ("LSTM", ["lossFun(self, inputs, targets, hprev, cprev)"],
                   ("dc_next = dc * f", "dc_next = dc"), "lstm.dc-next-missing-forget",
                   {"Wf", "bf"}),
    "elman_attr_grads": ("ElmanRNN", ["forward(self, inputs, h0)", "backward(self, dy)"],
                         ("da = (1.0 - self.hs[t + 1] ** 2) * dh", "da = dh"),
                         "rnn.tanh-derivative-missing", {"Wxh", "Whh", "bh"}),
    "dict_grads_class": ("CharRNN", ["train_step(self, inputs, targets, h_prev)"],
                         ('grads["W_hh"] += np.outer(da, hs[t - 1])',
                          'grads["W_hh"] += np.outer(da, hs[t])'),
                         "rnn.dwhh-uses-current-h", {"Whh"}),
    "gru_class": ("GRU", ["forward(self, inputs, targets, h0)", "backward(self)"],
                  ("dh_prev = dh * z", "dh_prev = 0 * dh"), "gru.direct-path-missing", {"Wz"}),
}


def bpttcheck(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bpttcheck", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def copied(tmp_path: Path, stem: str, bug: tuple[str, str] | None = None) -> Path:
    src = (MODELS / f"{stem}.py").read_text()
    if bug:
        assert src.count(bug[0]) == 1, bug[0]
        src = src.replace(bug[0], bug[1])
    dst = tmp_path / f"{stem}.py"
    dst.write_text(src)
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(CASES))
def test_init_writes_a_wrapper_that_passes_the_correct_model(tmp_path, stem):
    model = copied(tmp_path, stem)
    p = bpttcheck("init", str(model))
    assert p.returncode == 0, p.stderr
    wrapper = tmp_path / f"{stem}_bpttcheck.py"
    assert f"wrote {wrapper}" in p.stdout and f"next: bpttcheck run {wrapper}" in p.stdout
    text = wrapper.read_text()
    assert glue.written_by_init(text)
    ast.parse(text)
    # the guesses are marked, and none of them is one these models need to change
    r = check(str(wrapper), Options(seed=0))
    assert r.verdict == "pass", (r.error, [c.message for c in r.checks if c.status == "fail"])
    assert r.style == "functional"


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(CASES))
def test_wrapper_names_a_planted_bug(tmp_path, stem):
    _, _, bug, diagnosis, groups = CASES[stem]
    model = copied(tmp_path, stem, bug)
    assert bpttcheck("init", str(model)).returncode == 0
    r = check(str(tmp_path / f"{stem}_bpttcheck.py"), Options(seed=0))
    assert r.verdict == "fail"
    assert groups <= {g.name for g in r.groups if g.status == "fail"}
    assert r.diagnoses and r.diagnoses[0].id == diagnosis, [d.id for d in r.diagnoses]


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(CASES))
def test_no_style_message_names_the_class_its_methods_and_the_closest_style(tmp_path, stem):
    cls, methods, *_ = CASES[stem]
    model = copied(tmp_path, stem)
    r = check(str(model), Options(seed=0))
    assert r.verdict == "error" and r.error.kind == "interface"
    msg = r.error.message
    assert f"class {cls}(" in msg
    for m in methods:
        assert m in msg, (m, msg)
    assert "Closest style:" in msg and f"bpttcheck init {stem}.py" in msg
    assert re.search(r"self\.\w+ \([^)]*H", msg)  # the parameters, shapes in sizes X, H, Y


@pytest.mark.slow
def test_init_never_overwrites_and_force_replaces_only_its_own_wrapper(tmp_path):
    model = copied(tmp_path, "gru_class")
    wrapper = tmp_path / "gru_class_bpttcheck.py"
    assert bpttcheck("init", str(model)).returncode == 0
    again = bpttcheck("init", str(model))
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    wrapper.write_text(wrapper.read_text() + "# edited\n")
    assert bpttcheck("init", str(model), "--force").returncode == 0
    assert "# edited" not in wrapper.read_text()
    wrapper.write_text("# the user's own file\n")
    p = bpttcheck("init", str(model), "--force")
    assert p.returncode == 2 and "not written by bpttcheck init" in p.stderr
    assert wrapper.read_text() == "# the user's own file\n"


@pytest.mark.slow
def test_init_exit_codes_for_code_that_cannot_be_loaded_or_wrapped(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("def f(:\n")
    p = bpttcheck("init", str(bad))
    assert p.returncode == 3 and "syntax" in p.stderr
    plain = tmp_path / "plain.py"
    plain.write_text("import numpy as np\nWxh = np.zeros((4, 5))\n\n\ndef helper(x):\n"
                     "    return x\n")
    p = bpttcheck("init", str(plain))
    assert p.returncode == 3 and "found no class" in p.stderr and "Wxh (4, 5)" in p.stderr
    assert not (tmp_path / "plain_bpttcheck.py").exists()
    assert bpttcheck("init", str(tmp_path / "missing.py")).returncode == 2
    assert bpttcheck("init", str(tmp_path)).returncode == 2



# ---------------------------------------------------------------- inspection, no worker


def _found(src: str, tmp_path: Path) -> dict:
    import types
    mod = types.ModuleType("m")
    mod.__bpttcheck_source__ = src
    exec(compile(src, "m.py", "exec"), mod.__dict__)
    return inspection.inspect_module(mod)


def test_inspection_reads_shapes_roles_and_gate_order_from_the_source(tmp_path):
    src = (
        "import numpy as np\n"
        "class Net:\n"
        "    def __init__(self, word_dim, hidden_dim=100, bptt_truncate=4):\n"
        "        self.hd = hidden_dim\n"
        "        self.W = np.random.uniform(-1, 1, (4 * self.hd, hidden_dim + word_dim))\n"
        "        self.b = np.zeros(4 * hidden_dim)\n"
        "        self.V = np.random.randn(word_dim, hidden_dim)\n"
        "    def train_step(self, x, y, h, c):\n"
        "        a = self.W @ x\n"
        "        f, i, g, o = np.split(a, 4)\n"
        "        return loss, dW, db, dV, h, c\n"
        "Wxh = np.zeros((3, 7))\n")
    found = _found(src.replace("return loss", "loss = dW = db = dV = 0\n        return loss"),
                   tmp_path)
    (c,) = found["classes"]
    assert c["arch"] == "lstm" and c["stacked"] == "W" and c["gate_order"] == "figo"
    assert {p["attr"]: p["shape"] for p in c["params"]} == {
        "W": ["4*H", "H+X"], "b": ["4*H"], "V": ["X", "H"]}
    assert [a["role"] for a in c["ctor"]] == ["X", "H", None]
    assert found["arrays"] == [{"name": "Wxh", "shape": [3, 7]}]
    text, marks = glue.render(found, "net.py")
    ast.parse(text)
    assert "\"gate_order\": 'figo'" in text and "\"same_xy\": True" in text
    assert "model.train_step(list(inputs), list(targets), h0, c0)" in text
    assert not marks  # bptt_truncate has a default: nothing guessed


def test_closest_style_for_functions_and_arrays():
    found = {"classes": [], "arrays": [{"name": "Wxh", "shape": [4, 5]}],
             "functions": [{"name": "my_backward", "signature": "(dout, cache)",
                            "kind": "cache-backward", "returns": ["dx", "dW"], "line": 1}]}
    assert inspection.closest(found)[0] == "layers"
    msg = inspection.message(found, "f.py")
    assert "my_backward(dout, cache)" in msg and "Wxh (4, 5)" in msg
    found["functions"] = []
    assert inspection.closest(found)[0] == "karpathy"


def test_annotated_attributes_and_size_arguments_of_the_training_method(tmp_path):
    """Typed refactors of min-char-rnn: ``self.Wxh: Array = ...`` and a train method that also
    takes the vocabulary size and calls the initial state ``hidden_initial``."""
    src = (
        "import numpy as np\n"
        "class RNN:\n"
        "    def __init__(self, vocab_size: int, hidden_size: int, learning_rate: float):\n"
        "        self.vocab_size = vocab_size\n"
        "        self.Wxh: np.ndarray = np.random.randn(hidden_size, self.vocab_size) * 0.01\n"
        "        self.Whh: np.ndarray = np.random.randn(hidden_size, hidden_size) * 0.01\n"
        "        self.Why: np.ndarray = np.random.randn(self.vocab_size, hidden_size) * 0.01\n"
        "        self.bh: np.ndarray = np.zeros((hidden_size, 1))\n"
        "        self.by: np.ndarray = np.zeros((self.vocab_size, 1))\n"
        "    def train(self, inputs: list, targets: list, vocab_size: int,\n"
        "              hidden_initial: np.ndarray) -> tuple:\n"
        "        loss = dWxh = dWhh = dWhy = dbh = dby = hs = 0\n"
        "        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]\n")
    found = _found(src, tmp_path)
    (c,) = found["classes"]
    assert [p["shape"] for p in c["params"]] == [["H", "X"], ["H", "H"], ["X", "H"],
                                                 ["H", "1"], ["X", "1"]]
    msg = inspection.message(found, "m.py")
    assert "train(self, inputs, targets, vocab_size, hidden_initial) -> loss, dWxh" in msg
    assert "Closest style: karpathy" in msg
    text, marks = glue.render(found, "m.py")
    assert "model.train(list(inputs), list(targets), X, h0)" in text
    assert marks == ["guessed constructor argument learning_rate"]
