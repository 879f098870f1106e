"""A layer function that writes into an array it was given fails, however it got the array:
the upstream gradient (dh, dnext_c), the cache, a parameter. Its gradients may be right, so
only the behaviour check catches it; the diagnosis names the function, the argument, the
line that writes into it and how much it changed, and gives a fix. Correct twins (a copy
first, writes into the function's own arrays only, a cache list consumed by pop) pass.

The subjects are written here: a small batched RNN (step and sequence) and an LSTM step in
the layer API, with one statement swapped per subject."""
import importlib.util
import shutil
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttcheck.adapters.layers import LayersAdapter
from bpttcheck.check.engine import Options, check
from bpttcheck.layer_api import BY_NAME
from bpttcheck.report_terminal import render
from conftest import ROOT

pytestmark = pytest.mark.slow

RNN = '''
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(prev_h @ Wh + x @ Wx + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    STEP_LINE
    return dpre @ Wx.T, dpre @ Wh.T, x.T @ dpre, prev_h.T @ dpre, np.sum(dpre, axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    hs = np.empty((N, T, h0.shape[1]))
    caches = []
    h = h0
    for t in range(T):
        h, c = rnn_step_forward(x[:, t, :], h, Wx, Wh, b)
        hs[:, t, :] = h
        caches.append(c)
    return hs, caches


def rnn_backward(dh, cache):
    FIRST_LINE
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = cache[0]
    dx = np.empty((N, T, x0.shape[1]))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    carry = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        LOOP_LINE
        dx[:, t, :], carry, gx, gh, gb = rnn_step_backward(up, STEP_CACHE)
        dWx += gx
        dWh += gh
        db += gb
    return dx, carry, dWx, dWh, db
'''

LSTM_STEP = '''
import numpy as np


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), _sig(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    CELL_LINE
    da = np.hstack([dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                    dnext_h * tc * o * (1 - o), dc * i * (1 - g * g)])
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)
'''

OK_STEP = "dpre = dnext_h * (1 - next_h ** 2)"
OK_LOOP = "up = dh[:, t, :] + carry"


def rnn_file(tmp_path, step=OK_STEP, first="pass", loop=OK_LOOP, step_cache="cache[t]",
             name="rnn_layers.py"):
    src = (RNN.replace("STEP_LINE", step).replace("FIRST_LINE", first)
           .replace("LOOP_LINE", loop).replace("STEP_CACHE", step_cache))
    path = tmp_path / name
    path.write_text(src)
    return path


def lstm_file(tmp_path, cell, name="lstm_layers.py"):
    path = tmp_path / name
    path.write_text(LSTM_STEP.replace("CELL_LINE", cell))
    return path


def line_of(path, text: str) -> int:
    return next(n for n, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def failed(r) -> list[str]:
    """The checks that flag the write: a failure, or a warning where the gradients stand (an
    upstream gradient, the cache, the state written into)."""
    return [c.name for c in r.checks if c.status in ("fail", "warn")]


def top(r):
    return [*r.diagnoses, *r.warnings][0]


# ---------------------------------------------------------------------------- failures

WRITES_DH = "dh[:, t, :] += carry; up = dh[:, t, :]"


def test_rnn_backward_writing_into_dh_warns_with_the_line_and_a_fix(tmp_path):
    path = rnn_file(tmp_path, loop=WRITES_DH)
    r = check(str(path), Options())
    # the gradients themselves are right: a warning (exit 0), with the line and the fix
    assert r.verdict == "pass" and failed(r) == ["behaviour.rnn.inputs-unchanged"]
    assert [c.status for c in r.checks if c.name == failed(r)[0]] == ["warn"]
    assert not r.diagnoses and r.warnings
    assert r.parts == {"rnn": "pass"}, r.parts  # the family passes too: a warning
    assert all(g.status == "pass" for g in r.groups)
    msg = next(c.message for c in r.checks if c.name == "behaviour.rnn.inputs-unchanged")
    assert "rnn_backward wrote into dh, the upstream gradient" in msg
    d = top(r)
    assert d.id == "grad.inputs-modified" and d.confidence >= 0.95 and d.groups == ["rnn"]
    n = line_of(path, WRITES_DH)
    assert d.location is not None and d.location.line == n and d.location.name == "dh"
    assert f"rnn_layers.py line {n}" in d.evidence and "dh" in d.evidence
    # the step that first changes it: t = T-1 adds a zero carry, t = T-2 changes dh
    assert d.location.step == r.sizes["T"] - 2
    assert "dh = dh.copy()" in d.fix  # a repair seen to pass, or the copy-first fix
    text = render(r)
    assert "grad.inputs-modified" in text and f"line {n}" in text


def test_the_reported_change_is_the_change_to_dh(tmp_path):
    """The number in the message is max |dh after - dh before| of the case, computed here."""
    path = rnn_file(tmp_path, loop=WRITES_DH)
    r = check(str(path), Options())
    mod = _load(path)
    from bpttcheck.check.layers import make_case
    c = make_case(BY_NAME["rnn"], 0)
    _, cache = mod.rnn_forward(*c.args)
    dh = c.ups[0].copy()
    mod.rnn_backward(dh, cache)
    want = float(np.max(np.abs(dh - c.ups[0])))
    assert want > 0.1
    msg = next(c.message for c in r.checks if c.name == "behaviour.rnn.inputs-unchanged")
    assert f"changed by up to {want:.3g}" in msg, msg


def test_a_step_writing_into_a_view_of_dh_is_found_in_the_step(tmp_path):
    """rnn_backward hands rnn_step_backward a slice of dh, which the step writes into: the
    line is the step's, the argument the caller's dh, and so is the fix."""
    path = rnn_file(tmp_path, step="dnext_h *= 1 - next_h ** 2; dpre = dnext_h",
                    loop="up = dh[:, t, :]; up += carry")
    r = check(str(path), Options())
    assert "behaviour.rnn.inputs-unchanged" in failed(r)
    assert "behaviour.rnn_step.inputs-unchanged" in failed(r)  # its own dnext_h too
    seq = next(d for d in [*r.diagnoses, *r.warnings] if d.groups == ["rnn"])
    assert seq.id == "grad.inputs-modified" and "rnn_backward wrote into dh" in seq.evidence
    assert seq.location is not None
    # the first write is the caller's `up += carry` (up is a view of dh) at t = T - 2, or
    # the step's own at t = T - 1: the step's comes first
    assert seq.location.line == line_of(path, "dnext_h *= 1 - next_h")
    assert "`dh = dh.copy()` as the first line of rnn_backward" in seq.fix


def test_lstm_step_backward_writing_into_dnext_c_warns(tmp_path):
    cell = "dnext_c += dnext_h * o * (1 - tc * tc); dc = dnext_c"
    path = lstm_file(tmp_path, cell)
    r = check(str(path), Options())
    assert failed(r) == ["behaviour.lstm_step.inputs-unchanged"]
    d = top(r)
    assert d.id == "grad.inputs-modified"
    assert "lstm_step_backward wrote into dnext_c" in d.evidence
    assert d.location is not None and d.location.line == line_of(path, "dnext_c +=")
    assert "dnext_c" in d.fix


def test_an_augmented_write_is_repaired_by_a_new_array(tmp_path):
    """`dnext_c += v` alone on its line: the verified repair is `dnext_c = dnext_c + (v)`."""
    path = lstm_file(tmp_path, "dnext_c += dnext_h * o * (1 - tc * tc)\n    dc = dnext_c")
    from bpttcheck import repair
    r = check(str(path), Options())
    repair.attach(r, str(path), Options())
    d = top(r)
    assert d.id == "grad.inputs-modified"
    assert d.repair is not None, d.fix
    assert d.repair.after[0].strip() == "dnext_c = dnext_c + (dnext_h * o * (1 - tc * tc))"


def test_a_backward_writing_into_its_cache_warns(tmp_path):
    """next_h squared in place: the gradient uses it right, the cache is changed."""
    path = rnn_file(tmp_path, step="next_h *= next_h\n    dpre = dnext_h * (1 - next_h)")
    r = check(str(path), Options())
    assert "behaviour.rnn_step.inputs-unchanged" in failed(r)
    assert all(g.status == "pass" for g in r.groups)
    d = next(d for d in [*r.diagnoses, *r.warnings] if d.groups == ["rnn_step"])
    assert d.id == "grad.inputs-modified"
    assert "rnn_step_backward wrote into cache[4], an entry of the cache" in d.evidence
    assert d.location is not None and d.location.name == "next_h"
    assert "next_h = next_h * (next_h)" in d.fix


def test_a_backward_that_updates_a_parameter_is_params_modified(tmp_path):
    path = rnn_file(tmp_path, step="dpre = dnext_h * (1 - next_h ** 2); Wh -= 0.1 * prev_h.T @ dpre")
    r = check(str(path), Options())
    assert "behaviour.rnn_step.inputs-unchanged" in failed(r)
    d = next(d for d in [*r.diagnoses, *r.warnings] if d.groups == ["rnn_step"])
    assert d.id == "grad.params-modified"
    assert ("rnn_step_backward wrote into Wh, a parameter its forward was given, which the "
            "cache holds") in d.evidence
    assert "training loop" in d.fix


# ---------------------------------------------------------------------------- correct twins

@pytest.mark.parametrize("first, loop", [
    ("dh = dh.copy()", WRITES_DH),  # copies first, then writes into its own copy
    ("pass", OK_LOOP),  # a new array every step
    ("pass", "up = dh[:, t, :].copy(); up += carry"),  # writes only into its own copy
], ids=["copy-first", "new-array", "own-local"])
def test_correct_twins_pass(tmp_path, first, loop):
    r = check(str(rnn_file(tmp_path, first=first, loop=loop)), Options())
    assert r.verdict == "pass", [(c.name, c.message) for c in r.checks if c.status == "fail"]
    msg = next(c.message for c in r.checks if c.name == "behaviour.rnn.inputs-unchanged")
    assert msg == "the functions left their inputs as they were"


def test_consuming_the_cache_list_is_no_write_into_an_array(tmp_path):
    """Only arrays are watched: popping the step caches off the list the forward returned
    changes no array the caller holds."""
    path = rnn_file(tmp_path, step_cache="cache.pop()")
    r = check(str(path), Options())
    assert r.verdict == "pass", [(c.name, c.message) for c in r.checks if c.status == "fail"]


def test_lstm_step_correct_twin_passes(tmp_path):
    r = check(str(lstm_file(tmp_path, "dc = dnext_c + dnext_h * o * (1 - tc * tc)")), Options())
    assert r.verdict == "pass", [(c.name, c.message) for c in r.checks if c.status == "fail"]


# ---------------------------------------------------------------------------- the adapter

def _load(path):
    spec = importlib.util.spec_from_file_location(f"subject_{path.stem}_{id(path)}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _adapter(mod, path):
    a = LayersAdapter(mod, str(path), {})
    a.guard = lambda where, timeout, fn, *args: fn(*args)
    return a


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    d = tmp_path_factory.mktemp("inplace")
    bad, good = d / "bad", d / "good"
    bad.mkdir()
    good.mkdir()
    return (_load(rnn_file(bad, loop=WRITES_DH)), _load(rnn_file(good, first="dh = dh.copy()",
                                                                  loop=WRITES_DH)), d)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=st.integers(1, 4), T=st.integers(2, 5), D=st.integers(1, 4), H=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_run_unit_reports_exactly_the_change_to_dh(subjects, N, T, D, H, seed):
    """For any sizes and values: the writing subject is reported with the change computed
    here, for dh only; its copy-first twin is reported for nothing."""
    bad, good, d = subjects
    rng = np.random.default_rng(seed)
    args = [rng.normal(size=(N, T, D)), rng.normal(size=(N, H)), rng.normal(size=(D, H)),
            rng.normal(size=(H, H)), rng.normal(size=H)]
    ups = [rng.normal(size=(N, T, H))]
    kept = ups[0].copy()
    u = BY_NAME["rnn"]
    *_, changed = _adapter(bad, d).run_unit(u, args, ups)
    _, cache = bad.rnn_forward(*args)
    dh = ups[0].copy()
    bad.rnn_backward(dh, cache)
    want = float(np.max(np.abs(dh - ups[0])))
    assert [(m["function"], m["argument"], m["role"]) for m in changed] == (
        [("rnn_backward", "dh", "upstream")] if want > 0 else [])
    if want > 0:
        assert changed[0]["change"] == pytest.approx(want, rel=0, abs=0)
    *_, changed = _adapter(good, d).run_unit(u, args, ups)
    assert changed == []
    assert np.array_equal(ups[0], kept)  # the adapter hands the user a copy of the case's


def test_the_users_argument_names_label_the_arrays(tmp_path):
    """A backward whose parameter is called dout is reported as dout."""
    path = tmp_path / "named.py"
    path.write_text(textwrap.dedent(rnn_file(tmp_path, loop=WRITES_DH).read_text())
                    .replace("def rnn_backward(dh, cache)", "def rnn_backward(dout, cache)")
                    .replace("dh.shape", "dout.shape").replace("dh[:, t, :]", "dout[:, t, :]"))
    r = check(str(path), Options())
    d = top(r)
    assert "rnn_backward wrote into dout" in d.evidence and "dout = dout.copy()" in d.fix


# ---------------------------------------------------------------------------- sequence style

def test_lossfun_writing_into_hprev_warns_with_the_state_named(tmp_path):
    """min-char-rnn's lossFun that stores its last state into the caller's hprev: the loss
    and gradients are right, hprev is not what the caller passed any more."""
    src = (ROOT / "reference" / "python" / "rnn_karpathy.py").read_text()
    line = "    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1]"
    assert line in src
    bad = tmp_path / "bad" / "min_char_rnn.py"
    good = tmp_path / "good" / "min_char_rnn.py"
    for p, extra in ((bad, "    hprev[:] = hs[len(inputs)-1]\n"),
                     (good, "    hnew = hprev.copy(); hnew[:] = hs[len(inputs)-1]\n")):
        p.parent.mkdir()
        p.write_text(src.replace(line, extra + line))
        shutil.copy(ROOT / "reference" / "python" / "input.txt", p.parent)
    r = check(str(bad), Options())
    assert r.error is None, r.error
    assert failed(r) == ["behaviour.inputs-unchanged"]
    assert "hprev" in next(c.message for c in r.checks if c.name == "behaviour.inputs-unchanged")
    d = top(r)
    assert d.id == "grad.inputs-modified" and d.confidence >= 0.95
    assert "hprev (by up to" in d.evidence and "hprev = hprev.copy()" in d.fix
    assert check(str(good), Options()).verdict == "pass"


# ---------------------------------------------------------------------------- other unit styles

WILD = ROOT / "reference" / "wild"


@pytest.mark.parametrize("subject, old, new, says", [
    (WILD / "dlai" / "rnn_lstm_step_by_step.py",
     "        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])",
     "        da[:, :, t] += da_prevt\n        gradients = rnn_cell_backward(da[:, :, t], caches[t])",
     "rnn_backward wrote into da, the upstream gradient"),
    (WILD / "dlfs2" / "time_layers.py",
     "            dx, dh = layer.backward(dhs[:, t, :] + dh)",
     "            dhs[:, t, :] += dh\n            dx, dh = layer.backward(dhs[:, t, :])",
     "TimeRNN.backward wrote into dhs, the upstream gradient"),
], ids=["dlai-da", "dlfs2-dhs"])
def test_other_unit_styles_watch_their_upstream_gradients(tmp_path, subject, old, new, says):
    src = subject.read_text()
    assert src.count(old) >= 1
    bad = tmp_path / subject.name
    bad.write_text(src.replace(old, new, 1))
    r = check(str(bad), Options())
    assert r.error is None, r.error
    bad_checks = [c for c in r.checks if c.status in ("fail", "warn")]
    assert [c.name for c in bad_checks] == ["behaviour.rnn.inputs-unchanged"], bad_checks
    d = top(r)
    assert d.id == "grad.inputs-modified" and says in d.evidence
    assert d.location is not None and d.location.line == line_of(bad, new.split("\n")[0].strip())
    assert check(str(subject), Options()).verdict == "pass"  # the file as it was


# ---------------------------------------------------------------------------- C

@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="needs a C compiler")
def test_c_writing_into_its_const_h0_warns(tmp_path):
    src = (ROOT / "reference" / "c" / "rnn.c").read_text()
    copy = "    memcpy(hs, h0, sizeof(float) * H);\n"
    assert copy in src
    bad = tmp_path / "rnn.c"
    bad.write_text(src.replace(copy, copy + "    ((float *)h0)[0] += 0.5f;\n"))
    r = check(str(bad), Options())
    assert r.error is None, r.error
    assert failed(r) == ["behaviour.inputs-unchanged"]
    d = top(r)
    assert d.id == "grad.inputs-modified" and "h0 (by up to 0.5)" in d.evidence
    assert "memcpy" in d.fix and ".copy()" not in d.fix
