"""The result's data classes (bpttcheck/datamodel.py) convert fields as the pydantic models they
replace did: the JSON report must not change by a byte. pydantic (a dependency: specs are
validated with it) is the yardstick here."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import get_type_hints

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from bpttcheck import datamodel, result
from bpttcheck.errors import ErrorKind

MODELS = [c for c in vars(result).values()
          if isinstance(c, type) and issubclass(c, datamodel.Model) and c is not datamodel.Model]


def _contains_model(tp) -> bool:
    if isinstance(tp, type) and issubclass(tp, datamodel.Model):
        return True
    return any(_contains_model(a) for a in getattr(tp, "__args__", ()))


# every field type of the result's classes that holds no nested class (those are below)
LEAF_TYPES = sorted({repr(tp): tp for m in MODELS for n, tp in get_type_hints(m).items()
                     if not n.startswith("_") and not _contains_model(tp)}.items())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.sampled_from(["nan", "inf", "-inf", "1.5", "3", "pass", "fail", "", "x", "true"]),
    st.integers(-1000, 1000).map(np.int64), st.floats(width=32).map(np.float32),
    st.floats().map(np.float64), st.booleans().map(np.bool_),
    st.sampled_from([ErrorKind.TIMEOUT, ErrorKind.CRASH]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(st.sampled_from(["T", "H", "a"]), inner, max_size=3)), max_leaves=6)


def _same(a, b) -> bool:
    """Equal values of the same types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name,tp", LEAF_TYPES, ids=[n for n, _ in LEAF_TYPES])
@settings(max_examples=300, deadline=None)
@given(v=values)
def test_a_field_converts_a_value_as_pydantic_validates_it(name, tp, v):
    convert = datamodel._converter(tp)
    try:
        want = TypeAdapter(tp).validate_python(v)
    except ValidationError:
        with pytest.raises(datamodel.ValidationError):
            convert(v)
        return
    got = convert(v)
    assert _same(got, want), (v, got, want)


def _group(**kw):
    base = dict(name="Whh", user_name="W_hh", status="fail", max_abs_error=np.float64(0.5),
                max_rel_error=1, worst_index=(np.int64(3), 4), worst_user=np.float32(0.25),
                worst_ref=2, tolerance=1e-9, scale=np.float64(3.0), n_bad=np.int64(7), n=100)
    return result.GroupResult(**{**base, **kw})


def test_a_report_built_from_numpy_values_dumps_plain_python_in_field_order():
    fd = dict(status="pass", analytic=1, numeric=np.float64(1.0), error=0, tolerance=1e-6,
              noise=0, taylor_rates=[2, None, np.float64(1.9)], rate_verdict="ok", step=1e-3)
    r = result.Report(verdict="fail", path="m.py", groups=[_group(fd=fd)],
                      sizes={"T": np.int64(25)}, tolerances={"grad_rtol": 1},
                      error={"kind": ErrorKind.TIMEOUT, "message": "slow"})
    d = r.model_dump()
    assert list(d) == [f.name for f in dataclasses.fields(result.Report)]
    g = d["groups"][0]
    assert g["worst_index"] == [3, 4] and type(g["worst_index"][0]) is int
    assert type(g["max_rel_error"]) is float and type(g["n_bad"]) is int
    assert g["fd"]["taylor_rates"] == [2.0, None, 1.9] and type(g["fd"]["analytic"]) is float
    assert d["sizes"] == {"T": 25} and d["tolerances"] == {"grad_rtol": 1.0}
    assert type(d["error"]["kind"]) is str and d["error"]["kind"] == "timeout"
    json.dumps(d)  # nothing numpy left in it


def test_a_wrong_value_is_refused_with_the_field_named():
    with pytest.raises(datamodel.ValidationError, match=r"GroupResult\.status"):
        _group(status="maybe")
    with pytest.raises(datamodel.ValidationError, match=r"GroupResult\.n_bad"):
        _group(n_bad=2.5)
    with pytest.raises(ValueError, match="Report"):  # a report.json that is not one
        result.Report.model_validate({"path": "m.py"})
    with pytest.raises(ValueError):
        result.Report.model_validate_json("[1, 2]")


def test_the_json_round_trip_gives_the_same_report_and_private_fields_stay_out():
    loc = result.Location(file="m.py", line=np.int64(12), step=3, source="dh = dy",
                          differs_by=np.float64(0.5))
    loc._lines, loc._key = (12, 13), "dh"
    d = result.Diagnosis(id="x", confidence=0.9, groups=["Whh"], title="t", evidence="e",
                         fix="f", location=loc)
    d._planted = ("x",)
    r = result.Report(verdict="fail", path="m.py", groups=[_group(max_abs_error=math.inf)],
                      diagnoses=[d])
    dumped = r.model_dump()
    assert "_lines" not in dumped["diagnoses"][0]["location"]
    assert "_planted" not in dumped["diagnoses"][0]
    from bpttcheck import report_json
    back = result.Report.model_validate_json(report_json.render(r))
    assert back.groups[0].max_abs_error == math.inf  # written "inf", read back a float
    assert back.model_dump() == dumped
    copied = r.model_copy(deep=True)
    assert copied.diagnoses[0].location._lines == (12, 13) and copied.diagnoses[0]._planted == ("x",)
    copied.diagnoses[0].location.line = 99
    assert r.diagnoses[0].location.line == 12  # deep: the original is untouched


def test_model_copy_replaces_without_converting_and_assignment_is_kept_as_given():
    g = _group()
    c = g.model_copy(update={"status": "pass"})
    assert c.status == "pass" and g.status == "fail" and c.worst_index is g.worst_index
    g.max_abs_error = 1  # assignment is not converted (nor was it by pydantic)
    assert g.model_dump()["max_abs_error"] == 1
    assert json.loads(result.Report(verdict="pass", path="p",
                                    groups=[_group(max_abs_error=math.nan)]).model_dump_json()
                      )["groups"][0]["max_abs_error"] is None
