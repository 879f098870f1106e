"""The assignment spec's feedback controls, severity and tolerances, through every output the
student sees: the terminal summary, JSON, HTML, JUnit and Gradescope's results.json. Each key
is tried on code with the finding it acts on and, as a control, without the key (so the
thing left out is shown there: a test that cannot fail is a defect)."""
import csv
import html
import json
import subprocess
import sys

import pytest

from bpttcheck import report_gradescope
from bpttcheck.errors import SpecError
from bpttcheck.feedback import VISIBILITIES
from bpttcheck.settings import settings
from bpttcheck.spec import load_spec
from conftest import REF, ZOO

pytestmark = pytest.mark.slow  # each test runs the command on user code
BUGGY = ZOO / "lstm_state_offset.py"  # fails with a diagnosis that has evidence and a fix
NOT_RESET = ZOO / "grad_not_reset_module.py"  # fails behaviour.repeat (grad.not-reset)
OUTPUTS = ("terminal", "json", "html", "junit", "gradescope")


def _run(tmp_path, model, spec: str | None = None, name: str = "run"):
    """Every report of one run: {output: text}, the exit code, the parsed JSON reports."""
    d = tmp_path / name
    d.mkdir()
    args = [sys.executable, "-m", "bpttcheck", "run", str(model), "--json", str(d / "r.json"),
            "--html", str(d / "r.html"), "--junit", str(d / "r.xml"),
            "--gradescope", str(d / "g.json")]
    if spec is not None:
        (d / "spec.toml").write_text(spec)
        args += ["--spec", str(d / "spec.toml")]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    texts = {"terminal": p.stdout, "json": (d / "r.json").read_text(),
             "html": (d / "r.html").read_text(), "junit": (d / "r.xml").read_text(),
             "gradescope": (d / "g.json").read_text()}
    return texts, p.returncode, json.loads(texts["json"]), json.loads(texts["gradescope"])


def _shown(text: str, output: str, snippet: str) -> bool:
    """Is ``snippet`` in one output, as that output writes it (HTML escapes, JSON quotes)?"""
    if output == "html":
        return html.escape(snippet, quote=False) in text or html.escape(snippet) in text
    if output in ("json", "gradescope"):
        return json.dumps(snippet)[1:-1] in text
    if output == "junit":
        return html.escape(snippet, quote=False) in text
    return snippet in text


def _fix_lines(report: dict) -> list[str]:
    return [ln.strip() for d in report["diagnoses"] + report["warnings"]
            for ln in d["fix"].splitlines() if len(ln.strip()) > 8]


def test_show_fix_false_leaves_every_fix_snippet_out(tmp_path):
    shown, rc, data, _ = _run(tmp_path, BUGGY, name="control")
    lines = _fix_lines(data)
    assert rc == 1 and lines
    for out in OUTPUTS:  # the control: the fix is in every output
        assert all(_shown(shown[out], out, ln) for ln in lines), out
    hidden, rc2, data2, grades2 = _run(tmp_path, BUGGY, "[feedback]\nshow_fix = false\n")
    assert rc2 == 1 and data2["withheld"] == ["fix"]
    for out in OUTPUTS:
        assert not any(_shown(hidden[out], out, ln) for ln in lines), out
        assert "lstm.state-offset" in hidden[out], out  # the diagnosis is still named ...
        assert _shown(hidden[out], out, data["diagnoses"][0]["evidence"][:60]), out  # ... with its evidence
    assert all(d["fix"] == "" for d in data2["diagnoses"])
    assert "fix:" not in hidden["terminal"] and 'class="fix"' not in hidden["html"]
    # the student learns that it is left out on purpose
    assert "not shown for this assignment: fix" in hidden["terminal"]
    assert "Not shown for this assignment: fix." in hidden["html"]
    assert "not shown for this assignment" not in shown["terminal"] + shown["html"]
    # what the student is told changes; the grade does not
    _, _, _, grades = _run(tmp_path, BUGGY, "", name="plain")
    assert grades2["score"] == grades["score"]


def test_show_evidence_false_keeps_the_id_and_title(tmp_path):
    shown, _, data, _ = _run(tmp_path, BUGGY, name="control")
    d = data["diagnoses"][0]
    evidence = d["evidence"][:80]
    assert all(_shown(shown[out], out, evidence) for out in OUTPUTS)
    hidden, rc, data2, _ = _run(tmp_path, BUGGY, "[feedback]\nshow_evidence = false\n")
    assert rc == 1 and data2["withheld"] == ["evidence"]
    for out in OUTPUTS:
        assert not _shown(hidden[out], out, evidence), out
        assert d["id"] in hidden[out] and _shown(hidden[out], out, d["title"]), out
    assert "evidence:" not in hidden["terminal"] and ">Evidence<" not in hidden["html"]
    assert all(_shown(hidden[out], out, _fix_lines(data)[0]) for out in OUTPUTS)  # fix stays


def test_feedback_leaves_a_passing_run_as_it_was(tmp_path):
    spec = ('[assignment]\ntitle = "HW3"\n[feedback]\nshow_fix = false\nshow_evidence = false\n'
            'visibility = "hidden"\n')
    _, rc, data, grades = _run(tmp_path, REF / "lstm_functional.py", spec)
    _, rc0, data0, grades0 = _run(tmp_path, REF / "lstm_functional.py", name="plain")
    assert rc == rc0 == 0 and data["verdict"] == data0["verdict"] == "pass"
    assert grades["score"] == grades0["score"] == sum(t["max_score"] for t in grades["tests"])
    assert grades["visibility"] == "hidden" and grades0["visibility"] == "visible"


def test_the_title_is_shown_in_every_report(tmp_path):
    title = "HW3: LSTM backprop (Fall 2026)"
    shown, _, data, grades = _run(tmp_path, BUGGY, f'[assignment]\ntitle = "{title}"\n')
    assert shown["terminal"].splitlines()[0] == title
    assert data["title"] == title and grades["output"].startswith(f"## {title}")
    for out in ("html", "junit"):
        assert _shown(shown[out], out, title), out
    assert f"<title>bpttcheck FAIL: {BUGGY.name} ({html.escape(title)})</title>" in shown["html"]
    plain, _, data0, _ = _run(tmp_path, BUGGY, name="plain")
    assert data0["title"] == "" and not any(_shown(plain[o], o, title) for o in OUTPUTS)


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_visibility_passes_into_results_json(tmp_path, visibility):
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[feedback]\nvisibility = "{visibility}"\n')
    s = settings(str(spec))
    assert s.feedback.visibility == visibility
    from bpttcheck.result import CheckResult, Report
    r = Report(verdict="pass", path="m.py", arch="rnn", style="functional",
               checks=[CheckResult(name="forward.loss", status="pass", message="ok")])
    out = json.loads(report_gradescope.render(r, s.points, s.feedback.visibility))
    assert out["visibility"] == visibility
    assert out["tests"] and {t["visibility"] for t in out["tests"]} == {visibility}


def test_grade_writes_the_students_reports_as_the_spec_lets(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "alice.py").write_text(BUGGY.read_text())
    (klass / "bob.py").write_text((REF / "lstm_functional.py").read_text())
    spec = tmp_path / "spec.toml"
    spec.write_text('[assignment]\ntitle = "HW3"\narch = "lstm"\n[feedback]\nshow_fix = false\n')
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "grade", str(klass), "--out",
                        str(tmp_path / "out"), "--spec", str(spec), "-q", "--jobs", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    alice = json.loads((tmp_path / "out" / "alice" / "report.json").read_text())
    assert alice["title"] == "HW3" and alice["diagnoses"]
    assert all(d["fix"] == "" for d in alice["diagnoses"]) and alice["withheld"] == ["fix"]
    page = (tmp_path / "out" / "alice" / "report.html").read_text()
    assert 'class="fix"' not in page and "HW3" in page
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8-sig") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert rows["alice"]["top_diagnosis"] == "lstm.state-offset"  # the instructor still sees it


# ------------------------------------------------------------------------ [checks] severity

def test_a_check_made_a_warning_is_reported_everywhere_and_costs_nothing(tmp_path):
    _, rc0, data0, grades0 = _run(tmp_path, NOT_RESET, name="control")
    assert rc0 == 1 and data0["verdict"] == "fail"
    assert grades0["score"] < sum(t["max_score"] for t in grades0["tests"])
    shown, rc, data, grades = _run(tmp_path, NOT_RESET, '[checks]\n"behaviour.repeat" = "warning"\n')
    assert rc == 0 and data["verdict"] == "pass" and data["diagnoses"] == []
    assert next(c for c in data["checks"] if c["name"] == "behaviour.repeat")["status"] == "warn"
    warning = data["warnings"][0]
    assert warning["id"] == "grad.not-reset" and warning["fix"]
    assert "WARN behaviour.repeat" in shown["terminal"] and "WARNING grad.not-reset" in shown["terminal"]
    assert 'id="warnings"' in shown["html"] and 'data-id="grad.not-reset"' in shown["html"]
    assert 'failures="0"' in shown["junit"] and "WARNING grad.not-reset" in shown["junit"]
    total = sum(t["max_score"] for t in grades["tests"])
    assert grades["score"] == total == grades0["score"] + sum(
        t["max_score"] for t in grades0["tests"] if t["status"] == "failed")
    test = next(t for t in grades["tests"] if t["name"] == "behaviour.repeat")
    assert test["status"] == "passed" and "grad.not-reset" in test["output"]
    # with the fix withheld too, the warning keeps its id and loses its snippet everywhere
    hidden, _, hidden_data, _ = _run(tmp_path, NOT_RESET, '[checks]\n"behaviour.repeat" = "warning"\n'
                                                     '[feedback]\nshow_fix = false\n', name="nofix")
    lines = _fix_lines(data)
    assert lines and all(_shown(shown[o], o, lines[0]) for o in OUTPUTS)
    assert not any(_shown(hidden[o], o, ln) for o in OUTPUTS for ln in lines)
    assert all("grad.not-reset" in hidden[o] for o in OUTPUTS)
    assert hidden_data["verdict"] == "pass" and hidden_data["warnings"][0]["fix"] == ""


# ------------------------------------------------------------------------------ [tolerances]

def _scaled(tmp_path, name: str, loss: str, grads: str) -> str:
    """The reference RNN with its loss and gradients multiplied by the given factors."""
    src = (REF / "rnn_functional.py").read_text().replace("def loss_and_grads(", "def _lg(")
    src += (f"\n\ndef loss_and_grads(params, inputs, targets, state):\n"
            f"    loss, g, h = _lg(params, inputs, targets, state)\n"
            f"    return loss * {loss}, {{k: v * {grads} for k, v in g.items()}}, h\n")
    p = tmp_path / f"{name}.py"
    p.write_text(src)
    return str(p)


def _status(data: dict, name: str) -> str:
    return next(c["status"] for c in data["checks"] if c["name"] == name)


def test_loss_rtol_judges_the_forward(tmp_path):
    off = _scaled(tmp_path, "loss_off", "1.000000001", "1.0")  # a loss 1e-9 off
    _, rc, data, _ = _run(tmp_path, off, '[assignment]\nmodel = "standard"\n', name="strict")
    assert rc == 1 and _status(data, "forward.loss") == "fail"
    shown, rc, data, _ = _run(tmp_path, off, '[assignment]\nmodel = "standard"\n'
                                             '[tolerances]\nloss_rtol = 1e-6\n')
    assert rc == 0 and _status(data, "forward.loss") == "pass"
    assert data["tolerances"]["loss_rtol"] == 1e-6 and "loss_rtol 1.0e-06" in shown["terminal"]
    assert "loss_rtol = 1.00e-06" in shown["html"]
    note = next(n for n in data["notes"] if n["id"] == "tolerances.spec")
    assert "loss_rtol = 1.0e-06" in note["evidence"] and "float64" in note["evidence"]


def test_grad_rtol_and_fd_rtol_judge_the_gradients(tmp_path):
    off = _scaled(tmp_path, "grads_off", "1.0", "1.0001")  # every gradient 1e-4 off
    _, rc, data, _ = _run(tmp_path, off, "", name="default")
    assert rc == 1 and _status(data, "grad.Whh") == "fail" and _status(data, "fd.all") == "fail"
    _, rc, data, _ = _run(tmp_path, off, "[tolerances]\ngrad_rtol = 1e-3\n", name="grad")
    assert rc == 1 and _status(data, "grad.Whh") == "pass" and _status(data, "fd.all") == "fail"
    assert data["tolerances"]["grad_rtol"] == 1e-3
    shown, rc, data, _ = _run(tmp_path, off, "[tolerances]\ngrad_rtol = 1e-3\nfd_rtol = 1e-3\n")
    assert rc == 0 and _status(data, "fd.all") == "pass"
    assert data["tolerances"]["fd_rtol"] == 1e-3
    assert "grad_rtol 1.0e-03" in shown["terminal"] and "fd_rtol 1.0e-03" in shown["terminal"]
    assert {n["title"] for n in data["notes"] if n["id"] == "tolerances.spec"} == {
        "grad_rtol set by the assignment", "fd_rtol set by the assignment"}
    # a tolerance tighter than the code's round-off fails correct code: the spec is obeyed
    # (an LSTM: its gate sums round differently from the reference's; the RNN files add up
    # their steps in the reference's order, bit for bit)
    _, rc, data, _ = _run(tmp_path, REF / "lstm_functional.py",
                          "[tolerances]\ngrad_rtol = 1e-19\n", name="tight")
    assert rc == 1 and any(_status(data, f"grad.{k}") == "fail" for k in ("Wf", "Wi", "Wg", "Wo"))


# ----------------------------------------------------------------------------- unknown keys

@pytest.mark.parametrize("body, message", [
    ("[feedbak]\nshow_fix = false\n",
     "feedbak: unknown key 'feedbak'; valid keys at the top level: assignment, feedback"),
    ("[feedback]\nshow_fixes = false\n",
     "valid keys in [feedback]: visibility, show_fix, show_evidence (did you mean 'show_fix'?)"),
    ("[tolerances]\ngrad_tol = 1e-6\n",
     "valid keys in [tolerances]: loss_rtol, grad_rtol, fd_rtol (did you mean 'grad_rtol'?)"),
    ("[assignment]\ntitel = \"x\"\n", "(did you mean 'title'?)"),
    ("[feedback]\nvisibility = \"later\"\n",
     "'visible', 'hidden', 'after_due_date' or 'after_published'"),
    ("[tolerances]\ngrad_rtol = 0\n", "tolerances.grad_rtol"),
    ("[feedback]\nshow_fix = \"no\"\n", "feedback.show_fix: Input should be a valid boolean"),
    ("[tolerances]\nfd_rtol = \"1e-3\"\n", "tolerances.fd_rtol: Input should be a valid number"),
])
def test_unknown_keys_and_values_are_errors_that_say_what_is_valid(tmp_path, body, message):
    spec = tmp_path / "spec.toml"
    spec.write_text(body)
    with pytest.raises(SpecError) as e:
        load_spec(str(spec))
    assert message in str(e.value)
