"""The float64 reference: the worked example of seed 002 to the printed digits, and agreement
with high-accuracy finite differences for every shape, seed and sequence length."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttcheck.check.cases import make_case
from bpttcheck.oracle import gru, lstm, rnn
from bpttcheck.oracle.common import Dims

SEED002 = dict(
    P={"Wxh": np.array([[0.5, -0.3, 0.8, 0.0]]), "Whh": np.array([[0.2]]),
       "Why": np.array([[1.0], [0.5], [-0.5], [0.0]]), "bh": np.zeros(1), "by": np.zeros(4)},
    xs=[0, 1, 2, 3], ys=[1, 2, 3, 3], state=(np.zeros(1),))


def test_seed002_worked_example_to_the_digits():
    tr = rnn.run(SEED002["P"], SEED002["xs"], SEED002["ys"], SEED002["state"])
    np.testing.assert_allclose(tr.loss_steps, [1.3038836248184211, 1.2393441229841993,
                                               1.609624739367793, 1.4206817583023288], rtol=1e-14)
    assert abs(tr.grads["Whh"][0, 0] - 0.452094511014637) < 1e-15
    assert abs(tr.grads["bh"][0] - 1.3226473502170562) < 1e-15
    assert abs(tr.grads["Wxh"][0, 1] - 0.7141787364790343) < 1e-15
    np.testing.assert_allclose(tr.grads["Why"][:, 0],
                               [0.39245801, -0.17572493, 0.34627310, -0.56300617], atol=5e-9)
    np.testing.assert_allclose(tr.hs[1:, 0], [0.46211715726000974, -0.20464571679388185,
                                              0.6405293508298561, 0.12740965340755267], rtol=1e-14)


def _fd(mod, case, name, idx, h=1e-5):
    """Richardson-extrapolated central difference of the loss in one entry."""
    def at(s):
        P = {k: v.copy() for k, v in case.params.items()}
        P[name][idx] += s
        return mod.run(P, case.xs, case.ys, case.state).loss
    d1 = (at(h) - at(-h)) / (2 * h)
    d2 = (at(h / 2) - at(-h / 2)) / h
    return (4 * d2 - d1) / 3


@settings(deadline=None)
@given(arch=st.sampled_from([rnn, lstm, gru]), T=st.integers(1, 8), X=st.integers(1, 9),
       H=st.integers(1, 9), Y=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_reference_agrees_with_finite_differences(arch, T, X, H, Y, seed):
    case = make_case(arch.ARCH, Dims(T, X, H, Y), seed)
    tr = arch.run(case.params, case.xs, case.ys, case.state)
    rng = np.random.default_rng(seed)
    for name, g in tr.grads.items():
        for _ in range(3):  # a few random entries per group keep the test fast
            idx = tuple(int(rng.integers(0, n)) for n in g.shape)
            assert abs(_fd(arch, case, name, idx) - g[idx]) <= 1e-7 * max(1.0, abs(g[idx])), \
                (name, idx)


@settings(deadline=None)
@given(arch=st.sampled_from([rnn, lstm, gru]), T=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_per_step_contributions_sum_to_the_gradient(arch, T, seed):
    case = make_case(arch.ARCH, Dims(T, 3, 4, 5), seed)
    tr = arch.run(case.params, case.xs, case.ys, case.state)
    for k, g in tr.grads.items():
        np.testing.assert_allclose(tr.contrib[k].sum(axis=0), g, atol=1e-14)
    assert tr.dh.shape == (T, 4)


def test_mean_reduction_scales_loss_and_gradients():
    case = make_case(lstm.ARCH, Dims(5, 3, 4, 2), 3)
    s = lstm.run(case.params, case.xs, case.ys, case.state)
    m = lstm.run(case.params, case.xs, case.ys, case.state, reduction="mean")
    assert abs(m.loss - s.loss / 5) < 1e-14
    for k in s.grads:
        np.testing.assert_allclose(m.grads[k], s.grads[k] / 5, atol=1e-15)


def test_each_mutant_changes_something():
    from bpttcheck.check import catalogue
    for mod in (rnn, lstm, gru):
        case = make_case(mod.ARCH, Dims(6, 5, 4, 3), 1)
        ref = mod.run(case.params, case.xs, case.ys, case.state)
        for bug in catalogue.mutants(mod.ARCH.name):
            tr = mod.run(case.params, case.xs, case.ys, case.state, bugs=frozenset([bug]))
            moved = abs(tr.loss - ref.loss) > 1e-9 or not np.isfinite(tr.loss) or any(
                not np.allclose(tr.grads[k], ref.grads[k], atol=1e-9, equal_nan=False)
                for k in ref.grads)
            assert moved, bug


@settings(max_examples=30, deadline=None)
@given(arch=st.sampled_from([lstm, gru]), T=st.integers(1, 6), X=st.integers(1, 6),
       H=st.integers(1, 6), Y=st.integers(2, 6), seed=st.integers(0, 2**31 - 1))
def test_every_legitimate_variant_agrees_with_finite_differences(arch, T, X, H, Y, seed):
    case = make_case(arch.ARCH, Dims(T, X, H, Y), seed)
    rng = np.random.default_rng(seed)
    for variant, _ in arch.ARCH.variants:
        bugs = frozenset({variant})
        tr = arch.run(case.params, case.xs, case.ys, case.state, bugs=bugs)
        plain = arch.run(case.params, case.xs, case.ys, case.state)
        assert abs(tr.loss - plain.loss) > 1e-9, "a variant is a different model"

        class Variant:  # _fd differences mod.run: the variant's own loss
            run = staticmethod(lambda P, xs, ys, st, _b=bugs: arch.run(P, xs, ys, st, bugs=_b))
        for name, g in tr.grads.items():
            idx = tuple(int(rng.integers(0, n)) for n in g.shape)
            assert abs(_fd(Variant, case, name, idx) - g[idx]) <= 1e-7 * max(1.0, abs(g[idx])), \
                (variant, name, idx)


def test_the_gru_update_flipped_bug_is_the_other_conventions_backward():
    """Forward in one convention, backward written for the other: planting the bug in the
    variant gives the canonical backward, and the reverse."""
    case = make_case(gru.ARCH, Dims(5, 3, 4, 2), 3)
    v = "variant.z-weighs-candidate"
    run = lambda bugs: gru.run(case.params, case.xs, case.ys, case.state, bugs=frozenset(bugs))  # noqa: E731
    assert not np.allclose(run([v, "gru.update-gate-flipped"]).grads["Wz"], run([v]).grads["Wz"])
    np.testing.assert_allclose(run([v]).loss, run([v, "gru.update-gate-flipped"]).loss)



@settings(max_examples=30, deadline=None)
@given(arch=st.sampled_from(["rnn", "lstm", "gru"]), seed=st.integers(0, 10**6),
       T=st.integers(1, 6), mean=st.booleans())
def test_streamed_sums_equal_the_kept_shares(arch, seed, T, mean):
    """A reference that streams its steps' shares (the default) gives the same gradients and
    magnitudes as one that keeps them, and its contrib, made again on first use, is the kept
    run's: nothing a check reads depends on whether they were kept."""
    import numpy as np

    from bpttcheck.check.cases import make_case
    from bpttcheck.oracle.common import Dims
    from bpttcheck.plugins import architectures
    a = architectures()[arch]
    c = make_case(a, Dims(T=T, X=4, H=3, Y=5), seed)
    red = "mean" if mean else "sum"
    lean = a.run(c.params, c.xs, c.ys, c.state, reduction=red)
    full = a.run(c.params, c.xs, c.ys, c.state, reduction=red, keep=True)
    assert lean._contrib is None and full._contrib is not None  # nothing kept unless asked
    for k in a.param_names:
        np.testing.assert_array_equal(lean.grads[k], full.grads[k])
        np.testing.assert_allclose(lean.magnitude[k], np.abs(full.contrib[k]).sum(axis=0),
                                   rtol=1e-12, atol=1e-300)
        np.testing.assert_array_equal(lean.contrib[k], full.contrib[k])
        np.testing.assert_allclose(lean.contrib[k].sum(axis=0), lean.grads[k], rtol=1e-12,
                                   atol=1e-15)
