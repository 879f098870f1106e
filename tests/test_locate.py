"""Pointing at the line (check/locate.py, sandbox/tracer.py): a diagnosis of Python code names
the line of the user's source where the backward pass leaves the reference's path; correct
code traced at any seed never leaves it; C code gets the quantity, never a guessed line."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttcheck.check.cases import make_case
from bpttcheck.check.engine import Options, check
from bpttcheck.check.locate import Bank, Rec, first_divergence, quantities
from bpttcheck.check.probe import UserProbe
from bpttcheck.layout import Layout
from bpttcheck.oracle.common import Dims
from bpttcheck.plugins import architectures
from bpttcheck.sandbox.session import WorkerSession
from bpttcheck.sandbox.tracer import MAX_RECORDS, run_traced
from conftest import REF, ROOT, ZOO

# the line each single-bug zoo file gets wrong, as a pattern of its source (read by hand: the
# bug comment at the top of each file says what is wrong)
BUG_LINE = {
    "grad_overwrite_karpathy.py": r"^(dbh|dWhh) = ",
    "grad_overwrite_lstm.py": r"^(W_v_d|W_o_d) = np\.outer",
    "gru_direct_path_missing.py": r"^dh_prev = np\.zeros",
    "gru_gate_derivative_reapplied.py": r"^dzg_raw = dzg \* sigmoid\(zg\)",
    "gru_update_gate_flipped.py": r"^dn = dh \* zg",
    "loss_dy_sign_split.py": r"^dy = -s\[",
    "loss_sum_grad_mean_lstm.py": r"^dv /= T",
    "lstm_cell_tanh_derivative_missing_split.py": r"^dc = dc_next \+ dh \* s\[\"o\"\]",
    "lstm_cprev_wraparound.py": r"C\[t - 1\]",
    "lstm_dc_next_missing_forget_xfirst.py": r"^dc_next = dc$",
    "lstm_dh_next_wrong_slice.py": r"^dh_next = dz\[-H:\]",
    "lstm_dh_next_wrong_slice_xfirst.py": r"^dh_next = dv\[:H\]",
    "lstm_gate_derivative_reapplied_karpathy.py": r"sigmoid\(os_\[t\]\) \* \(1 - sigmoid",
    "lstm_state_offset.py": r"h\[t\], C\[t\]",
    "rnn_dwhh_current_h_karpathy.py": r"^dWhh \+= np\.dot\(dhraw, hs\[t\]\.T\)",
    "rnn_dwhy_prev_h.py": r"^dWhy \+= np\.outer\(dz, hs\[t\]\)",
    "rnn_missing_dh_next_class.py": r"^dh = self\.W_hy\.T @ dz",
    "rnn_tanh_derivative_missing_column.py": r"^da = dh",
    "rnn_whh_not_transposed_karpathy.py": r"^dhnext = np\.dot\(Whh, dhraw\)",
    "softmax_double_exp.py": r"softmax\(e\)|np\.exp\(a - np\.max",
    "softmax_sum_logits_karpathy.py": r"np\.sum\(ys\[t\]\)",
}


@pytest.mark.quality
@pytest.mark.parametrize("name", sorted(BUG_LINE))
def test_the_located_line_is_the_planted_bug(name):
    r = check(str(ZOO / name), Options(seed=0))
    loc = r.diagnoses[0].location
    assert loc is not None and loc.line is not None, (name, r.diagnoses[0].id)
    src = (ZOO / name).read_text().splitlines()[loc.line - 1].strip()
    assert re.search(BUG_LINE[name], src), f"{name}: line {loc.line} `{src}`"
    assert loc.source and loc.quantity and loc.expected
    assert loc.file and loc.file.endswith(name)  # the user's file, not the staged copy


def test_the_location_reaches_every_output():
    from bpttcheck import report_gradescope, report_html, report_junit, report_terminal
    path = ZOO / "rnn_tanh_derivative_missing_column.py"
    r = check(str(path), Options(seed=0))
    loc = r.diagnoses[0].location
    assert loc is not None and loc.step is not None and loc.differs_by and loc.differs_by > 0.01
    said = f"line {loc.line}"
    assert said in report_terminal.render(r, False)
    assert said in report_junit.render(r)
    assert said in report_gradescope.render(r, None)
    page = report_html.render(r)
    hit = re.search(r'<span class="hit"><span class="ln">(\d+)</span>(.*?)</span>', page)
    assert hit and int(hit.group(1)) == loc.line and "da = dh" in hit.group(2)
    assert r.model_dump()["diagnoses"][0]["location"]["line"] == loc.line  # JSON


def test_a_correct_file_has_no_diagnosis_and_so_no_location():
    r = check(str(REF / "rnn_karpathy.py"), Options(seed=0))
    assert r.verdict == "pass" and not r.diagnoses


@pytest.mark.skipif(not (ROOT / "reference" / "bugs" / "c").is_dir(), reason="no C zoo")
def test_c_code_gets_the_quantity_and_no_guessed_line():
    r = check(str(ROOT / "reference" / "bugs" / "c" / "cprev_wraparound.c"), Options(seed=0))
    loc = r.diagnoses[0].location
    assert loc is not None and loc.line is None and loc.file is None
    assert "previous cell state" in (loc.quantity or "")
    assert "not traced line by line" in loc.text()


# ---------------------------------------------------------------- correct code never diverges

CORRECT = ["rnn_karpathy.py", "lstm_functional.py", "lstm_split.py", "gru_functional.py"]


def _trace_divergence(path, seed: int, T: int):
    with WorkerSession(str(path)) as w:
        info = w.load(None, {})
        arch = architectures()[info["arch"]]
        probe = UserProbe(w, arch, info["capabilities"])
        fixed = info.get("dims")
        d = Dims(T=T, X=fixed["X"], H=fixed["H"], Y=fixed["Y"]) if fixed else Dims(T, 5, 4, 3)
        case = make_case(arch, d, seed)
        found = None
        for lay in (Layout.from_dict(x) for x in info["layouts"]):
            o = probe.observe(case, lay)
            if np.allclose(o.loss, o.ref.loss, rtol=1e-9):
                found = o
                break
        assert found is not None, "no layout matched the correct file's loss"
        names, values, _ = probe.trace(case, found.layout)
        recs = [Rec(f, ln, n, s, v) for (f, ln, n, s), v in zip(names, values, strict=True)]
        assert recs, "nothing was recorded"
        good = Bank(quantities(probe, found, frozenset()), 1e-7)
        return first_divergence(recs, good, None)


@pytest.mark.parametrize("name", [n for n in CORRECT if (REF / n).exists()])
@settings(max_examples=3, deadline=None)  # a worker each
@given(seed=st.integers(0, 10**6), T=st.integers(1, 7))
def test_correct_code_traced_never_leaves_the_reference(name, seed, T):
    assert _trace_divergence(REF / name, seed, T) is None


# ---------------------------------------------------------------- the tracer itself

def test_the_tracer_records_assignments_and_in_place_writes_of_user_frames(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import numpy as np\n"
                   "def f(a):\n"
                   "    acc = np.zeros(3)\n"
                   "    for t in range(2):\n"
                   "        d = a * (t + 1)\n"
                   "        acc += d\n"
                   "    return acc\n")
    ns: dict = {}
    exec(compile(src.read_text(), str(src), "exec"), ns)
    out, rec = run_traced(ns["f"], lambda fn: fn == str(src), lambda fn: fn, np.ones(3))
    assert np.allclose(out, 3.0)
    got = [(r.line, r.name, r.step) for r in rec.records if np.any(r.value)]
    assert (5, "d", 0) in got and (6, "acc", 0) in got and (6, "acc", 1) in got
    acc = [r.value for r in rec.records if r.name == "acc" and r.line == 6]
    assert np.allclose(acc[-1], 3.0) and np.allclose(acc[0], 1.0)  # copies, not views


def test_the_tracer_stops_at_its_budget_and_the_call_still_returns(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import numpy as np\n"
                   "def f():\n"
                   "    x = np.zeros(2)\n"
                   "    for t in range(100000):\n"
                   "        x = x + 1\n"
                   "    return x\n")
    ns: dict = {}
    exec(compile(src.read_text(), str(src), "exec"), ns)
    out, rec = run_traced(ns["f"], lambda fn: fn == str(src), lambda fn: fn)
    assert out[0] == 100000 and rec.truncated and len(rec.records) == MAX_RECORDS


def test_user_code_that_turns_tracing_off_only_loses_its_location(tmp_path):
    bug = (ZOO / "rnn_tanh_derivative_missing_column.py").read_text()
    p = tmp_path / "m.py"
    p.write_text(bug.replace("import numpy as np", "import sys\nimport numpy as np\nsys.settrace(None)", 1))
    r = check(str(p), Options(seed=0))
    assert r.diagnoses[0].id == "rnn.tanh-derivative-missing"  # the diagnosis stands


# ---------------------------------------------------------------- layer units

LAYERS = ROOT / "reference" / "bugs" / "layers"
LAYER_LINE = {
    "lstm_cell_tanh_derivative_missing.py": r"^dc = dnext_c \+ dnext_h \* o\b",
    "lstm_dc_next_missing_forget.py": r"^dprev_c = dc\b",
    "lstm_gate_derivative_reapplied_f.py": r"^daf = df \* sigmoid\(f\)",
    "lstm_gate_derivative_reapplied_o.py": r"^dao = do \* sigmoid\(o\)",
    "lstm_step_only_gate_g_reapplied.py": r"^dag = dg \* \(1\.0 - np\.tanh\(g\)",
    "lstm_grad_overwrite_bias.py": r"^db = db_t",
    "lstm_missing_dh_next.py": r"lstm_step_backward\(",
    "rnn_db_axis1.py": r"^db = dz\.sum\(axis=1\)",
    "rnn_db_mean_over_batch.py": r"^db = dz\.mean\(axis=0\)",
    "rnn_grad_overwrite.py": r"^dW[xh] = dW[xh]_t",
    "rnn_missing_dh_next.py": r"rnn_step_backward\(dh\[:, t\]",
    "rnn_tanh_derivative_missing.py": r"^dz = dnext_h\b",
    "rnn_whh_not_transposed.py": r"^dprev_h = dz @ Wh\b",
}


@pytest.mark.quality
@pytest.mark.parametrize("name", sorted(LAYER_LINE))
def test_the_located_line_inside_a_failing_layer_unit_is_the_planted_bug(name):
    r = check(str(LAYERS / name), Options(seed=0))
    loc = r.diagnoses[0].location
    assert loc is not None and loc.line is not None, (name, r.diagnoses[0].id)
    src = (LAYERS / name).read_text().splitlines()[loc.line - 1].strip()
    assert re.search(LAYER_LINE[name], src), f"{name}: line {loc.line} `{src}`"


def test_a_reference_line_is_shown_without_its_bug_switches():
    from bpttcheck.check.layer_locate import _plain
    assert _plain('dz = dnext_h if has(bugs, "rnn.tanh-derivative-missing") is not None '
                  'else dnext_h * (1 - next_h**2)') == "dz = dnext_h * (1 - next_h**2)"
    assert _plain('dprev_h = dz @ (Wh if has(bugs, "x") is not None else Wh.T)') == \
        "dprev_h = dz @ (Wh.T)"


@pytest.mark.parametrize("wrong", ["dby += dby", "dby += dby * 2"])
def test_an_accumulator_that_never_changes_is_located_by_its_line(wrong, tmp_path):
    """`dby += dby` adds nothing, so no record shows it: the line is found by its text (the
    first `dby += ...` of the traced loop), and the rewrite `dby += dy` repairs it. A correct
    file with the same shape has no location."""
    from bpttcheck import repair
    src = (REF / "rnn_karpathy.py").read_text()
    (tmp_path / "input.txt").write_text((REF / "input.txt").read_text())
    p = tmp_path / "m.py"
    p.write_text(src.replace("dby += dy", wrong, 1))
    line = next(i + 1 for i, x in enumerate(p.read_text().splitlines()) if wrong in x)
    opts = Options(seed=0)
    r = check(str(p), opts)
    d = r.diagnoses[0]
    assert d.location is not None and d.location.line == line, d.location
    assert "dby" in (d.location.quantity or "")
    repair.attach(r, str(p), opts)
    if wrong == "dby += dby":
        assert d.repair is not None and d.repair.verified
        assert d.repair.after[0].strip() == "dby += dy"
    else:  # two edits away: nothing that only looks right at the first step is offered
        assert d.repair is None


def test_the_tracer_records_the_arrays_a_user_function_is_called_with(tmp_path):
    """Passing an array is an assignment: the callee's parameter, recorded at the caller's
    line with the caller's step (and not for a call from outside the user's code)."""
    src = tmp_path / "m.py"
    src.write_text("import numpy as np\n"
                   "def cell(da_next, k):\n"
                   "    return da_next * 2\n"
                   "def loop(a):\n"
                   "    out = []\n"
                   "    for t in range(2):\n"
                   "        out.append(cell(a + t, 3))\n"
                   "    return out\n")
    ns: dict = {}
    exec(compile(src.read_text(), str(src), "exec"), ns)
    _, rec = run_traced(ns["loop"], lambda fn: fn == str(src), lambda fn: fn, np.ones(3))
    args = [(r.line, r.step, float(r.value[0])) for r in rec.records if r.name == "da_next"]
    assert args == [(7, 0, 1.0), (7, 1, 2.0)]
    assert not [r for r in rec.records if r.name == "a"]  # loop's own caller is not the user's


def test_a_call_passing_the_wrong_array_is_located_at_the_call(tmp_path):
    """deeplearning.ai's rnn_backward passing da_prevt alone (the upstream da[:, :, t]
    forgotten: every gradient is zero): the line is the call, not the correct cell function."""
    src = (ROOT / "reference" / "wild" / "dlai" / "rnn_lstm_step_by_step.py").read_text()
    good = "rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])"
    assert good in src
    p = tmp_path / "m.py"
    p.write_text(src.replace(good, "rnn_cell_backward(da_prevt, caches[t])", 1))
    line = next(i + 1 for i, x in enumerate(p.read_text().splitlines())
                if "rnn_cell_backward(da_prevt" in x)
    r = check(str(p), Options(seed=0))
    loc = next((d.location for d in r.diagnoses if d.location), None)
    assert loc is not None and loc.line == line and loc.step is not None, r.diagnoses
    assert "dh[:, t] + dprev" in (loc.expected or "")
