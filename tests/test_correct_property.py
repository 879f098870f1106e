"""A correct implementation never fails: hypothesis draws implementations (every correct file
in reference/, each a different style, layout or architecture), probe seeds and sizes."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bpttcheck.engine import Options, check
from bpttcheck.oracle.common import Dims

from conftest import correct_files

pytestmark = pytest.mark.slow
FREE_SIZES = [p for p in correct_files() if "karpathy" not in p.name]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(i=st.integers(0, len(FREE_SIZES) - 1), seed=st.integers(0, 2**31 - 1),
       T=st.integers(2, 8), X=st.integers(1, 7), H=st.integers(1, 7), Y=st.integers(2, 7))
def test_no_false_alarm(i, seed, T, X, H, Y):
    path = FREE_SIZES[i]
    r = check(str(path), Options(seed=seed, dims=Dims(T, X, H, Y)))
    assert r.verdict == "pass", (path.name, seed, (T, X, H, Y),
                                 [c.message for c in r.checks if c.status == "fail"])
