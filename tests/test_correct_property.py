"""A correct implementation never fails: hypothesis draws implementations (every correct file
in reference/, each a different style, layout or architecture), probe seeds and sizes."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttcheck.check.engine import Options, check
from bpttcheck.oracle.common import Dims
from conftest import correct_files

pytestmark = pytest.mark.slow
FREE_SIZES = [p for p in correct_files() if "karpathy" not in p.name]


# one test per implementation, the profile's examples shared among them: the same search,
# spread over the parallel test workers instead of queued on one
EACH = max(1, settings.default.max_examples // len(FREE_SIZES))


@pytest.mark.parametrize("path", FREE_SIZES, ids=lambda p: p.name)
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EACH)
@given(seed=st.integers(0, 2**31 - 1),
       T=st.integers(2, 8), X=st.integers(1, 7), H=st.integers(1, 7), Y=st.integers(2, 7))
def test_no_false_alarm(path, seed, T, X, H, Y):
    r = check(str(path), Options(seed=seed, dims=Dims(T, X, H, Y)))
    assert r.verdict == "pass", (path.name, seed, (T, X, H, Y),
                                 [c.message for c in r.checks if c.status == "fail"])


def test_a_bias_gradient_that_cancels_over_time_is_no_false_alarm():
    """Found by the test above in CI: with H = 1, dbi sums eight per-step terms of either sign
    to -6.5e-5, so a correct float64 sum is off by 1e-12 relative. The tolerance scales with
    the size of the terms summed, not only with the result."""
    path = next(p for p in FREE_SIZES if p.name == "lstm_functional.py")
    r = check(str(path), Options(seed=5680, dims=Dims(8, 1, 1, 2)))
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
