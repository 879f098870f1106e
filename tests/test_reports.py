"""Machine-readable outputs for CI and autograders: JUnit XML that the Jenkins schema accepts
(the one GitLab and GitHub reporters read), Gradescope results.json per its spec, and `grade`
over a class folder."""
import csv
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from bpttcheck import report_gradescope, report_junit
from bpttcheck.check.engine import Options, check
from bpttcheck.grade import grade
from bpttcheck.sandbox.limits import Limits
from bpttcheck.settings import settings
from conftest import REF, ROOT, ZOO

# The Jenkins JUnit schema's rules, written out: element -> (required attrs, allowed attrs,
# allowed children). Times follow its SUREFIRE_TIME pattern.
SCHEMA = {
    "testsuites": (set(), {"name", "time", "tests", "failures", "errors"}, {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors"},
                  {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp",
                   "hostname", "id", "package", "file", "log", "url"},
                  {"testsuite", "properties", "testcase", "system-out", "system-err"}),
    "testcase": ({"name"}, {"name", "time", "classname", "group"},
                 {"skipped", "error", "failure", "system-out", "system-err"}),
    "failure": (set(), {"type", "message"}, set()),
    "error": (set(), {"type", "message"}, set()),
    "skipped": (set(), {"type", "message"}, set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
TIME = re.compile(r"^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$")


def valid_junit(text: str) -> ET.Element:
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"

    def walk(el):
        required, allowed, children = SCHEMA[el.tag]
        assert required <= el.attrib.keys(), (el.tag, el.attrib)
        assert el.attrib.keys() <= allowed, (el.tag, el.attrib.keys() - allowed)
        if "time" in el.attrib:
            assert TIME.match(el.attrib["time"]) and re.match(r"^\d+\.\d{3}$", el.attrib["time"])
        for c in el:
            assert c.tag in children, (el.tag, c.tag)
            walk(c)
    walk(root)
    return root


@pytest.mark.slow
def test_junit_is_valid_and_records_the_failure_of_a_buggy_lstm():
    r = check(str(ZOO / "lstm_dc_next_missing_forget_xfirst.py"), Options())
    root = valid_junit(report_junit.render(r))
    cases = root.findall(".//testcase")
    assert len(cases) >= 5 and len({c.get("name") for c in cases}) == len(cases)
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert "grad.Wf" in failed
    suite = root.find("testsuite")
    assert int(suite.get("failures")) == len(failed) and int(suite.get("tests")) == len(cases)
    assert "lstm.dc-next-missing-forget" in root.find(".//failure").text


@pytest.mark.slow
def test_junit_of_a_pass_and_of_an_error_are_valid(tmp_module):
    ok = valid_junit(report_junit.render(check(str(REF / "rnn_functional.py"), Options())))
    assert ok.find(".//failure") is None and ok.find(".//error") is None
    bad = check(tmp_module("def loss_and_grads(p, x, y, h):\n    raise KeyError('<x>')\n"),
                Options(limits=Limits(call_timeout=3)))
    root = valid_junit(report_junit.render(bad))
    assert root.find(".//error").get("type") == "exception"


@pytest.mark.slow
def test_gradescope_results_follow_the_spec():
    r = check(str(ZOO / "rnn_dwhy_prev_h.py"), Options())
    out = json.loads(report_gradescope.render(r, {"grad.*": 2, "default": 0.5}))
    assert set(out) >= {"score", "tests", "output", "execution_time", "visibility"}
    assert out["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
    for t in out["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "visibility", "output"}
        assert t["status"] in ("passed", "failed") and 0 <= t["score"] <= t["max_score"]
        assert t["output_format"] == "md"
        per_group_fd = t["name"].startswith("fd.") and t["name"] != "fd.all"
        assert t["max_score"] == (0 if per_group_fd else 2 if t["name"].startswith("grad.")
                                  else 0.5)
    assert out["score"] == pytest.approx(sum(t["score"] for t in out["tests"]))
    assert any(t["status"] == "failed" and t["name"] == "grad.Why" for t in out["tests"])
    assert "rnn.dwhy-uses-prev-h" in out["output"]


@pytest.fixture
def klass(tmp_path):
    """A small class: Python files side by side, a C file, a folder per student, a stub,
    a crash, a file with a syntax error, a folder with nothing to check, and a data file."""
    k = tmp_path / "class"
    k.mkdir()
    for src in ["rnn_functional.py", "lstm_functional.py", "rnn_karpathy.py"]:
        shutil.copy(REF / src, k / src.replace("_", "-"))
    shutil.copy(REF / "input.txt", k / "input.txt")
    for bug in ["rnn_dwhy_prev_h.py", "lstm_state_offset.py"]:
        shutil.copy(ZOO / bug, k / bug)
    (k / "carol").mkdir()
    shutil.copy(ROOT / "reference" / "c" / "rnn.c", k / "carol" / "model.c")
    (k / "dave").mkdir()
    (k / "dave" / "notes.txt").write_text("I did not finish")
    (k / "erin.py").write_text("def loss_and_grads(p, x, y, h)\n    return 1\n")
    (k / "frank.c").write_text(
        (ROOT / "reference" / "bugs" / "c" / "segfault.c").read_text())
    (k / "gina.py").write_text("def loss_and_grads(p, x, y, h):\n    while True:\n        pass\n")
    return k


@pytest.mark.slow
def test_grade_writes_a_row_each_and_an_index(klass, tmp_path):
    out = tmp_path / "out"
    s = settings(timeout=3.0)
    rows = grade(str(klass), s, str(out), jobs=2, html=True, progress=False)
    by = {r.student: r for r in rows}
    assert set(by) == {"rnn-functional", "lstm-functional", "rnn-karpathy", "rnn_dwhy_prev_h",
                       "lstm_state_offset", "carol", "dave", "erin", "frank", "gina"}
    assert by["rnn-functional"].verdict == by["carol"].verdict == "pass"
    assert by["rnn-karpathy"].verdict == "pass"  # input.txt beside it was copied
    assert by["rnn_dwhy_prev_h"].top_diagnosis == "rnn.dwhy-uses-prev-h"
    assert (by["dave"].verdict, by["dave"].error_kind) == ("error", "missing")
    assert (by["erin"].error_kind, by["frank"].error_kind, by["gina"].error_kind) == (
        "syntax", "crash", "timeout")
    assert by["rnn-functional"].percent == 100.0 and by["gina"].percent == 0.0
    assert len({r.max_score for r in rows}) == 1  # RNNs, LSTMs and errors alike
    with open(out / "grades.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["student"] for t in table] == sorted(by, key=str.lower)  # no numbers to order
    for t in table:
        assert t["report"].endswith("/report.html") and (out / t["report"]).is_file()
        json.loads((out / t["report"]).with_name("report.json").read_text())
    assert not any(p.name.startswith(".bpttcheck") for p in klass.rglob("*"))
    index = (out / "index.html").read_text()
    for t in table:
        assert f'href="{t["report"]}"' in index, t["report"]
    assert "rnn.dwhy-uses-prev-h" in index and "lstm.state-offset" in index
    assert "<html" in (out / "rnn_dwhy_prev_h" / "report.html").read_text()


@pytest.mark.slow
def test_grade_a_folder_of_a_thousand_files(tmp_path):
    """A class folder with 1,000 files: 40 submissions (stubs and a syntax error, which end
    fast) among 960 data files. One row per submission, and each worker gets at most
    DATA_FILES of the data files, not the whole folder."""
    from bpttcheck.sandbox.staging import DATA_FILES
    k = tmp_path / "big"
    k.mkdir()
    for i in range(960):
        (k / f"data{i:04d}.txt").write_text("x")
    for i in range(39):
        (k / f"s{i:02d}.py").write_text("def loss_and_grads(p, x, y, h):\n    pass\n")
    (k / "broken.py").write_text("def loss_and_grads(:\n")
    assert len(list(k.iterdir())) == 1000
    rows = grade(str(k), settings(timeout=5.0), str(tmp_path / "out"), jobs=2, html=False,
                 progress=False)
    assert len(rows) == 40
    assert {r.error_kind for r in rows} == {"not-implemented", "syntax"}
    with open(tmp_path / "out" / "grades.csv") as f:
        assert len(list(csv.DictReader(f))) == 40
    assert DATA_FILES < 960


@pytest.mark.slow
def test_grade_cli_fail_under_and_usage_errors(klass, tmp_path):
    base = [sys.executable, "-m", "bpttcheck", "grade", str(klass), "--timeout", "3", "-q"]
    p = subprocess.run([*base, "--out", str(tmp_path / "o1"), "--no-html"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "graded 10 submissions" in p.stdout
    p = subprocess.run([*base, "--out", str(tmp_path / "o2"), "--no-html", "--fail-under", "50"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "below 50%" in p.stderr
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "grade", str(klass), "--out",
                        str(klass)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "must not be the submissions folder" in p.stderr


@pytest.mark.slow
def test_a_buggy_and_a_correct_submission_have_the_same_maximum(tmp_module):
    points = {"grad.*": 2, "default": 1}
    good = check(str(REF / "rnn_karpathy.py"), Options())
    bad = check(str(ZOO / "rnn_dwhh_current_h_karpathy.py"), Options())
    assert good.verdict == "pass" and bad.verdict == "fail"
    (sg, mg), (sb, mb) = report_gradescope.score(good, points), report_gradescope.score(bad, points)
    assert mg == mb and sg == mg and sb < mb


# ---------------------------------------------------------------- one stdout, one maximum, one order

def _stored(name: str):
    """An example report from reports/ (a real run, without running anything now)."""
    from bpttcheck.result import Report
    return Report.model_validate_json((ROOT / "reports" / f"{name}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--json", "--junit", "--gradescope", "--html"])
def test_a_report_on_stdout_is_all_there_is_on_stdout(flag):
    model = str(REF / "rnn_functional.py")
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "run", model, flag, "-"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    if flag != "--gradescope":  # results.json's output holds the summary, inside the JSON
        assert f"bpttcheck {model}" not in p.stdout  # the terminal summary's first line
    if flag in ("--json", "--gradescope"):
        json.loads(p.stdout)
    elif flag == "--junit":
        valid_junit(p.stdout)
    else:
        assert p.stdout.lstrip().lower().startswith("<!doctype html") and p.stdout.rstrip().endswith("</html>")


def test_an_error_has_the_maximum_of_a_checked_submission():
    from bpttcheck.result import ErrorInfo, Report
    points = {"grad.*": 2, "fd.*": 3, "default": 1}
    good, bad = _stored("pass-karpathy-rnn"), _stored("fail-rnn-missing-dh-next")
    crashed = _stored("error-c-segfault")  # the arch was known when it crashed
    early = Report(verdict="error", path="x.py", error=ErrorInfo(kind="syntax", message="x"))
    (sg, mg), (sb, mb) = (report_gradescope.score(good, points, "rnn"),
                          report_gradescope.score(bad, points, "rnn"))
    assert sg == mg and sb < mb == mg
    for err in (crashed, early):  # before the arch is known, the assignment's arch decides
        assert report_gradescope.score(err, points, "rnn") == (0.0, mg)
        out = json.loads(report_gradescope.render(err, points, arch="rnn"))
        assert out["score"] == 0 and sum(t["max_score"] for t in out["tests"]) == mg
    assert report_gradescope.score(crashed, points) == (0.0, mg)  # its own arch: rnn
    # no arch anywhere: the largest maximum of the built-in architectures (README)
    lstm_max = report_gradescope.score(_stored("fail-lstm-state-offset"), points)[1]
    assert report_gradescope.score(early, points)[1] == lstm_max > mg
    assert json.loads(report_gradescope.render(good, points))["score"] == mg


def test_a_skipped_check_keeps_the_maximum_and_its_points():
    good = _stored("pass-karpathy-rnn")
    full = report_gradescope.score(good, {}, "rnn")
    for c in good.checks:
        if c.name == "fd.all":
            c.status = "skip"  # as when the user's function clips its gradients
    assert report_gradescope.score(good, {}, "rnn") == full
    out = json.loads(report_gradescope.render(good, {}, arch="rnn"))
    assert (out["score"], sum(t["max_score"] for t in out["tests"])) == full


def test_every_row_of_a_class_has_one_maximum():
    from bpttcheck.grade import Row, one_maximum

    def row(name, score, top, kind=""):
        return Row(name, "", "error" if kind else "pass", score, top,
                   round(100 * score / top, 1) if top else 0.0, "", "", kind, 0.0, "", [], "")
    rows = [row("a", 11, 11), row("b", 5, 11), row("c", 16, 16), row("d", 0, 16, "syntax"),
            row("e", 0, 0, "internal")]
    out = one_maximum(rows, settings())
    assert {r.max_score for r in out} == {11}
    by = {r.student: r for r in out}
    assert by["c"].score == 11 and by["c"].percent == 100.0  # rescaled, percentage kept
    assert by["d"].score == by["e"].score == 0 and by["b"].percent == 45.5


def test_grades_csv_and_index_html_order_students_alike(tmp_path):
    """Folders with nothing to check: graded without running any code."""
    k = tmp_path / "class"
    names = ["strassb", "straßa", "Student10", "student2", "Émile", "emma"]
    for n in names:
        (k / n).mkdir(parents=True)
        (k / n / "notes.txt").write_text("nothing yet")
    rows = grade(str(k), settings(), str(tmp_path / "out"), jobs=1, progress=False)
    assert [r.max_score for r in rows] == [rows[0].max_score] * len(names)
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8") as f:
        csv_order = [t["student"] for t in csv.DictReader(f)]
    index = (tmp_path / "out" / "index.html").read_text()
    html_order = sorted(names, key=lambda n: index.index(f">{n}</"))
    assert csv_order == html_order
    assert csv_order.index("straßa") < csv_order.index("strassb")
    assert csv_order.index("student2") < csv_order.index("Student10")


def test_progress_off_a_terminal_is_one_plain_line_per_submission():
    import io

    from bpttcheck.grade import Progress, Row

    class Tty(io.StringIO):
        def isatty(self):
            return True

    rows = [Row(f"s\x1b[31m{i}", "", "fail", 0.0, 1.0, 0.0, "rnn.missing-dh-next", "0.99", "",
                0.1, "", [], "") for i in range(3)]
    log = io.StringIO()
    with Progress(3, log) as bar:
        for r in rows:
            bar.step(r)
    lines = log.getvalue().splitlines()
    assert lines == [f"[{i + 1}/3] s?[31m{i}: fail rnn.missing-dh-next" for i in range(3)]
    assert all(c.isprintable() for c in log.getvalue().replace("\n", ""))
    term = Tty()
    with Progress(3, term) as bar:
        for r in rows:
            bar.step(r)
    assert "3/3" in term.getvalue() and "[3/3] s?[31m2: fail" in term.getvalue()


def test_defaults_are_written_once():
    from bpttcheck import layout
    from bpttcheck.archmeta import LSTM_GATES
    from bpttcheck.check.cases import DEFAULT_DIMS
    from bpttcheck.formatting import nonfinite
    from bpttcheck.report_html import sci, val
    from bpttcheck.report_json import _clean
    from bpttcheck.spec import Sizes, Spec
    assert Sizes().model_dump() == {k: getattr(DEFAULT_DIMS, k) for k in "TXHY"}
    assert Spec().limits.memory_mb == Limits().memory_mb == settings().opts.limits.memory_mb
    assert layout.GATE_LETTERS["lstm"] == "".join(LSTM_GATES)
    for x, want in ((float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")):
        assert nonfinite(x) == sci(x) == val(x) == _clean(x) == want
    assert nonfinite(1.5) is None


@pytest.mark.slow
def test_a_notebook_in_a_students_folder_is_graded_and_its_checkpoint_ignored(tmp_path):
    import nbformat
    k = tmp_path / "class"
    (k / "hana" / ".ipynb_checkpoints").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# My RNN"),
                nbformat.v4.new_code_cell("%matplotlib inline\n" + (REF / "rnn_functional.py").read_text())]
    (k / "hana" / "Assignment.ipynb").write_text(nbformat.writes(nb))
    # Jupyter's autosave copy: the same notebook, never a second candidate
    (k / "hana" / ".ipynb_checkpoints" / "Assignment-checkpoint.ipynb").write_text(nbformat.writes(nb))
    (k / "ivan.ipynb").write_text(nbformat.writes(nb))
    rows = grade(str(k), settings(timeout=5.0), str(tmp_path / "out"), jobs=1, html=False,
                 progress=False)
    by = {r.student: r for r in rows}
    assert set(by) == {"hana", "ivan"}
    assert by["hana"].verdict == by["ivan"].verdict == "pass", [r.report for r in rows]
    assert by["hana"].file.endswith("Assignment.ipynb")
