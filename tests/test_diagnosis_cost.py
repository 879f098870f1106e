"""What makes diagnosis cheap at Karpathy size must not change what it finds (issue 14, item
3; the time itself is measured in benchmarks/zoo_diagnosis.py, not here): the shortcuts are
exact, shown here on code that has the property and code that does not."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bpttcheck.check.cases import make_case
from bpttcheck.check.checks import _late_tokens_wrong
from bpttcheck.check.findings import Findings, Observation
from bpttcheck.check.matching import Matcher, same, same_and_diff, same_values
from bpttcheck.check.numerics import oracle_rtol
from bpttcheck.check.probe import UserProbe
from bpttcheck.check.truncation import truncated, window
from bpttcheck.layout import Layout
from bpttcheck.oracle.common import Dims
from bpttcheck.plugins import architectures

CAPS = {"kind": "sequence", "language": "python", "fixed_sizes": "none",
        "poisoned_buffers": False, "entry": "loss_and_grads"}
VALUES = st.floats(-1e3, 1e3) | st.just(np.nan) | st.just(np.inf) | st.just(-np.inf)


@settings(deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4)), elements=VALUES),
       st.data(), st.floats(1e-14, 1e-1))
def test_the_quick_equality_is_the_full_comparisons_verdict(u, data, rtol):
    near = u + data.draw(arrays(np.float64, u.shape, elements=st.floats(-1e-3, 1e-3)))
    other = data.draw(arrays(np.float64, u.shape, elements=VALUES))
    for m in (near, other, u):
        assert same(u, m, rtol) == same_values(u, m, rtol)[0]
        assert same_and_diff(u, m, rtol) == same_values(u, m, rtol)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_chained_one_step_windows_give_the_true_states_bit_for_bit(arch):
    """The truncation search takes the true state before step s from one-step windows
    chained; in float64 that is the arithmetic of one long window, exactly."""
    a = architectures()[arch]
    case = make_case(a, Dims(T=9, X=6, H=5, Y=6), 3)

    def ref(c):
        return a.run(c.params, c.xs, c.ys, c.state)

    state = case.state
    for s in range(1, case.dims.T):
        state = ref(window(case, s - 1, s, state)).state
        long = ref(window(case, 0, s, case.state)).state
        assert all(np.array_equal(x, y) for x, y in zip(state, long, strict=True))


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_a_shared_window_cache_gives_every_depth_the_same_reference(arch):
    a = architectures()[arch]
    case = make_case(a, Dims(T=7, X=4, H=3, Y=4), 1)

    def ref(c):
        return a.run(c.params, c.xs, c.ys, c.state)

    full, cache = ref(case), {}
    for k in range(2, 7):
        alone = truncated(ref, case, k, full).grads
        shared = truncated(ref, case, k, full, cache=cache, chain=True).grads
        assert all(np.array_equal(alone[n], shared[n]) for n in alone)


SIZES = Dims(T=12, X=10, H=4, Y=5)


def observation(arch: str, grads_of, dims=SIZES, seed=2):
    a = architectures()[arch]
    probe = UserProbe(None, a, CAPS)
    case = make_case(a, dims, seed)
    ref = probe.reference(case, "float64")
    return probe, Observation(case, Layout(), ref.loss, grads_of(probe, case, ref), case.state,
                              {"dtype": "float64"}, ref, "sum")


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_truncated_gradients_never_skip_the_search_for_their_depth(arch):
    def truncated_3(probe, case, ref):
        return truncated(lambda c: probe.reference(c, "float64"), case, 3, ref).grads

    probe, o = observation(arch, truncated_3)
    assert set(o.case.xs[-2:]) - set(o.case.xs[:-2])  # the columns the screen reads exist
    d = o.case.dims
    assert not _late_tokens_wrong(probe, o, oracle_rtol("float64", d.T, d.H + d.X + d.Y))


@pytest.mark.parametrize("arch,bug", [("rnn", "rnn.tanh-derivative-missing"),
                                      ("lstm", "lstm.cell-tanh-derivative-missing"),
                                      ("gru", "gru.update-gate-flipped")])
def test_a_bug_in_every_step_skips_the_truncation_search(arch, bug):
    def buggy(probe, case, ref):
        return probe.reference(case, "float64", "sum", frozenset({bug})).grads

    probe, o = observation(arch, buggy)
    d = o.case.dims
    assert _late_tokens_wrong(probe, o, oracle_rtol("float64", d.T, d.H + d.X + d.Y))


def matcher(arch: str, bug: str) -> Matcher:
    def buggy(probe, case, ref):
        return probe.reference(case, "float64", "sum", frozenset({bug})).grads

    probe, o = observation(arch, buggy)
    f = Findings(o, dtype="float64")
    f.failing_groups = [k for k in o.grads if not np.array_equal(o.grads[k], o.ref.grads[k])]
    return Matcher(probe, f)


def test_a_mutant_that_leaves_the_failing_group_as_it_is_is_not_planted():
    m = matcher("rnn", "rnn.dwhy-uses-prev-h")  # only dWhy is wrong
    assert m.failing == ["Why"]
    assert m.possible(["rnn.dwhy-uses-prev-h"])
    assert not m.possible(["rnn.whh-not-transposed"])  # leaves dWhy as it is
    assert m._structure("rnn.whh-not-transposed")[1] >= {"Why", "by"}
    # the sign of dy is a backward mistake; a double exp in the softmax changes the loss
    assert m._structure("loss.dy-sign")[0] and not m._structure("softmax.double-exp")[0]
    # what a bug leaves as it is depends on the reduction: averaged loss, summed gradients
    assert m._structure("loss.mean-grad-sum:mean-loss", "sum")[1] == set(m.names)
    assert m._structure("loss.mean-grad-sum:mean-loss", "mean")[1] == set()


@pytest.mark.parametrize("arch,bug", [("rnn", "rnn.dwhh-uses-current-h"),
                                      ("lstm", "lstm.state-offset"),
                                      ("gru", "gru.direct-path-missing")])
def test_the_bug_itself_is_always_possible(arch, bug):
    m = matcher(arch, bug)
    assert m.possible([bug]) and m.exact(m.o, [bug]) and m.explains(m.o, [bug])[0]
    other = "loss.dy-sign"
    assert m.exact(m.o, [other]) == m.explains(m.o, [other])[0] is False
