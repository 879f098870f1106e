"""Numerical gradients forbidden by the spec (issue 13, item 1, third bullet): the attacks in
tests/attacks/numgrad/ (finite differences as float32 or float64, Richardson, the complex step,
one batched forward, an inlined forward) fail with `forbid_numerical_gradients = true`; the
hand-written controls (fast, slow, entry by entry, recomputing the forward, a file with a
gradient-check helper) pass; with the key off nothing is measured and nothing changes."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttcheck.check import numgrad
from bpttcheck.check.cases import make_case
from bpttcheck.check.engine import Options, check
from bpttcheck.check.findings import Observation
from bpttcheck.layout import Layout
from bpttcheck.oracle.common import Dims
from bpttcheck.plugins import architectures
from bpttcheck.sandbox.calltrace import CallTrace
from bpttcheck.sandbox.session import _measured_fields
from tests.conftest import REF

ATTACKS = Path(__file__).parent / "attacks" / "numgrad"
# small enough that finite differences of an LSTM run in a second; X <= T covers every token
SMALL = Dims(T=4, X=3, H=3, Y=2)
ON = Options(forbid_numerical_gradients=True, dims=SMALL)
OFF = Options(dims=SMALL)


def _check(name: str, opts: Options):
    return check(str(ATTACKS / name), opts)


def _status(r, name=numgrad.CHECK):
    found = [c for c in r.checks if c.name == name]
    return found[0].status if found else None


ATTACK_FILES = sorted(p.name for p in ATTACKS.glob("atk_*") if p.suffix in (".py", ".c"))
CONTROL_FILES = sorted(p.name for p in ATTACKS.glob("ok_*.py"))
# the attacks today's float64 tolerances do not already fail: finite differences returned as
# float32 (judged at float64 plus one float32 rounding, which their 1e-10 error fits in) and
# the complex step (exact to rounding)
PASSED_BEFORE = {"atk_k_fd32.py", "atk_l_fd32.py", "atk_k_complex.py", "atk_l_complex.py",
                 "atk_k_complex_untraced.py", "atk_k_complex_vectorized.py", "atk_c_fd.c",
                 "atk_f_complex_class.py"}


def test_every_attack_kind_is_there():
    kinds = {n.split("_", 2)[2] for n in ATTACK_FILES}
    assert kinds >= {"fd32.py", "fd64.py", "richardson.py", "complex.py", "vectorized.py",
                     "inlined.py", "complex_untraced.py", "complex_vectorized.py"}
    # min-char-rnn, functional LSTM, a functional RNN class, C
    assert {n[4] for n in ATTACK_FILES} == {"k", "l", "f", "c"}


@pytest.mark.parametrize("name", ATTACK_FILES)
def test_attack_fails_with_the_key_on(name):
    r = _check(name, ON)
    assert r.verdict == "fail", [(c.name, c.message[:200]) for c in r.checks if c.status != "pass"]
    if name not in PASSED_BEFORE:  # float64 differences fail their groups; named all the same
        assert [d.id for d in r.diagnoses] == ["grad.numerical"]
    if name in PASSED_BEFORE:  # only the new check stands between them and a pass
        assert _status(r) == "fail"
        d = [d for d in r.diagnoses if d.id == "grad.numerical"]
        assert d and d[0].exact
        assert ("complex" in d[0].evidence) == ("complex" in name)
        assert ("switched off" in d[0].evidence) == ("untraced" in name)
        if "fd32" in name:
            assert "dormant" in d[0].evidence and "rounding noise" in d[0].evidence


@pytest.mark.parametrize("name", sorted(PASSED_BEFORE))
def test_attack_judged_as_before_with_the_key_off(name):
    """Correct-looking gradients computed numerically are still correct gradients: without
    the key they pass, and the check is not run (no extra call)."""
    r = _check(name, OFF)
    assert r.verdict == "pass"
    assert _status(r) is None and not r.diagnoses


@pytest.mark.parametrize("name", CONTROL_FILES)
def test_control_passes_with_the_key_on(name):
    r = _check(name, ON)
    assert r.verdict == "pass", [(c.name, c.message[:300]) for c in r.checks if c.status != "pass"]
    assert _status(r) == "pass"
    ok = next(c for c in r.checks if c.name == numgrad.CHECK)
    assert "are exact" in ok.message


@pytest.mark.parametrize("name", ["rnn_karpathy.py", "rnn_mean_loss.py", "lstm_karpathy.py",
                                  "gru_functional.py", "rnn_column.py"])
def test_reference_files_pass_with_the_key_on(name):
    """Clipping at 5 (min-char-rnn), a mean over time, column vectors, other architectures."""
    r = check(str(REF / name), Options(forbid_numerical_gradients=True))
    assert r.verdict == "pass" and _status(r) == "pass"


def test_key_off_adds_no_call():
    on, off = _check("ok_k_correct.py", ON), _check("ok_k_correct.py", OFF)
    assert _status(off) is None
    assert on.evaluations == off.evaluations + 1  # the one traced call at the dormant case


def test_a_backward_bug_is_not_called_numerical():
    """A wrong hand-written backward fails its group and is named as a bug, not as numerical
    gradients: the dormant entries of failing groups are not judged."""
    src = (ATTACKS / "ok_k_correct.py").read_text()
    buggy = src.replace("dhnext = Whh.T @ dhraw", "dhnext = Whh @ dhraw")
    assert buggy != src
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "model.py"
        p.write_text(buggy)
        r = check(str(p), ON)
    assert r.verdict == "fail" and _status(r) == "pass"
    assert "grad.numerical" not in [d.id for d in r.diagnoses]
    assert "rnn.whh-not-transposed" in [d.id for d in r.diagnoses]


# ---------------------------------------------------------------- the dormant-unit probe


def _central_differences(arch, case, h):
    """Central differences of the reference's own loss, entry by entry."""
    def loss(params):
        return arch.run(params, case.xs, case.ys, case.state).loss
    out = {}
    for k, v in case.params.items():
        g = np.zeros_like(v)
        for i in range(v.size):
            p = {n: a.copy() for n, a in case.params.items()}
            p[k].flat[i] += h
            up = loss(p)
            p[k].flat[i] -= 2 * h
            g.flat[i] = (up - loss(p)) / (2 * h)
        out[k] = g
    return out


def _observation(arch, case, grads):
    ref = arch.run(case.params, case.xs, case.ys, case.state)
    return Observation(case, Layout(), ref.loss, grads, ref.state, {}, ref, "sum")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["rnn", "lstm", "gru"]), T=st.integers(2, 5), X=st.integers(2, 4),
       H=st.integers(1, 4), Y=st.integers(2, 4), seed=st.integers(0, 10_000),
       h=st.sampled_from([1e-3, 1e-5, 1e-7]))
def test_dormant_entries_tell_backward_from_differences(arch, T, X, H, Y, seed, h):
    """Over architectures, sizes and seeds: the reference's own backward (in float64, and
    rounded to float32) is never flagged; central differences of the same loss always are."""
    a = architectures()[arch]
    case, j = numgrad.dormant_case(a, make_case(a, Dims(T=T, X=X, H=H, Y=Y), seed))
    assert j == H - 1
    ref = a.run(case.params, case.xs, case.ys, case.state)
    bad, n = numgrad.dormant_mismatches(_observation(a, case, ref.grads), a.param_names)
    assert n >= 1 and not bad
    f32 = {k: v.astype(np.float32) for k, v in ref.grads.items()}
    assert not numgrad.dormant_mismatches(_observation(a, case, f32), a.param_names)[0]
    fd = _central_differences(a, case, h)
    bad, _ = numgrad.dormant_mismatches(_observation(a, case, fd), a.param_names)
    assert bad


def test_dormant_case_leaves_the_output_layer_and_other_units():
    a = architectures()["rnn"]
    base = make_case(a, Dims(T=4, X=3, H=3, Y=3), 1)  # Y == H: Why and Whh have one shape
    case, j = numgrad.dormant_case(a, base)
    assert numgrad.output_weight(a, base) == "Why"
    assert np.array_equal(case.params["Why"], base.params["Why"])
    assert np.abs(case.params["Whh"][j]).max() < 1e-19 and case.state[0][j] == 0
    assert np.array_equal(case.params["Whh"][:j], base.params["Whh"][:j])


# ---------------------------------------------------------------- the worker's measurement


def _is_here(filename):
    return filename == __file__


def test_trace_finds_complex_arrays_and_counts_calls():
    def helper(p):
        return float(np.sum(p).real)

    def complex_step(p):
        out = 0.0
        for i in range(p.size):
            q = p.astype(complex)
            q.flat[i] += 1e-30j
            out += helper(q)
        return out

    t = CallTrace(_is_here, str)
    t.run(complex_step, np.ones(5))
    s = t.summary()
    assert s["complex"] and not s["tampered"]
    assert dict(s["calls"])["helper"] == 5 and s["lines"] > 5

    real = CallTrace(_is_here, str)
    real.run(lambda p: [helper(p) for _ in range(200)], np.ones(5))
    assert real.summary()["complex"] is None


def test_trace_notices_being_switched_off():
    def sneaky():
        sys.settrace(None)
        return 1

    t = CallTrace(_is_here, str)
    assert t.run(sneaky) == 1
    assert t.summary()["tampered"]
    assert sys.gettrace() is None or sys.gettrace() is not t._tracer


@pytest.mark.parametrize("bad", [None, [], {"lines": "1", "calls": [], "complex": None,
                                               "tampered": False},
                                 {"lines": 1, "calls": [["f", "2"]], "complex": None,
                                  "tampered": False},
                                 {"lines": 1, "calls": [], "complex": 3, "tampered": False},
                                 {"lines": True, "calls": [], "complex": None, "tampered": 0}])
def test_a_forged_measurement_is_refused(bad):
    assert _measured_fields(bad) is None
    good = {"lines": 3, "calls": [["f", 2]], "complex": None, "tampered": False}
    assert _measured_fields(good) == good


# ---------------------------------------------------------------- the spec key


def test_spec_key_reaches_the_options(tmp_path):
    from bpttcheck.errors import SpecError
    from bpttcheck.settings import settings as make_settings
    spec = tmp_path / "spec.toml"
    spec.write_text("[assignment]\nforbid_numerical_gradients = true\n")
    assert make_settings(str(spec)).opts.forbid_numerical_gradients
    spec.write_text("[assignment]\narch = \"rnn\"\n")
    assert not make_settings(str(spec)).opts.forbid_numerical_gradients
    spec.write_text("[assignment]\nforbid_numerical_gradients = \"sometimes\"\n")
    with pytest.raises(SpecError, match="forbid_numerical_gradients"):
        make_settings(str(spec))


def test_trace_notices_being_switched_off_and_on_again():
    def polite():
        saved = sys.gettrace()
        sys.settrace(None)
        x = np.ones(3).astype(complex)  # unseen while the trace is off
        sys.settrace(saved)
        return float(x.real.sum())

    t = CallTrace(_is_here, str)
    assert t.run(polite) == 3.0
    assert t.summary()["tampered"]


def test_a_call_that_leaves_the_hooks_alone_is_not_tampering():
    t = CallTrace(_is_here, str)
    t.run(lambda: sum(np.ones(4)))
    assert not t.summary()["tampered"]


@pytest.mark.parametrize("name", ["grad_not_reset_dhnext_karpathy.py", "grad_not_reset_module.py"])
def test_gradients_not_reset_are_not_called_numerical(name):
    """Accumulators kept between calls: the dormant-unit call is a later call, its gradients
    hold the earlier calls' too; the bug is named, numerical gradients are not."""
    from tests.conftest import ZOO
    r = check(str(ZOO / name), Options(forbid_numerical_gradients=True))
    assert r.verdict == "fail" and _status(r) == "pass"
    ids = [d.id for d in r.diagnoses]
    assert "grad.not-reset" in ids and "grad.numerical" not in ids


def test_line_budget_bounds_the_trace(monkeypatch):
    """Past the budget no line is traced, and complex arrays are still seen at returns."""
    from bpttcheck.sandbox import calltrace
    monkeypatch.setattr(calltrace, "LINE_BUDGET", 100)

    def loop():
        total = 0
        for i in range(5000):
            total += i
        return total

    def late_complex():
        loop()
        return complex_helper()

    def complex_helper():
        z = np.ones(2, dtype=complex)
        return z

    t = CallTrace(_is_here, str)
    t.run(late_complex)
    s = t.summary()
    assert 100 <= s["lines"] <= 103 and s["complex"]  # one more line per frame still open


def test_numerical_gradients_earn_no_gradient_points():
    """The verdict fails, and so do the gradient checks they passed: grade and Gradescope
    give them the forward's and behaviour's points only; a control keeps every point."""
    from bpttcheck.scoring import score
    r = _check("atk_k_fd32.py", ON)
    failed = {c.name for c in r.checks if c.status == "fail"}
    assert {f"grad.{k}" for k in ("Wxh", "Whh", "Why", "bh", "by")} <= failed
    assert "fd.all" in failed and "forward.loss" not in failed
    assert [g.status for g in r.groups] == ["pass"] * 5  # the numbers stay as measured
    got, top = score(r)
    assert 0 < got < top
    ok = _check("ok_k_correct.py", ON)
    assert score(ok)[0] == score(ok)[1]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["ok_l_correct.py", "ok_l_slow.py", "ok_l_recompute.py"]),
       T=st.integers(3, 7), H=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_controls_pass_at_any_size_and_seed(name, T, H, seed):
    """Each example starts a worker: a small budget. X = 3 <= T covers every token."""
    r = check(str(ATTACKS / name), Options(forbid_numerical_gradients=True, seed=seed,
                                           dims=Dims(T=T, X=3, H=H, Y=2)))
    assert r.verdict == "pass", [(c.name, c.message[:300]) for c in r.checks if c.status != "pass"]
    assert _status(r) == "pass"
