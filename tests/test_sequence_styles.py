"""Whole-sequence styles people really write (reference/wild): the WildML tutorial class, the
deeplearning.ai Dinosaur Island model, the Karpathy-style extensions (Wcc/bcc, size globals,
absent biases) and declared model facts (check/model.py)."""
import re
from pathlib import Path

import numpy as np
import pytest

from bpttcheck.archmeta import Dims
from bpttcheck.check.engine import Options, check
from bpttcheck.check.model import ModelFacts, declared
from bpttcheck.oracle import rnn
from conftest import ROOT

WILD = ROOT / "reference" / "wild"
CONTRACT_IDS = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", (ROOT / "docs" / "CONTRACT.md")
                              .read_text(), re.MULTILINE))

# the files' group labels, in the checker's canonical names
WILDML = {"bptt.dLdU": "Wxh", "bptt.dLdV": "Why", "bptt.dLdW": "Whh"}
DLAI_CHAR = {"rnn_backward.dWax": "Wxh", "rnn_backward.dWaa": "Whh", "rnn_backward.dWya": "Why",
             "rnn_backward.db": "bh", "rnn_backward.dby": "by",
             "rnn_backward.da_next": None}  # dL/da0: a state gradient, not a group


def label(path: Path, key: str) -> str:
    m = re.search(rf"^# bpttcheck-{key}:\s*(.*)$", path.read_text(), re.MULTILINE)
    return m.group(1).strip() if m else ""


def labelled_groups(path: Path, names: dict) -> set[str]:
    groups = [g.strip() for g in label(path, "groups").split(",") if g.strip()]
    return {names[g] for g in groups} - {None}


def failing(r) -> set[str]:
    return {g.name for g in r.groups if g.status == "fail"}


def expected_id(path: Path) -> str:
    return label(path, "expect").split(";")[0].split(",")[0].strip()


def run(path: Path):
    return check(str(path), Options(seed=0))


# ---------------------------------------------------------------- WildML


def test_wildml_full_bptt_passes_with_model_note():
    r = run(WILD / "wildml" / "rnn_numpy_full_bptt.py")
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert r.style == "wildml"
    # no biases: no groups for them; the user's names in the table
    assert {(g.name, g.user_name) for g in r.groups} == {("Wxh", "U"), ("Whh", "W"), ("Why", "V")}
    assert r.sizes["Y"] == r.sizes["X"]
    note = next(n for n in r.notes if n.id == "model.variant")
    assert "no biases" in note.evidence and "h = 0" in note.evidence
    assert "bh and by" in note.evidence


FULL_BPTT_BUGS = ["bug_dldw_uses_current_state.py", "bug_w_not_transposed.py"]
TRUNCATED_BUGS = ["bug_delta_no_tanh_derivative.py", "bug_dldv_uses_prev_state.py"]


@pytest.mark.parametrize("name", FULL_BPTT_BUGS)
def test_wildml_bug_named_in_its_groups(name):
    path = WILD / "wildml" / name
    r = run(path)
    assert r.verdict == "fail"
    assert failing(r) == labelled_groups(path, WILDML)
    assert r.diagnoses[0].id == expected_id(path)


@pytest.mark.parametrize("name", TRUNCATED_BUGS)
def test_wildml_truncated_bug_fails_in_its_groups(name):
    # bptt_truncate=4 also costs the earliest step's share until truncation is recognised
    path = WILD / "wildml" / name
    r = run(path)
    assert r.verdict == "fail"
    assert labelled_groups(path, WILDML) <= failing(r)


def test_wildml_truncated_passes_with_note():
    r = run(WILD / "wildml" / "rnn_numpy.py")
    assert r.verdict == "pass"
    note = next(n for n in r.notes if n.id == "bptt.truncated")
    assert "bptt_truncate = 4" in note.evidence  # the tutorial's own setting


def test_wildml_params_modified():
    r = run(WILD / "bugs" / "params_modified_wildml_alias.py")
    assert r.verdict == "fail"
    failed = [c.name for c in r.checks if c.status == "fail"]
    assert failed == ["behaviour.inputs-unchanged"], failed
    assert "U" in next(c.message for c in r.checks if c.name == "behaviour.inputs-unchanged")


# ---------------------------------------------------------------- Dinosaur Island


def test_dinosaur_passes_as_dlai_char():
    r = run(WILD / "dlai" / "dinosaur_char_rnn.py")
    assert r.style == "dlai-char"
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert {g.user_name for g in r.groups} == {"Wax", "Waa", "Wya", "b", "by"}


@pytest.mark.parametrize("path", sorted((WILD / "dlai").glob("bug_char_*.py")), ids=lambda p: p.stem)
def test_dinosaur_bug_named_in_its_groups(path):
    r = run(path)
    assert r.style == "dlai-char"
    assert r.verdict == "fail"
    assert failing(r) == labelled_groups(path, DLAI_CHAR)
    want = expected_id(path)
    if want in CONTRACT_IDS:
        assert r.diagnoses[0].id == want


def test_dlai_char_params_modified():
    r = run(WILD / "bugs" / "params_modified_dlai_char.py")
    assert r.style == "dlai-char"
    assert [c.name for c in r.checks if c.status == "fail"] == ["behaviour.inputs-unchanged"]


def test_step_by_step_and_layer_files_are_not_dlai_char():
    from bpttcheck.adapters.dlai_char import DlaiCharAdapter

    class Mod:
        pass
    cs231n = Mod()
    cs231n.rnn_forward = lambda x, h0, Wx, Wh, b: None
    cs231n.rnn_backward = lambda dh, cache: None
    step = Mod()
    step.rnn_forward = lambda x, a0, parameters: None
    step.rnn_backward = lambda da, caches: None
    char = Mod()
    char.rnn_forward = lambda X, Y, a0, parameters, vocab_size=27: None
    char.rnn_backward = lambda X, Y, parameters, cache: None
    assert not DlaiCharAdapter.detect(cs231n, "x.py")
    assert not DlaiCharAdapter.detect(step, "x.py")
    assert DlaiCharAdapter.detect(char, "x.py")


def test_layer_api_file_still_layers():
    r = run(ROOT / "reference" / "layers" / "rnn_layers.py")
    assert r.style == "layers"


# ---------------------------------------------------------------- variants


@pytest.mark.parametrize("name", ["lstm_karpathy_wcc.py", "lstm_no_biases_karpathy.py",
                                  "rnn_no_output_bias.py", "rnn_vocab_only.py"])
def test_variant_passes(name):
    r = run(WILD / "variants" / name)
    assert r.verdict == "pass", (r.error, [c.message for c in r.checks if c.status == "fail"])


def test_absent_biases_are_no_groups_and_said():
    r = run(WILD / "variants" / "lstm_no_biases_karpathy.py")
    assert {g.name for g in r.groups} == {"Wf", "Wi", "Wg", "Wo", "Wy"}
    note = next(n for n in r.notes if n.id == "model.variant")
    assert "bf, bi, bg, bo and by were fixed at zero" in note.evidence
    r = run(WILD / "variants" / "rnn_no_output_bias.py")
    assert "by" not in {g.name for g in r.groups}
    assert any(n.id == "model.variant" and "no bias by" in n.evidence for n in r.notes)


def test_vocab_only_model_gets_y_equal_x():
    r = run(WILD / "variants" / "rnn_vocab_only.py")
    assert r.sizes["X"] == r.sizes["Y"]
    assert any(n.id == "model.variant" and "Y = X" in n.evidence for n in r.notes)


def test_gate_by_elimination(tmp_module):
    # Wcc is not a known name here: three gates are known, one (H, H+X) global is left
    src = (WILD / "variants" / "lstm_karpathy_wcc.py").read_text().replace("Wcc", "Wcell")
    src = src.replace("bcc", "bcell")
    r = check(tmp_module(src), Options())
    assert r.verdict == "pass"
    assert {g.user_name for g in r.groups} >= {"Wcell", "bcell"}


def test_missing_weight_is_still_an_error(tmp_module):
    src = (WILD / "variants" / "lstm_no_biases_karpathy.py").read_text()
    src = src.replace("Wo = np.random", "Qo = np.random").replace("Wg = np.random", "Qg = np.random")
    r = check(tmp_module(src), Options())
    assert r.verdict == "error" and r.error.kind == "interface"
    assert "no module globals for Wg, Wo" in r.error.message


KARPATHY_SIZES = '''
import numpy as np
vocab_size, hidden_size, seq_length = 3, 2, 25
Wxh = np.zeros((4, 5)); Whh = np.zeros((4, 4)); Why = np.zeros((5, 4))
bh = np.zeros((4, 1)); by = np.zeros((5, 1))
seen = []

def lossFun(inputs, targets, hprev):
    seen.append((vocab_size, hidden_size, seq_length))
    xs = np.zeros((vocab_size, 1))
    xs[inputs[-1]] = 1  # the one-hot sized from the global: fails unless it was set
    return 0.0, Wxh * 0, Whh * 0, Why * 0, bh * 0, by * 0, hprev
'''


def test_size_globals_set_for_the_call_and_restored():
    import types

    from bpttcheck.adapters.karpathy import KarpathyAdapter
    mod = types.ModuleType("m")
    mod.__bpttcheck_source__ = KARPATHY_SIZES
    exec(KARPATHY_SIZES, mod.__dict__)
    a = KarpathyAdapter(mod, "m.py", {})
    desc = a.describe()
    a.prepare(Dims(T=6, X=5, H=4, Y=5))
    P = {k: np.zeros(s) for k, s in a.arch.shapes(Dims(T=6, X=5, H=4, Y=5)).items()}
    a.call(P, [4] * 6, [0] * 6, (np.zeros(4),), desc["layouts"][0], True)
    assert mod.seen == [(5, 4, 6)]
    assert (mod.vocab_size, mod.hidden_size, mod.seq_length) == (3, 2, 25)


def test_lstm_signature_with_rnn_names_says_so(tmp_module):
    src = '''
import numpy as np
H, X = 3, 4
Wxh = np.zeros((4 * H, X)); Whh = np.zeros((4 * H, H)); Why = np.zeros((X, H))
bh = np.zeros((4 * H, 1)); by = np.zeros((X, 1))

def lossFun(inputs, targets, hprev, cprev):
    return 0.0, Wxh, Whh, Why, bh, by, hprev, cprev
'''
    r = check(tmp_module(src), Options())
    assert r.verdict == "error"
    assert "LSTM" in r.error.message and "stacked" in r.error.message


# ---------------------------------------------------------------- the reference side


def test_declared_arch_is_the_base_with_zeros():
    facts = ModelFacts(absent=("bh", "by"), zero_state=True, same_xy=True)
    arch = declared(rnn.ARCH, facts)
    assert arch.param_names == ("Wxh", "Whh", "Why")
    rng = np.random.default_rng(0)
    P = {k: rng.normal(size=s) for k, s in arch.shapes(Dims(T=4, X=5, H=3, Y=5)).items()}
    xs, ys = [0, 1, 2, 4], [1, 2, 3, 0]
    tr = arch.run(P, xs, ys, (rng.normal(size=3),))
    full = dict(P, bh=np.zeros(3), by=np.zeros(5))
    base = rnn.ARCH.run(full, xs, ys, (np.zeros(3),))
    assert tr.loss == pytest.approx(base.loss)
    assert set(tr.grads) == {"Wxh", "Whh", "Why"}
    for k in tr.grads:
        np.testing.assert_allclose(tr.grads[k], base.grads[k])
