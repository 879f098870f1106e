"""A forward that adds an epsilon inside a nonlinearity, a softmax or a log (tanh(x + 1e-12),
log(p + 1e-8)) is the standard model perturbed (check/perturbation.py): correct code with it
passes, judged against the reference at a tolerance widened by the measured perturbation; a
bug in such code is still caught, named and located; float64 code so perturbed is not said to
compute in float32; a spec's model = "standard" still fails the perturbed forward."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttcheck.check import perturbation
from bpttcheck.check.engine import Options, check
from bpttcheck.check.numerics import compare, needed_rtol, oracle_rtol
from bpttcheck.oracle.common import Dims
from conftest import REF, failed, write

RNN = (REF / "rnn_functional.py").read_text()
LSTM = (REF / "lstm_functional.py").read_text()


def edit(src: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in src, old
        src = src.replace(old, new)
    return src


# an RNN with an epsilon in the tanh, the softmax and the log; its backward (1 - h**2 from the
# stored h, p - onehot) is the exact derivative of that forward
RNN_EPS = edit(RNN,
               ("h = np.tanh(Wxh @ x + Whh @ hs[t] + bh)",
                "h = np.tanh(Wxh @ x + Whh @ hs[t] + bh + 1e-12)"),
               ("e = np.exp(z - np.max(z))", "e = np.exp(z - np.max(z) + 1e-12)"),
               ("loss -= np.log(p[targets[t]])", "loss -= np.log(p[targets[t]] + 1e-12)"))
# an LSTM whose sigmoid and tanh add 1e-12 to their argument, in the forward and where the
# backward recomputes tanh(c): its gradients are its own loss's derivative
LSTM_EPS = edit(LSTM,
                ("def sigmoid(a):\n    return 1.0 / (1.0 + np.exp(-a))",
                 "def sigmoid(a):\n    return 1.0 / (1.0 + np.exp(-(a + 1e-12)))\n\n\n"
                 "def tanh_eps(a):\n    return np.tanh(a + 1e-12)"),
                ("g.append(np.tanh(", "g.append(tanh_eps("),
                ("h.append(o[t] * np.tanh(", "h.append(o[t] * tanh_eps("),
                ("tC = np.tanh(C_t)", "tC = tanh_eps(C_t)"))
LSTM_EPS_NO_STATE = edit(LSTM_EPS, ("return float(loss), grads, (h[T], C[T])",
                                    "return float(loss), grads"))
# log(p + 1e-8) with the usual backward (p - onehot): the loss moves by ~1e-8, the gradients not
RNN_LOG_EPS = edit(RNN, ("loss -= np.log(p[targets[t]])", "loss -= np.log(p[targets[t]] + 1e-8)"))

DWHH_BUG = ("dWhh += np.outer(da, hs[t])", "dWhh += np.outer(da, hs[t + 1])")
FORGET_BUG = ("dC_next = dC * f[t]", "dC_next = dC")




def note(r, nid):
    return next((n for n in r.notes if n.id == nid), None)


def line_of(src: str, text: str) -> int:
    return next(i for i, ln in enumerate(src.splitlines(), 1) if text in ln)


# ------------------------------------------------------------------ the measure, no user code


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.floats(1e-15, 1e-3))
def test_needed_rtol_is_the_rtol_at_which_compare_passes(seed, n, size):
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(n)
    u = r + size * rng.standard_normal(n)
    need = needed_rtol(u, r)
    assert compare(u, r, need * (1 + 1e-9)).passed
    if need > 0:
        assert not compare(u, r, need * (1 - 1e-6)).passed


def test_needed_rtol_of_non_finite_values_is_infinite():
    assert needed_rtol(np.array([np.nan, 1.0]), np.ones(2)) == math.inf
    assert needed_rtol(np.zeros(3), np.zeros(3)) == 0.0


def test_a_unit_below_eps_changes_no_tolerance_and_one_above_scales_it():
    eps = np.finfo(np.float64).eps
    assert oracle_rtol("float64", 6, 12, eps / 2) == oracle_rtol("float64", 6, 12)
    assert oracle_rtol("float64", 6, 12, 1000 * eps) == pytest.approx(
        1000 * oracle_rtol("float64", 6, 12))
    # the widest a perturbation earns is float32's own tolerance
    assert oracle_rtol("float64", 6, 12, perturbation.LIMIT) == pytest.approx(
        oracle_rtol("float32", 6, 12))


# ------------------------------------------------------------------ correct code passes


def test_the_subjects_really_add_epsilons():
    assert RNN_EPS.count("1e-12") == 3 and LSTM_EPS.count("1e-12") == 2
    assert "tanh_eps(C_t)" in LSTM_EPS and "1e-8" in RNN_LOG_EPS


@pytest.mark.slow
def test_correct_lstm_with_epsilons_passes_judged_against_the_reference(tmp_path):
    plain = check(str(REF / "lstm_functional.py"), Options())
    r = check(write(tmp_path, LSTM_EPS), Options())
    assert r.verdict == "pass", failed(r)
    assert r.dtype == "float64" and note(r, "precision") is None
    assert note(r, "model.nonstandard") is None
    ev = note(r, "model.perturbed").evidence
    assert "differs from the standard lstm's by" in ev and "grad_rtol" in ev
    # judged against the reference (grad.* ran), at a tolerance wider than float64's and no
    # wider than float32's, the one printed
    status = {c.name: c.status for c in r.checks}
    assert all(status[f"grad.{g.name}"] == "pass" for g in r.groups)
    assert plain.tolerances["grad_rtol"] < r.tolerances["grad_rtol"] <= oracle_rtol("float32", 6, 12)
    assert f"{r.tolerances['grad_rtol']:.1e}" in ev
    # and every group against finite differences of its own loss as well
    assert all(status[f"fd.{g.name}"] == "pass" for g in r.groups)
    assert status["forward.last_h"] == status["forward.last_c"] == "pass"


@pytest.mark.slow
def test_correct_rnn_with_epsilons_is_not_said_to_compute_in_float32(tmp_path):
    r = check(write(tmp_path, RNN_EPS), Options())
    assert r.verdict == "pass", failed(r)
    assert r.dtype == "float64" and note(r, "precision") is None
    assert "float32" not in " ".join(n.evidence for n in r.notes if n.id != "model.perturbed")
    assert note(r, "model.perturbed") is not None and not r.diagnoses


@pytest.mark.slow
def test_a_log_epsilon_with_the_usual_backward_passes(tmp_path):
    r = check(write(tmp_path, RNN_LOG_EPS), Options())
    assert r.verdict == "pass", failed(r)
    assert note(r, "model.perturbed") is not None and note(r, "model.nonstandard") is None


@pytest.mark.slow
def test_a_perturbation_the_returned_values_hide_is_judged_by_its_own_loss(tmp_path):
    # no last state, and at this case the loss sums to the reference's within 1.2e-14 (a
    # sum over time hides its terms' 1e-12): the gradients, 5e-12 off, are judged by finite
    # differences of the user's loss
    r = check(write(tmp_path, LSTM_EPS_NO_STATE), Options(seed=519218416, dims=Dims(7, 3, 6, 7)))
    assert r.verdict == "pass", failed(r)
    ev = note(r, "model.perturbed").evidence
    assert "returns no last state" in ev and "finite differences of your own loss" in ev
    assert {c.status for c in r.checks if c.name.startswith("grad.")} == {"skip"}
    assert {c.status for c in r.checks if c.name.startswith("fd.")} == {"pass"}
    assert {c.name: c.status for c in r.checks}["forward.loss"] == "pass"


# four workers an example: a small budget of its own, as the conftest says
@pytest.mark.slow
@pytest.mark.parametrize("name", ["rnn", "lstm", "lstm_no_state"])
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=4)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(2, 8), X=st.integers(1, 7),
       H=st.integers(1, 7), Y=st.integers(2, 7))
def test_correct_code_with_epsilons_never_fails(tmp_path_factory, name, seed, T, X, H, Y):
    src = {"rnn": RNN_EPS, "lstm": LSTM_EPS, "lstm_no_state": LSTM_EPS_NO_STATE}[name]
    path = write(tmp_path_factory.mktemp(name), src)
    r = check(path, Options(seed=seed, dims=Dims(T, X, H, Y)))
    assert r.verdict == "pass", (name, seed, (T, X, H, Y), [
        c.message for c in r.checks if c.status == "fail"])
    assert note(r, "precision") is None and note(r, "model.nonstandard") is None


# ------------------------------------------------------------------ bugs are still caught


@pytest.mark.slow
@pytest.mark.parametrize("src, bug, bid", [
    (RNN_EPS, DWHH_BUG, "rnn.dwhh-uses-current-h"),
    (RNN_LOG_EPS, DWHH_BUG, "rnn.dwhh-uses-current-h"),
    (LSTM_EPS, FORGET_BUG, "lstm.dc-next-missing-forget"),
], ids=["rnn", "rnn-log", "lstm"])
def test_a_bug_in_perturbed_code_is_named_and_located(tmp_path, src, bug, bid):
    buggy = edit(src, bug)
    r = check(write(tmp_path, buggy), Options())
    assert r.verdict == "fail"
    assert note(r, "model.perturbed") is not None and note(r, "model.nonstandard") is None
    assert note(r, "precision") is None
    top = r.diagnoses[0]
    assert top.id == bid and top.exact
    assert top.location is not None and top.location.line == line_of(buggy, bug[1])


@pytest.mark.slow
def test_a_bug_whose_perturbation_goes_unmeasured_is_still_named(tmp_path):
    buggy = edit(LSTM_EPS_NO_STATE, FORGET_BUG)
    r = check(write(tmp_path, buggy), Options(seed=519218416, dims=Dims(7, 3, 6, 7)))
    assert r.verdict == "fail"
    top = r.diagnoses[0]
    assert top.id == "lstm.dc-next-missing-forget"
    assert "could not be measured" in top.evidence
    assert top.location is not None and top.location.line == line_of(buggy, FORGET_BUG[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rnn", "lstm"])
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=3)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(3, 8), X=st.integers(2, 7),
       H=st.integers(2, 7), Y=st.integers(2, 7))
def test_bugs_in_perturbed_code_fail_and_are_named_at_any_case(tmp_path_factory, name, seed,
                                                                 T, X, H, Y):
    src, bug, bid = {"rnn": (RNN_EPS, DWHH_BUG, "rnn.dwhh-uses-current-h"),
                     "lstm": (LSTM_EPS, FORGET_BUG, "lstm.dc-next-missing-forget")}[name]
    r = check(write(tmp_path_factory.mktemp(name), edit(src, bug)),
              Options(seed=seed, dims=Dims(T, X, H, Y)))
    assert r.verdict == "fail"
    assert [d.id for d in r.diagnoses][:1] == [bid], (seed, (T, X, H, Y), r.diagnoses)


@pytest.mark.slow
def test_a_backward_off_by_an_epsilon_fails_without_contradicting_itself(tmp_path):
    # the forward is exact (nothing to measure): 1 - h**2 + 1e-12 is not the derivative.
    # The diagnosis says how small the error is, not "exactly 1 x the correct gradient"
    # next to "no known bug", nor "with T = 1 every gradient is right"
    src = edit(RNN, ("da = (1.0 - hs[t + 1] ** 2) * dh", "da = (1.0 - hs[t + 1] ** 2 + 1e-12) * dh"))
    r = check(write(tmp_path, src), Options())
    assert r.verdict == "fail" and note(r, "model.perturbed") is None
    ev = r.diagnoses[0].evidence
    assert r.diagnoses[0].id == "unmatched"
    assert "exactly 1 x" not in ev and "T = 1" not in ev
    assert "equals the correct gradient but for a relative" in ev and "no bug's" in ev


@pytest.mark.slow
def test_a_forward_beyond_the_limit_is_a_model_of_its_own(tmp_path):
    # log(p + 1e-3): the loss moves by ~1e-3, far more than float32 arithmetic would
    src = edit(RNN, ("loss -= np.log(p[targets[t]])", "loss -= np.log(p[targets[t]] + 1e-3)"))
    r = check(write(tmp_path, src), Options())
    assert note(r, "model.perturbed") is None and note(r, "model.nonstandard") is not None


# ------------------------------------------------------------------ model = "standard"


@pytest.mark.slow
@pytest.mark.parametrize("src, forward", [
    (RNN_EPS, {"forward.loss", "forward.last_h"}),
    (LSTM_EPS, {"forward.last_h", "forward.last_c"}),
], ids=["rnn", "lstm"])
def test_a_spec_demanding_the_standard_model_fails_the_epsilon_in_the_forward(
        tmp_path, src, forward):
    r = check(write(tmp_path, src), Options(require_standard=True))
    assert r.verdict == "fail"
    assert set(failed(r)) == forward  # the forward, not the (right) gradients
    for c in r.checks:
        if c.name in forward:
            assert 'model = "standard"' in c.message and "perturbed by" in c.message
    assert r.tolerances["loss_rtol"] == oracle_rtol("float64", 6, 12)
    assert "demands the standard model" in note(r, "model.perturbed").evidence
    assert not any(d.id == "unmatched" for d in r.diagnoses)


@pytest.mark.slow
def test_a_spec_demanding_the_standard_model_passes_the_textbook_forward():
    r = check(str(REF / "lstm_functional.py"), Options(require_standard=True))
    assert r.verdict == "pass" and note(r, "model.perturbed") is None


@pytest.mark.slow
def test_a_bug_under_a_spec_demanding_the_standard_model_is_still_named(tmp_path):
    buggy = edit(RNN_EPS, DWHH_BUG)
    r = check(write(tmp_path, buggy), Options(require_standard=True))
    assert r.verdict == "fail" and "grad.Whh" in failed(r)
    assert r.diagnoses[0].id == "rnn.dwhh-uses-current-h"


# ------------------------------------------------------------------ the layer style

LAYERS = (REF.parent / "layers" / "rnn_layers.py").read_text()
LAYERS_EPS = edit(LAYERS, ("next_h = np.tanh(z)", "next_h = np.tanh(z + 1e-12)"),
                  ("g = np.tanh(a[:, 3 * H:4 * H])", "g = np.tanh(a[:, 3 * H:4 * H] + 1e-12)"))


@pytest.mark.slow
def test_correct_layers_with_epsilons_pass_and_say_so(tmp_path):
    plain = check(str(REF.parent / "layers" / "rnn_layers.py"), Options())
    r = check(write(tmp_path, LAYERS_EPS), Options())
    assert r.verdict == "pass", failed(r)
    titles = {n.title for n in r.notes if n.id == "model.perturbed"}
    assert {"rnn_step_forward: the textbook forward, perturbed",
            "lstm_step_forward: the textbook forward, perturbed"} <= titles
    for unit in ("rnn_step", "lstm_step"):
        key = f"{unit}.grad_rtol"
        assert plain.tolerances[key] < r.tolerances[key] <= 1e-6


@pytest.mark.slow
def test_a_layer_bug_with_an_epsilon_is_named_and_located(tmp_path):
    buggy = edit(LAYERS_EPS, ("dz = dnext_h * (1.0 - next_h ** 2)", "dz = dnext_h"))
    r = check(write(tmp_path, buggy), Options())
    assert r.verdict == "fail"
    assert r.diagnoses[0].id == "rnn.tanh-derivative-missing"
    assert r.diagnoses[0].location.line == line_of(buggy, "dz = dnext_h")


@pytest.mark.slow
def test_a_spec_demanding_the_standard_model_fails_an_epsilon_in_a_layer(tmp_path):
    r = check(write(tmp_path, LAYERS_EPS), Options(require_standard=True))
    assert r.verdict == "fail"
    assert set(failed(r)) == {"forward.rnn_step.next_h", "forward.rnn.h",
                              "forward.lstm_step.next_h", "forward.lstm_step.next_c",
                              "forward.lstm.h"}
