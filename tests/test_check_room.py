"""The checking room (bpttcheck/check/): findings and a narrow probe for diagnosis, one
catalogue of ids, and the bugs fixed with it (float16 gradients, Options left as given,
measured check times, C fixes for C code in the globals style)."""
import copy
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bpttcheck import report_junit
from bpttcheck.check import catalogue
from bpttcheck.check.cases import DEFAULT_DIMS, make_case
from bpttcheck.check.checks import check_forward, check_groups
from bpttcheck.check.diagnose import diagnose
from bpttcheck.check.engine import Options, check
from bpttcheck.check.findings import Findings
from bpttcheck.check.layers import LayerChecker
from bpttcheck.check.probe import UserProbe
from bpttcheck.check.recorder import Recorder
from bpttcheck.check.sequence import SequenceChecker
from bpttcheck.layout import Layout
from bpttcheck.oracle import rnn
from bpttcheck.result import Report
from conftest import REF, ROOT

HAVE_CC = shutil.which("gcc") is not None or shutil.which("cc") is not None
C_REF = ROOT / "reference" / "c"
FUNCTIONAL = (REF / "rnn_functional.py").read_text()
RETURN = "    return float(loss), grads, hs[T]"


def _float16(src: str) -> str:
    assert RETURN in src
    return src.replace(RETURN, "    return float(loss), {k: v.astype(np.float16) for k, v in "
                               "grads.items()}, hs[T]")


# ---------------------------------------------------------------- float16 gradients

def test_correct_float16_gradients_pass(tmp_module):
    r = check(tmp_module(_float16(FUNCTIONAL)), Options())
    assert r.error is None, r.error
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert r.dtype == "float16"
    # judged as float32 work rounded once to float16: looser than float32, far from vacuous
    assert 1e-3 < r.tolerances["grad_rtol"] < 2e-3


def test_a_float16_bug_is_still_found(tmp_module):
    bug = FUNCTIONAL.replace("dh = Why.T @ dz + dh_next", "dh = Why.T @ dz")
    r = check(tmp_module(_float16(bug)), Options())
    assert r.verdict == "fail" and r.diagnoses[0].id == "rnn.missing-dh-next", r.error


# ---------------------------------------------------------------- Options stay as given

def test_a_run_leaves_the_callers_options_as_they_were(tmp_path):
    if not HAVE_CC:
        pytest.skip("no C compiler")
    from bpttcheck.sandbox.compile import sanitizer_runtime
    from bpttcheck.spec import load_spec
    spec = tmp_path / "a.toml"
    spec.write_text('[assignment]\narch = "rnn"\n[c_globals]\nforward = "forward"\n'
                    'backward = "backward"\n')
    opts = Options(arch="rnn", adapter_options=load_spec(str(spec)).adapter_options())
    before = copy.deepcopy(opts)
    assert check(str(C_REF / "rnn_globals.c"), opts).verdict == "pass"
    assert opts == before and opts.style is None
    if sanitizer_runtime() is None:
        return
    opts = Options(sanitize=True)
    assert check(str(C_REF / "rnn.c"), opts).verdict == "pass"
    assert opts.limits.preload is None, "the ASan preload leaks into the next run"


# ---------------------------------------------------------------- measured check times

def test_each_check_carries_the_time_of_its_work():
    r = check(str(REF / "rnn_functional.py"), Options())
    assert r.verdict == "pass"
    assert all(c.seconds > 0 for c in r.checks), [(c.name, c.seconds) for c in r.checks]
    assert sum(c.seconds for c in r.checks) <= r.timings["total"]
    cases = ET.fromstring(report_junit.render(r)).iter("testcase")
    times = {c.get("name"): float(c.get("time")) for c in cases}
    assert times == {c.name: round(c.seconds, 3) for c in r.checks}


def test_layer_checks_carry_their_time_too():
    r = check(str(ROOT / "reference" / "layers" / "rnn_layers.py"), Options())
    assert r.verdict == "pass" and r.checks
    assert all(c.seconds > 0 for c in r.checks), [(c.name, c.seconds) for c in r.checks]


# ---------------------------------------------------------------- C fixes for C code

@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_c_globals_bug_gets_the_c_fix(tmp_path):
    from bpttcheck.spec import load_spec
    spec = tmp_path / "a.toml"
    spec.write_text('[assignment]\narch = "rnn"\n[c_globals]\nforward = "forward"\n'
                    'backward = "backward"\n')
    src = (C_REF / "rnn_globals.c").read_text()
    bug = src.replace("dWhh[i][j] += dh_raw[i] * h[t][j];",
                      "dWhh[i][j] += dh_raw[i] * h[t + 1][j];")
    assert bug != src
    (tmp_path / "buggy.c").write_text(bug)
    opts = Options(arch="rnn", adapter_options=load_spec(str(spec)).adapter_options())
    r = check(str(tmp_path / "buggy.c"), opts)
    d = r.diagnoses[0]
    assert d.id == "rnn.dwhh-uses-current-h"
    assert d.fix == catalogue.BY_ID[d.id].fix_in("c") != catalogue.BY_ID[d.id].fix
    assert "np." not in d.fix and ";" in d.fix


# ---------------------------------------------------------------- diagnosis through a probe

class MutantCalls:
    """Stands in for the worker: 'user code' that is the reference with bugs planted."""

    def __init__(self, arch, bugs):
        self.arch, self.bugs = arch, frozenset(bugs)

    def call(self, case, layout):
        tr = self.arch.run(case.params, case.xs, case.ys, case.state, bugs=self.bugs)
        return tr.loss, tr.grads, tr.state, {"dtype": "float64"}

    def trace(self, case, layout):
        """No user lines to record: the reference is no one's source file."""
        return [], [], False


CAPS = {"kind": "sequence", "language": "python", "fixed_sizes": "none",
        "poisoned_buffers": False, "entry": "loss_and_grads"}


def _findings(probe, allow_truncated=True):
    rec = Recorder(Report(verdict="pass", path="mutant"))
    obs = probe.observe(make_case(probe.arch, DEFAULT_DIMS, 0), Layout())
    f = Findings(obs, dtype=obs.dtype)
    check_forward(rec, probe, f)
    check_groups(rec, probe, f, allow_truncated=allow_truncated)
    f.failed_checks = rec.failed_checks()
    return f


@pytest.mark.parametrize("bug", ["rnn.dwhh-uses-current-h", "rnn.whh-not-transposed",
                                 "softmax.double-exp:shift"])
def test_diagnosis_needs_only_a_probe_and_the_findings(bug):
    probe = UserProbe(MutantCalls(rnn.ARCH, [bug]), rnn.ARCH, CAPS)
    f = _findings(probe)
    assert f.failed_checks and f.failing_groups
    d = diagnose(probe, f)[0]
    assert d.id == bug.split(":")[0] and d.exact and d.confidence == 0.99


def test_truncated_bptt_is_an_oracle_mutant_and_localised_through_the_probe():
    case = make_case(rnn.ARCH, DEFAULT_DIMS, 3)

    def run(bugs=frozenset()):
        return rnn.run(case.params, case.xs, case.ys, case.state, bugs)

    full, one = run(), run(frozenset({"bptt.truncated:1"}))
    assert run(frozenset({f"bptt.truncated:{DEFAULT_DIMS.T}"})).grads["Whh"] == pytest.approx(
        full.grads["Whh"], abs=1e-14)
    for k in ("Why", "by"):
        np.testing.assert_array_equal(one.grads[k], full.grads[k])
    assert not np.allclose(one.grads["Whh"], full.grads["Whh"])
    probe = UserProbe(MutantCalls(rnn.ARCH, ["bptt.truncated:2"]), rnn.ARCH, CAPS)
    f = _findings(probe)  # a technique: recognised, and the groups pass against it
    assert f.truncated == 2 and not f.failed_checks
    d = diagnose(probe, _findings(probe, allow_truncated=False))[0]  # full BPTT required
    assert d.id == "unmatched" and "truncated BPTT of depth 2" in d.evidence


def test_diagnosis_never_sees_the_checker_or_the_worker():
    for name in ("diagnose", "matching", "localise", "layer_diagnose", "findings", "probe"):
        src = (ROOT / "bpttcheck" / "check" / f"{name}.py").read_text()
        assert not re.search(r"WorkerSession|sandbox|Checker\b|\.report\b", src), name


def test_both_checkers_have_the_same_shape():
    for cls in (SequenceChecker, LayerChecker):
        assert callable(cls.run)
        assert list(cls.__init__.__code__.co_varnames[1:5]) == ["rec", "w", "info", "opts"]


# ---------------------------------------------------------------- one catalogue

def test_every_documented_id_is_in_the_catalogue():
    contract = (ROOT / "docs" / "CONTRACT.md").read_text()
    table = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", contract, re.MULTILINE))
    extension = contract[contract.index("## 7."):]
    ids_7 = set(re.findall(r"`((?:gru|batch|layer)\.[a-z-]+|unmatched)`",
                           extension.split("- Notes:")[0]))
    assert {"unmatched", "layer.not-implemented", "layer.not-run", "batch.sum-missing"} <= ids_7
    for bid in table | ids_7:
        bug = catalogue.BY_ID[bid]
        assert bug.title and bug.fix_in("python") and bug.fix_in("c") and bug.fix_in("layers")


def test_layer_candidates_come_from_the_catalogue():
    assert catalogue.unit_mutants("rnn_step") == ["rnn.dwhh-uses-current-h",
                                                  "rnn.whh-not-transposed",
                                                  "rnn.tanh-derivative-missing"]
    assert set(catalogue.unit_mutants("lstm")) == {
        "lstm.missing-dh-next", "lstm.cell-tanh-derivative-missing",
        "lstm.dc-next-missing-forget"} | {f"lstm.gate-derivative-reapplied:{g}" for g in "ifog"}
    assert "bptt.truncated" not in str(catalogue.mutants("rnn"))  # a measurement, not an id
