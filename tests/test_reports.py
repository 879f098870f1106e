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


def test_junit_of_a_pass_and_of_an_error_are_valid(tmp_module):
    ok = valid_junit(report_junit.render(check(str(REF / "rnn_functional.py"), Options())))
    assert ok.find(".//failure") is None and ok.find(".//error") is None
    bad = check(tmp_module("def loss_and_grads(p, x, y, h):\n    raise KeyError('<x>')\n"),
                Options(limits=Limits(call_timeout=3)))
    root = valid_junit(report_junit.render(bad))
    assert root.find(".//error").get("type") == "exception"


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


def test_grade_cli_fail_under_and_usage_errors(klass, tmp_path):
    base = [sys.executable, "-m", "bpttcheck", "grade", str(klass), "--timeout", "3", "-q"]
    p = subprocess.run(base + ["--out", str(tmp_path / "o1"), "--no-html"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "graded 10 submissions" in p.stdout
    p = subprocess.run(base + ["--out", str(tmp_path / "o2"), "--no-html", "--fail-under", "50"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "below 50%" in p.stderr
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "grade", str(klass), "--out",
                        str(klass)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "must not be the submissions folder" in p.stderr


def test_a_buggy_and_a_correct_submission_have_the_same_maximum(tmp_module):
    points = {"grad.*": 2, "default": 1}
    good = check(str(REF / "rnn_karpathy.py"), Options())
    bad = check(str(ZOO / "rnn_dwhh_current_h_karpathy.py"), Options())
    assert good.verdict == "pass" and bad.verdict == "fail"
    (sg, mg), (sb, mb) = report_gradescope.score(good, points), report_gradescope.score(bad, points)
    assert mg == mb and sg == mg and sb < mb
