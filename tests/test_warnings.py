"""Correct code never fails (issue 12 §5): an unstable softmax is a warning, truncated BPTT a
note, and a spec's [checks] table can make either fail; the loss.mean note states only what
is true."""
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from bpttcheck import report_gradescope, report_junit, report_terminal, scoring
from bpttcheck.check.engine import Options, check
from bpttcheck.errors import SpecError
from bpttcheck.result import CheckResult, Report
from bpttcheck.spec import load_spec
from conftest import REF, ROOT, ZOO, expected, warned_files

pytestmark = pytest.mark.slow

UNSTABLE = ZOO / "softmax_unstable.py"
DIAGNOSIS_FIELDS = {"id", "confidence", "groups", "title", "evidence", "fix", "exact", "location", "repair"}


def unstable(path, stable="e = np.exp(a - np.max(a))", raw="e = np.exp(a)"):
    """A correct reference file with its softmax's max-subtraction taken out."""
    src = path.read_text()
    assert stable in src
    return src.replace(stable, raw)


# ---------------------------------------------------------------------------- warnings

@pytest.mark.parametrize("path", warned_files(), ids=lambda p: p.name)
def test_a_warned_zoo_file_passes_with_its_warning(path):
    r = check(str(path), Options())
    wid = expected(path)[0].split("warning", 1)[1].strip()
    assert r.verdict == "pass" and r.exit_code == 0 and r.diagnoses == []
    assert [w.id for w in r.warnings] == [wid]
    probe = next(c for c in r.checks if c.name == "probe.large-logits")
    assert probe.status == "warn" and "overflows" in probe.message


def test_warning_in_json_terminal_junit_and_gradescope(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(UNSTABLE),
                          "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
                          "--gradescope", str(tmp_path / "g.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARN probe.large-logits" in out.stdout
    assert "WARNING softmax.unstable" in out.stdout and "np.max" in out.stdout
    assert out.stdout.rstrip().splitlines()[-1].startswith("PASS:")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "pass" and data["diagnoses"] == []
    (w,) = data["warnings"]
    assert set(w) == DIAGNOSIS_FIELDS and w["id"] == "softmax.unstable" and w["fix"]
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    case = next(c for c in suite.iter("testcase") if c.get("name") == "probe.large-logits")
    assert case.find("failure") is None and case.find("skipped") is None
    assert "softmax.unstable" in case.find("system-out").text
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["score"] == sum(t["max_score"] for t in g["tests"]) > 0
    t = next(t for t in g["tests"] if t["name"] == "probe.large-logits")
    assert t["status"] == "passed" and "softmax.unstable" in t["output"]
    assert "softmax.unstable" in g["output"]


def test_scoring_gives_a_warned_check_its_points():
    r = Report(verdict="pass", path="x.py", arch="rnn", style="functional",
               checks=[CheckResult(name="probe.large-logits", status="warn", message="m")])
    assert scoring.score(r, {"default": 0, "probe.large-logits": 3}) == (3.0, 3.0)


def test_karpathys_own_min_char_rnn_passes_with_the_warning(tmp_path):
    """min-char-rnn as Karpathy wrote it: ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))."""
    src = (REF / "rnn_karpathy.py").read_text()
    mine = ("        e = np.exp(ys[t] - np.max(ys[t]))                                  # (Y, 1)\n"
            "        ps[t] = e / np.sum(e)                                              # (Y, 1) probabilities\n")
    assert mine in src
    src = src.replace(mine, "        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t])) # probabilities for next chars\n")
    (tmp_path / "min-char-rnn.py").write_text(src)
    shutil.copy(REF / "input.txt", tmp_path / "input.txt")
    r = check(str(tmp_path / "min-char-rnn.py"), Options())
    assert r.style == "karpathy" and r.verdict == "pass", [c.message for c in r.checks
                                                            if c.status == "fail"]
    assert [w.id for w in r.warnings] == ["softmax.unstable"]
    text = report_terminal.render(r)
    assert "WARNING softmax.unstable" in text and "(1 with a warning)" in text


@pytest.mark.parametrize("name", ["lstm_functional.py", "gru_functional.py"])
def test_an_unstable_lstm_or_gru_softmax_is_seen(name, tmp_module):
    r = check(tmp_module(unstable(REF / name)), Options())
    assert r.verdict == "pass" and [w.id for w in r.warnings] == ["softmax.unstable"]
    stable = check(str(REF / name), Options())
    assert stable.verdict == "pass" and stable.warnings == []
    probe = next(c for c in stable.checks if c.name == "probe.large-logits")
    assert probe.status == "pass"
    top = float(probe.message.split("logits up to about ")[1].split(":")[0])
    assert top > 800  # the probe's logits really overflow exp


def test_a_spec_can_make_the_warning_fail(tmp_path):
    for key in ("softmax.unstable", "probe.large-logits"):
        opts = Options(checks={key: "fail"})
        r = check(str(UNSTABLE), opts)
        assert r.verdict == "fail" and r.exit_code == 1, key
        assert r.diagnoses[0].id == "softmax.unstable" and r.warnings == []
    spec = tmp_path / "a.toml"
    spec.write_text('[checks]\n"softmax.unstable" = "fail"\n"behaviour.repeat" = "warning"\n')
    assert load_spec(str(spec)).checks == {"softmax.unstable": "fail",
                                            "behaviour.repeat": "warning"}
    from bpttcheck.settings import settings
    assert settings(str(spec)).opts.checks["softmax.unstable"] == "fail"


def test_a_spec_can_make_any_check_a_warning():
    r = check(str(ZOO / "grad_not_reset_module.py"), Options(checks={"behaviour.repeat": "warning"}))
    assert r.verdict == "pass" and r.diagnoses == []
    assert [w.id for w in r.warnings] == ["grad.not-reset"]
    assert next(c for c in r.checks if c.name == "behaviour.repeat").status == "warn"


@pytest.mark.parametrize("body, field", [
    ('"probe.huge" = "fail"', "checks"),
    ('"softmax.unstabel" = "fail"', "checks"),
    ('"grad.Wq" = "warning"', "checks"),
    ('"probe.large-logits" = "error"', "checks.probe.large-logits"),
])
def test_unknown_checks_keys_or_values_are_spec_errors(tmp_path, body, field):
    spec = tmp_path / "a.toml"
    spec.write_text("[checks]\n" + body + "\n")
    with pytest.raises(SpecError) as e:
        load_spec(str(spec))
    assert f"  {field}:" in str(e.value)


def test_junit_and_gradescope_of_a_failing_run_keep_warnings_apart():
    """A run that fails for another reason: the warning stays a warning."""
    r = check(str(ZOO / "grad_not_reset_module.py"), Options())
    r2 = r.model_copy(deep=True)
    r2.checks.append(CheckResult(name="probe.large-logits", status="warn", message="overflow"))
    xml = report_junit.render(r2)
    assert "WARNING overflow" in xml
    g = json.loads(report_gradescope.render(r2))
    assert next(t for t in g["tests"] if t["name"] == "probe.large-logits")["status"] == "passed"


# ---------------------------------------------------------------------------- truncated BPTT

TRUNCATED_2 = """
import numpy as np

def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    hs, ps, loss = [np.array(state, dtype=float)], [], 0.0
    for t in range(len(inputs)):
        h = np.tanh(Wxh[:, inputs[t]] + Whh @ hs[-1] + bh)
        z = Why @ h + by
        e = np.exp(z - z.max()); p = e / e.sum()
        loss -= np.log(p[targets[t]]); hs.append(h); ps.append(p)
    g = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(len(inputs)):
        dy = ps[t].copy(); dy[targets[t]] -= 1
        g["Why"] += np.outer(dy, hs[t + 1]); g["by"] += dy
        dh = Why.T @ dy
        for s in range(t, max(t - 2, -1), -1):      # two steps back, its own included
            dr = (1 - hs[s + 1] ** 2) * dh
            g["bh"] += dr; g["Wxh"][:, inputs[s]] += dr; g["Whh"] += np.outer(dr, hs[s])
            dh = Whh.T @ dr
    return loss, g, hs[-1]
"""


def test_truncated_bptt_passes_with_its_depth(tmp_module):
    r = check(tmp_module(TRUNCATED_2), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    note = next(n for n in r.notes if n.id == "bptt.truncated")
    assert "truncated at 2 step(s)" in note.evidence and "step t = 2's" in note.evidence
    fd = {c.name: c.status for c in r.checks if c.name.startswith("fd.")}
    assert fd["fd.all"] == "skip" and fd["fd.Why"] == "pass" and "fd.Whh" not in fd
    assert {g.name: g.fd.status for g in r.groups}["Whh"] == "skip"


def test_a_spec_can_require_full_bptt(tmp_module, tmp_path):
    spec = tmp_path / "a.toml"
    spec.write_text('[checks]\n"bptt.truncated" = "fail"\n')
    from bpttcheck.settings import settings
    opts = settings(str(spec)).opts
    r = check(tmp_module(TRUNCATED_2), opts)
    assert r.verdict == "fail" and not any(n.id == "bptt.truncated" for n in r.notes)
    assert "truncated BPTT of depth 2" in r.diagnoses[0].evidence


def test_full_bptt_is_no_truncation():
    r = check(str(ROOT / "reference/wild/wildml/rnn_numpy_full_bptt.py"), Options())
    assert r.verdict == "pass" and not any(n.id == "bptt.truncated" for n in r.notes)


# ---------------------------------------------------------------------------- loss.mean

def test_the_mean_note_states_only_true_equalities(tmp_module):
    src = (REF / "rnn_mean_loss.py").read_text()
    r = check(str(REF / "rnn_mean_loss.py"), Options())
    note = next(n for n in r.notes if n.id == "loss.mean")
    total = float(note.evidence.split("reference's sum ")[1].split()[0])
    assert abs(total / r.sizes["T"] - r.loss["user"]) < 1e-8
    # a loss that is neither the sum nor the mean, gradients of the mean
    r = check(tmp_module(src.replace("loss = total / T\n", "loss = total / T + 0.5\n")),
              Options())
    note = next(n for n in r.notes if n.id == "loss.mean")
    assert "equals" not in note.evidence and "neither" in note.evidence, note.evidence
    assert note.title == "Gradients averaged over time"


LSTM_TRUNCATED_3 = '''    for t in range(T):
        dv = y_hat[t].copy()
        dv[targets[t]] -= 1.0
        W_v_d += np.outer(dv, h[t + 1])
        b_v_d += dv
        dh_next, dC_next = W_v.T @ dv, np.zeros(H)
        for s in range(t, max(t - 3, -1), -1):           # three steps back, its own included
            tC = np.tanh(C[s + 1])
            dh = dh_next
            do = dh * tC * o[s] * (1.0 - o[s])
            dC = dC_next + dh * o[s] * (1.0 - tC ** 2)
            dg = dC * i[s] * (1.0 - g[s] ** 2)
            di = dC * g[s] * i[s] * (1.0 - i[s])
            df = dC * C[s] * f[s] * (1.0 - f[s])
            W_f_d += np.outer(df, z[s]); b_f_d += df
            W_i_d += np.outer(di, z[s]); b_i_d += di
            W_c_d += np.outer(dg, z[s]); b_c_d += dg
            W_o_d += np.outer(do, z[s]); b_o_d += do
            dz = W_f.T @ df + W_i.T @ di + W_c.T @ dg + W_o.T @ do
            dh_next = dz[:H]
            dC_next = dC * f[s]
'''


def test_truncated_lstm_passes_with_its_depth(tmp_module):
    src = (REF / "lstm_functional.py").read_text()
    a, b = src.index("    for t in reversed(range(T)):"), src.index("    grads = {")
    r = check(tmp_module(src[:a] + LSTM_TRUNCATED_3 + "\n" + src[b:]), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    note = next(n for n in r.notes if n.id == "bptt.truncated")
    assert "truncated at 3 step(s)" in note.evidence and "dW_v" not in note.evidence
    skipped = {g.name for g in r.groups if g.fd and g.fd.status == "skip"}
    assert "Wf" in skipped and "Wy" not in skipped


def test_the_generic_truncation_equals_the_rnn_references_own():
    import numpy as np

    from bpttcheck.check.cases import DEFAULT_DIMS, make_case
    from bpttcheck.check.truncation import truncated
    from bpttcheck.oracle import rnn
    case = make_case(rnn.ARCH, DEFAULT_DIMS, 5)

    def ref(c):
        return rnn.ARCH.run(c.params, c.xs, c.ys, c.state)

    for k in range(1, DEFAULT_DIMS.T + 1):
        mine = truncated(ref, case, k, ref(case)).grads
        theirs = rnn.ARCH.run(case.params, case.xs, case.ys, case.state,
                              bugs=frozenset({f"bptt.truncated:{k}"})).grads
        for n in theirs:
            np.testing.assert_allclose(mine[n], theirs[n], rtol=1e-12, atol=1e-14)
