"""Layer style (`rnn_layers.py`, CONTRACT §2.2b): correct files pass, every planted bug in the
independently written zoo is named first, stubs are 'not implemented', and a step bug that the
sequence function inherits is named once."""
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttcheck.check.engine import Options, check
from bpttcheck.check.layers import make_case, reference
from bpttcheck.check.numerics import directional_check, fd_offsets
from bpttcheck.layer_api import UNITS
from conftest import ROOT, expected

LAYERS = ROOT / "reference" / "layers"
ZOO = ROOT / "reference" / "bugs" / "layers"
BUGS = sorted(p for p in ZOO.glob("*.py") if expected(p) != ["pass"])


def _functions(path: Path) -> list[str]:
    m = re.search(r"^# functions:\s*(.*)$", path.read_text(), re.M)
    return [s.strip() for s in m.group(1).split(",")] if m else []


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
@settings(deadline=None)
@given(seed=st.integers(0, 10**6))
def test_layer_reference_agrees_with_finite_differences(unit, seed):
    c = make_case(unit, seed)
    _outs, grads = reference(unit, c)
    rng = np.random.default_rng(seed)
    for i, g in enumerate(grads):
        d = rng.standard_normal(c.args[i].shape)
        d /= np.linalg.norm(d)

        def L(s, d=d, i=i):
            args = [a + s * d if j == i else a for j, a in enumerate(c.args)]
            outs = reference(unit, c.__class__(args, c.ups))[0]
            return float(sum(np.sum(u * o) for u, o in zip(c.ups, outs, strict=True)))
        h = 1e-3
        dc = directional_check(L(0.0), {s: L(s) for s in fd_offsets(h)}, float(np.sum(g * d)),
                               float(np.abs(g * d).sum()), h, "float64")
        assert dc.passed, (unit.name, unit.grads[i], dc)


@pytest.mark.slow
@pytest.mark.parametrize("path", [LAYERS / "rnn_layers.py", LAYERS / "rnn_only_layers.py",
                                  ZOO / "pass_inline_split.py"], ids=lambda p: p.name)
def test_correct_layer_files_pass(path):
    r = check(str(path), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert r.style == "layers" and all(v == "pass" for v in r.parts.values())
    assert any(g.name == "rnn_step.dprev_h" for g in r.groups)
    assert all(g.fd is not None and g.fd.status == "pass" for g in r.groups)


@pytest.mark.slow
def test_a_file_with_rnn_and_lstm_gets_a_verdict_each():
    r = check(str(ZOO / "lstm_dc_next_missing_forget.py"), Options())
    assert r.parts == {"rnn": "pass", "lstm": "fail"} and r.verdict == "fail"
    assert check(str(LAYERS / "rnn_only_layers.py"), Options()).parts == {"rnn": "pass"}


@pytest.mark.slow
def test_stubs_are_not_implemented_not_crashes():
    r = check(str(LAYERS / "partial_layers.py"), Options())
    assert r.verdict == "fail" and r.error is None
    assert r.parts == {"rnn": "pass", "lstm": "fail"}
    failing = {c.name for c in r.checks if c.status == "fail"}
    assert failing == {"implemented.lstm_step", "implemented.lstm"}, failing
    assert [d.id for d in r.diagnoses] == ["layer.not-implemented"] * 2


@pytest.mark.quality
@pytest.mark.parametrize("path", BUGS, ids=lambda p: p.name)
def test_planted_layer_bug_is_named_first(path):
    r = check(str(path), Options())
    assert r.verdict == "fail"
    assert r.diagnoses[0].id == expected(path)[0], [(d.id, d.groups) for d in r.diagnoses]
    # it fails in the functions the zoo's label names, and only there
    units = {c.name.split(".")[1] for c in r.checks if c.status == "fail"}
    labelled = {f.replace("_backward", "").replace("_forward", "") for f in _functions(path)}
    assert units == labelled, (units, labelled)


@pytest.mark.slow
def test_a_step_bug_inherited_by_the_sequence_is_named_once():
    r = check(str(ZOO / "rnn_tanh_derivative_missing.py"), Options())
    ids = [d.id for d in r.diagnoses]
    assert ids.count("rnn.tanh-derivative-missing") == 1 and "unmatched" not in ids
    d = r.diagnoses[0]
    assert "rnn_step.dx" in d.groups and "rnn.dWh" in d.groups
    assert "inherits" in d.evidence and "1 - next_h**2" in d.fix


@pytest.mark.slow
def test_unknown_bug_is_localised_not_misnamed(tmp_path):
    src = (LAYERS / "rnn_layers.py").read_text()
    bad = src.replace("return dx, dh0, dWx, dWh, db", "return dx, dh0, dWx, 1.1 * dWh, db", 1)
    assert bad != src
    p = tmp_path / "rnn_layers.py"
    p.write_text(bad)
    r = check(str(p), Options())
    assert r.verdict == "fail"
    assert r.diagnoses[0].id == "unmatched" and r.diagnoses[0].groups == ["rnn.dWh"]
    assert "rnn_step_backward passes" in r.diagnoses[0].evidence


@pytest.mark.slow
@settings(max_examples=5, deadline=None,  # a whole check each: a budget, not a profile's
          suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 10**6), bug=st.sampled_from(BUGS))
def test_planted_bugs_are_caught_for_every_seed(seed, bug):
    r = check(str(bug), Options(seed=seed))
    assert r.verdict == "fail" and r.diagnoses[0].id == expected(bug)[0]


@pytest.mark.slow
@settings(max_examples=5, deadline=None)  # a whole check each: a budget, not a profile's
@given(seed=st.integers(0, 10**6))
def test_correct_layers_pass_for_every_seed(seed):
    assert check(str(LAYERS / "rnn_layers.py"), Options(seed=seed)).verdict == "pass"


@pytest.mark.slow
def test_an_unknown_step_bug_is_reported_once_with_the_sequence_it_breaks(tmp_path):
    src = (LAYERS / "rnn_layers.py").read_text()
    bad = src.replace("dz = dnext_h * (1.0 - next_h ** 2)", "dz = dnext_h * (1.0 - prev_h ** 2)")
    assert bad != src
    p = tmp_path / "rnn_layers.py"
    p.write_text(bad)
    r = check(str(p), Options())
    assert [d.id for d in r.diagnoses] == ["unmatched"]
    d = r.diagnoses[0]
    assert "rnn_step.dx" in d.groups and "rnn.dWh" in d.groups and "fix the step first" in d.evidence
