"""Integration: real worker processes on real files. Correct code passes in every style;
broken or hostile code ends in a verdict that names the cause."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from bpttcheck.check.engine import Options, check
from bpttcheck.sandbox.limits import Limits
from conftest import REF, ZOO, correct_files

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", correct_files(), ids=lambda p: p.name)
def test_correct_reference_passes(path):
    r = check(str(path), Options(seed=0))
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert r.diagnoses == []
    assert all(g.status == "pass" for g in r.groups)


def test_karpathy_min_char_rnn_with_its_training_loop_is_checkable():
    r = check(str(REF / "rnn_karpathy.py"), Options())
    assert r.verdict == "pass"
    assert r.style == "karpathy" and r.arch == "rnn"
    assert any(n.id == "load.skipped-loop" for n in r.notes)
    assert r.evaluations <= 8  # a passing check of a Karpathy-size model stays cheap


def test_mean_loss_is_detected_and_noted():
    r = check(str(REF / "rnn_mean_loss.py"), Options())
    assert r.verdict == "pass" and r.reduction == "mean"
    assert any(n.id == "loss.mean" for n in r.notes)


def test_undeclared_concatenation_is_inferred():
    r = check(str(REF / "lstm_xfirst_undeclared.py"), Options())
    assert r.verdict == "pass"
    assert any(n.id == "layout.inferred" for n in r.notes)


CLIPPED = '''
import numpy as np
BPTTCHECK = {"arch": "rnn"}
def loss_and_grads(p, xs, ys, h0):
    Wxh, Whh, Why, bh, by = p["Wxh"], p["Whh"], p["Why"], p["bh"], p["by"]
    hs, ps, loss = {-1: h0}, {}, 0.0
    for t, x in enumerate(xs):
        hs[t] = np.tanh(Wxh[:, x] + Whh @ hs[t-1] + bh)
        z = Why @ hs[t] + by
        e = np.exp(z - z.max()); ps[t] = e / e.sum()
        loss -= np.log(ps[t][ys[t]])
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dhn = np.zeros_like(h0)
    for t in reversed(range(len(xs))):
        dy = ps[t].copy(); dy[ys[t]] -= 1
        g["Why"] += np.outer(dy, hs[t]); g["by"] += dy
        dh = Why.T @ dy + dhn
        dr = (1 - hs[t]**2) * dh
        g["bh"] += dr; g["Wxh"][:, xs[t]] += dr; g["Whh"] += np.outer(dr, hs[t-1])
        dhn = Whh.T @ dr
    for v in g.values():
        np.clip(v, -CLIP, CLIP, out=v)
    return loss, g, hs[len(xs)-1]
'''


def test_clipping_inside_the_function_is_a_note_not_a_failure(tmp_module):
    # 0.9 pins a few entries of the default case (0.05 pinned nearly all: tests/test_clipping)
    r = check(tmp_module(CLIPPED.replace("CLIP", "0.9")), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert any(n.id == "grad.clipped" for n in r.notes)
    assert any(g.clipped_at == 0.9 for g in r.groups)


def test_wide_clip_changes_nothing(tmp_module):
    r = check(tmp_module(CLIPPED.replace("CLIP", "5.0")), Options())
    assert r.verdict == "pass" and not any(n.id == "grad.clipped" for n in r.notes)


HOSTILE = {
    "raises": ("def loss_and_grads(p, x, y, h):\n    raise ValueError('boom')\n", "exception", "model.py:2"),
    "syntax": ("def loss_and_grads(p, x, y, h)\n    return 1\n", "syntax", "model.py:1"),
    "sys_exit": ("import sys\ndef loss_and_grads(p, x, y, h):\n    sys.exit(0)\n", "exit", "model.py:3"),
    "os_exit": ("import os\ndef loss_and_grads(p, x, y, h):\n    os._exit(0)\n", "exit", None),
    "segfault": ("import ctypes\ndef loss_and_grads(p, x, y, h):\n    ctypes.string_at(0)\n", "crash", None),
    "loop_in_call": ("def loss_and_grads(p, x, y, h):\n    while True:\n        pass\n", "timeout", "model.py:[23]"),
    "loop_at_import": ("import time\nfor i in range(10**12):\n    time.sleep(0.01)\ndef loss_and_grads(p, x, y, h):\n    pass\n", "timeout", "model.py:[23]"),
    "wrong_type": ("def loss_and_grads(p, x, y, h):\n    return 'a', 'b', 'c'\n", "interface", None),
    "stub": ("def loss_and_grads(p, x, y, h):\n    pass\n", "not-implemented", None),
    "no_entry": ("x = 1\n", "interface", None),
    "missing_group": ("import numpy as np\ndef loss_and_grads(p, x, y, h):\n    return 1.0, {'Wxh': p['Wxh']}, h\n", "interface", None),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_code_ends_in_a_named_error(tmp_module, name):
    src, kind, line = HOSTILE[name]
    r = check(tmp_module(src), Options(limits=Limits(call_timeout=2.0, load_timeout=2.0)))
    assert r.verdict == "error", r
    assert r.error.kind == kind, r.error
    if line:
        assert r.error.line and re.match(line, r.error.line), r.error
    assert "Traceback" not in r.error.message


def test_user_files_are_not_touched(tmp_path):
    src = tmp_path / "model.py"
    src.write_text("open('input.txt', 'w').write('overwritten')\n"
                   "def loss_and_grads(p, x, y, h):\n    raise ValueError\n")
    (tmp_path / "input.txt").write_text("original")
    check(str(src), Options())
    assert (tmp_path / "input.txt").read_text() == "original"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bpttcheck", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_exit_codes_and_json(tmp_module, tmp_path):
    ok = _cli("run", str(REF / "rnn_functional.py"), "--json", str(tmp_path / "r.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "pass" and data["arch"] == "rnn" and data["error"] is None
    assert {g["name"] for g in data["groups"]} == {"Wxh", "Whh", "Why", "bh", "by"}
    assert data["evaluations"] > 0 and "total" in data["timings"] and data["tolerances"]
    bad = _cli("run", tmp_module("def loss_and_grads(p, x, y, h):\n    raise KeyError\n"))
    assert bad.returncode == 3 and "ERROR (exception)" in bad.stdout
    assert _cli("run", str(tmp_path / "nope.py")).returncode == 2
    assert _cli("run", str(REF / "rnn_functional.py"), "--arch", "cnn").returncode == 2


def test_truncated_bptt_required_full_is_localised_with_its_depth(tmp_module):
    src = CLIPPED.replace("CLIP", "1e9").replace(
        """    dhn = np.zeros_like(h0)
    for t in reversed(range(len(xs))):
        dy = ps[t].copy(); dy[ys[t]] -= 1
        g["Why"] += np.outer(dy, hs[t]); g["by"] += dy
        dh = Why.T @ dy + dhn
        dr = (1 - hs[t]**2) * dh
        g["bh"] += dr; g["Wxh"][:, xs[t]] += dr; g["Whh"] += np.outer(dr, hs[t-1])
        dhn = Whh.T @ dr
""", """    for t in range(len(xs)):
        dy = ps[t].copy(); dy[ys[t]] -= 1
        g["Why"] += np.outer(dy, hs[t]); g["by"] += dy
        dh = Why.T @ dy
        for s in range(t, max(t - 2, -1), -1):
            dr = (1 - hs[s]**2) * dh
            g["bh"] += dr; g["Wxh"][:, xs[s]] += dr; g["Whh"] += np.outer(dr, hs[s-1])
            dh = Whh.T @ dr
""")
    assert check(tmp_module(src), Options()).verdict == "pass"  # a technique (test_warnings)
    r = check(tmp_module(src), Options(checks={"bptt.truncated": "fail"}))
    assert r.verdict == "fail"
    assert r.diagnoses[0].id == "unmatched" and r.diagnoses[0].confidence == 0.0
    assert "truncated BPTT of depth 2" in r.diagnoses[0].evidence
    assert {g.name for g in r.groups if g.status == "fail"} == {"Wxh", "Whh", "bh"}


def test_a_file_in_a_big_folder_is_copied_within_bounds(tmp_path):
    deep = tmp_path
    for i in range(6):
        deep = deep / f"d{i}"
        deep.mkdir()
        (deep / "x.txt").write_text("x")
    src = tmp_path / "model.py"
    src.write_text("import os\nDEPTH = max(r.count(os.sep) for r, _, _ in os.walk('.'))\n"
                   "def loss_and_grads(p, x, y, h):\n    raise ValueError(DEPTH)\n")
    r = check(str(src), Options())
    assert r.error.kind == "exception" and "ValueError: 3" in r.error.message


SPLIT_LSTM = '''
import importlib.util, os
import numpy as np
# the reference beside this file: the OS sandbox shows the submission's folder, not the repository
spec = importlib.util.spec_from_file_location("ref", os.path.join(os.path.dirname(__file__), {ref!r}))
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
BPTTCHECK = {{"arch": "lstm", "split": True}}
NAMES = {{"f": "W_f", "i": "W_i", "g": "W_c", "o": "W_o"}}

def loss_and_grads(p, xs, ys, state):
    H = p["Whf"].shape[0]
    q = {{"b_f": p["bf"], "b_i": p["bi"], "b_c": p["bg"], "b_o": p["bo"], "W_v": p["Wy"], "b_v": p["by"]}}
    for g, n in NAMES.items():
        q[n] = np.concatenate([p["Wh" + g], p["Wx" + g]], axis=1)
    loss, gq, last = ref.loss_and_grads(q, xs, ys, state)
    out = {{"bf": gq["b_f"], "bi": gq["b_i"], "bg": gq["b_c"], "bo": gq["b_o"], "Wy": gq["W_v"], "by": gq["b_v"]}}
    for g, n in NAMES.items():
        out["Wh" + g], out["Wx" + g] = gq[n][:, :H], gq[n][:, H:]
    return loss, out, last
'''


def test_split_input_and_recurrent_matrices(tmp_module):
    path = tmp_module(SPLIT_LSTM.format(ref="lstm_ref.py"))
    shutil.copy(REF / "lstm_functional.py", os.path.join(os.path.dirname(path), "lstm_ref.py"))
    r = check(path, Options())
    assert r.verdict == "pass", (r.error, [c.message for c in r.checks if c.status == "fail"])
    assert "split" in r.layout


def test_declared_return_order_for_karpathy_style(tmp_path):
    from bpttcheck.spec import load_spec
    spec = tmp_path / "a.toml"
    spec.write_text('returns = ["loss", "dWxh", "dWhh", "dWhy", "dbh", "dby", "h"]\n')
    opts = Options(adapter_options=load_spec(str(spec)).adapter_options())
    assert check(str(REF / "rnn_karpathy.py"), opts).verdict == "pass"
    spec.write_text('returns = ["loss", "dWhh", "dWxh", "dWhy", "dbh", "dby", "h"]\n')
    opts = Options(adapter_options=load_spec(str(spec)).adapter_options())
    r = check(str(REF / "rnn_karpathy.py"), opts)  # declared wrongly: Wxh and Whh swapped
    assert r.verdict in ("fail", "error")


def test_junit_and_gradescope_for_a_buggy_lstm_and_a_crash(tmp_path, tmp_module):
    import xml.etree.ElementTree as ET

    from conftest import ZOO
    spec = tmp_path / "a.toml"
    spec.write_text('[points]\n"grad.*" = 2\ndefault = 0.5\n')
    j, g = tmp_path / "out" / "j.xml", tmp_path / "out" / "results.json"
    res = _cli("run", str(ZOO / "lstm_state_offset.py"), "--junit", str(j), "--gradescope", str(g),
               "--spec", str(spec), "-q")
    assert res.returncode == 1, res.stderr
    root = ET.parse(j).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) >= 5 and len({c.get("name") for c in cases}) == len(cases)
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert "grad.Wf" in failed and "grad.by" not in failed
    assert all(len(c.get("time").split(".")[1]) == 3 for c in cases)
    data = json.loads(g.read_text())
    by_name = {t["name"]: t for t in data["tests"]}
    assert by_name["grad.Wf"] == {**by_name["grad.Wf"], "score": 0.0, "max_score": 2.0,
                                  "status": "failed"}
    assert by_name["grad.by"]["score"] == 2.0 and by_name["forward.loss"]["max_score"] == 0.5
    assert data["score"] == sum(t["score"] for t in data["tests"])
    assert "lstm.state-offset" in data["output"]

    crash = tmp_module("import os\ndef loss_and_grads(p, x, y, h):\n    os._exit(1)\n")
    res = _cli("run", crash, "--junit", str(j), "--gradescope", str(g), "-q")
    assert res.returncode == 3
    err = ET.parse(j).getroot().find(".//error")
    assert err is not None and err.get("type") == "exit"
    assert json.loads(g.read_text())["tests"][0]["status"] == "failed"


def test_views_show_where_the_backward_pass_goes_wrong():
    """--html data: the flow of a missing dh_next matches the reference only at the last step;
    the finite-difference map says the forward is right (FD of the user's loss = reference)."""
    r = check(str(ZOO / "rnn_missing_dh_next_class.py"), Options(views=True))
    f = r.flow
    assert len(f.user_preact) == len(f.reference_preact) == r.sizes["T"]
    assert f.user_preact[-1] == pytest.approx(f.reference_preact[-1], rel=1e-9)
    assert any(abs(u - v) > 1e-3 * v for u, v in zip(f.user_preact[:-1], f.reference_preact[:-1], strict=False))
    hm = {h.group: h for h in r.heatmaps}
    assert set(hm) == {"Wxh", "Whh", "Why", "bh", "by"}
    whh = hm["Whh"]
    assert whh.row_axis == "hidden unit" and len(whh.diff) == r.sizes["H"]
    for name in ("Whh", "Wxh"):  # FD of the user's own loss disagrees with the user's gradient
        worst = max(abs(x) for row in hm[name].fd_minus_user for x in row)
        diff = max(abs(x) for row in hm[name].diff for x in row)
        assert worst == pytest.approx(diff, rel=1e-3) and hm[name].fd_tolerance < 1e-6 * worst


def test_views_of_a_correct_model_have_no_finite_difference_maps():
    r = check(str(REF / "lstm_functional.py"), Options(views=True))
    assert r.verdict == "pass" and r.heatmaps and r.flow.user_preact
    assert all(h.fd_minus_user is None for h in r.heatmaps)
    assert all(max(abs(x) for row in h.diff for x in row) <= h.tolerance for h in r.heatmaps)
    assert r.flow.user_preact == pytest.approx(r.flow.reference_preact, rel=1e-9)


@pytest.mark.parametrize("argv,want", [
    (["run", "m.py"], ("m.py", None, None, None, False)),
    (["run", "--spec", "a.toml", "m.py", "--timeout=3", "-q"], ("m.py", "a.toml", 3.0, None, False)),
    (["run", "m.c", "--sanitize", "--memory-mb", "512", "--json", "-"], ("m.c", None, None, 512, True)),
    (["run", "m.py", "--unknown"], None), (["grade", "x"], None), (["run", "--timeout", "x", "m.py"], None),
])
def test_the_entry_point_reads_what_the_early_worker_needs(argv, want):
    from bpttcheck.entry import _peek
    got = _peek(argv)
    if want is None:
        assert got is None
    else:
        assert (got["path"], got["spec"], got["timeout"], got["memory_mb"], got["sanitize"]) == want


def test_an_early_worker_is_used_only_with_the_same_limits(tmp_path):
    from bpttcheck.sandbox import session as runner
    src = REF / "rnn_functional.py"
    runner.prestart(str(src), Limits(call_timeout=7.0, load_timeout=7.0))
    assert runner.session(str(src), Limits()) is not None  # other limits: a new worker
    early = runner.prestarted(str(src), Limits(call_timeout=7.0, load_timeout=7.0))
    assert early is not None
    with runner.session(str(src), Limits(call_timeout=7.0, load_timeout=7.0)) as w:
        assert w is early
    assert not runner.any_prestarted()


def test_a_backward_loop_that_skips_t0_is_localised_to_its_bounds(tmp_module):
    src = (REF / "rnn_functional.py").read_text()
    assert "reversed(range(T))" in src
    r = check(tmp_module(src.replace("reversed(range(T))", "reversed(range(1, T))", 1)), Options())
    d = r.diagnoses[0]
    assert d.id == "unmatched" and "t = 0 never reach the gradients" in d.evidence
    assert "inside a single step" not in d.evidence and "-0.0" not in d.evidence


def test_flow_loss_steps_add_up_to_the_reported_loss():
    r = check(str(REF / "rnn_functional.py"), Options(views=True))
    assert sum(r.flow.loss_steps) == pytest.approx(r.loss["reference"], rel=1e-12)


def test_configuration_mistakes_are_named_as_such(tmp_path):
    r = check(str(REF / "rnn_karpathy.py"), Options(style="functional"))
    assert r.error.kind == "interface" and "looks like the karpathy style" in r.error.message
    r = check(str(REF / "lstm_functional.py"), Options(arch="rnn"))
    assert r.verdict == "error" and "is the declared arch" in r.error.message


@pytest.mark.parametrize("args,msg", [
    (["--json", "{tmp}"], "is a folder"),
    (["--json", "-", "--html", "-"], "only one report can go to stdout"),
])
def test_report_paths_that_cannot_work_are_usage_errors(tmp_path, args, msg):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(REF / "rnn_functional.py"),
                        *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr


def test_a_hang_inside_a_batch_of_calls_ends_within_two_call_timeouts(tmp_module):
    import time
    src = (REF / "rnn_functional.py").read_text().replace(
        "def loss_and_grads(params, inputs, targets, state):",
        "N = [0]\n\n\ndef loss_and_grads(params, inputs, targets, state):\n    N[0] += 1\n"
        "    while N[0] > 4:\n        pass", 1)
    t = time.perf_counter()
    r = check(tmp_module(src), Options(limits=Limits(call_timeout=1.5, load_timeout=5)))
    assert r.error.kind == "timeout" and "a batch of calls" in r.error.message
    # the loop's line: its test or its body, wherever the stack dump caught it
    assert re.search(r"while N\[0\] > 4|: pass$", r.error.line), r.error.line
    assert time.perf_counter() - t < 2 * 1.5 + 4
