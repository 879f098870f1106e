import numpy as np
import pytest

from bpttcheck.check.numerics import compare, directional_check, fd_offsets, oracle_rtol


def test_both_zero_entries_are_exact_not_nan():
    c = compare(np.zeros((3, 2)), np.zeros((3, 2)), 1e-10)
    assert c.passed and c.max_rel_error == 0.0 and c.max_abs_error == 0.0


def test_one_wrong_entry_is_found_with_both_values():
    r = np.arange(1.0, 7.0).reshape(2, 3)
    u = r.copy()
    u[1, 2] = 7.5
    c = compare(u, r, 1e-10)
    assert not c.passed and c.n_bad == 1
    assert c.worst_index == (1, 2) and c.worst_user == 7.5 and c.worst_ref == 6.0


def test_nan_fails():
    r = np.ones(4)
    u = r.copy()
    u[0] = np.nan
    assert not compare(u, r, 1e-3).passed


def test_near_zero_entry_is_judged_on_the_group_scale():
    r = np.array([1.0, 1e-9])
    u = np.array([1.0, 1e-9 + 1e-14])  # a round-off-sized absolute error on a tiny entry
    assert compare(u, r, 1e-12).passed


def test_tolerance_follows_dtype():
    assert oracle_rtol(np.float32, 25, 165) > 1e6 * oracle_rtol(np.float64, 25, 165) / 1e3
    assert oracle_rtol(np.float64, 25, 165) < 1e-10


@pytest.mark.parametrize("wrong", [False, True])
def test_taylor_rate_two_for_right_gradient_one_for_wrong(wrong):
    # f(x) = sum(sin(x)) along a unit direction d
    x = np.array([0.3, -1.1, 0.7])
    d = np.array([1.0, 2.0, -2.0]) / 3.0
    g = np.cos(x) * (1.5 if wrong else 1.0)
    f = lambda s: float(np.sum(np.sin(x + s * d)))  # noqa: E731
    h = 1e-2
    losses = {s: f(s) for s in fd_offsets(h)}
    dc = directional_check(f(0), losses, float(g @ d), float(np.abs(g * d).sum()), h, np.float64)
    assert dc.passed is (not wrong)
    assert dc.rate_verdict == ("wrong" if wrong else "right")
