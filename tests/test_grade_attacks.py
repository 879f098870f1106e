"""Issue 13, "grade survives its students": each attack next to a correct control that is
graded exactly as without the attack."""
import csv
import json
import shutil

from bpttcheck.grade import discover, grade
from bpttcheck.settings import settings
from conftest import REF, ZOO

STUB = "def loss_and_grads(p, x, y, h):\n    raise NotImplementedError\n"


def _table(out):
    with open(out / "grades.csv", newline="") as f:
        return {t["student"]: t for t in csv.DictReader(f)}


def test_names_that_make_one_folder_get_distinct_report_folders(tmp_path):
    k = tmp_path / "class"
    k.mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "alice.py")
    (k / "alice..py").write_text(STUB)  # `alice.` and `alice` made one folder `alice`
    shutil.copy(REF / "rnn_functional.py", k / "al_ice.py")
    shutil.copy(ZOO / "rnn_dwhy_prev_h.py", k / "al ice.py")  # `al_ice` too
    (k / "grades.csv").mkdir()  # a student's folder named like the gradebook
    (k / "grades.csv" / "model.py").write_text(STUB)
    subs = discover(str(k), str(tmp_path / "out"), None)
    assert len({s.folder for s in subs}) == len(subs) == 5
    assert {s.student: s.folder for s in subs}["alice"] == "alice"  # unchanged when it can be
    assert discover(str(k), str(tmp_path / "out"), None) == subs  # stable
    out = tmp_path / "out"
    rows = grade(str(k), settings(timeout=5.0), str(out), jobs=2, html=False, progress=False)
    by = {r.student: r for r in rows}
    assert by["alice"].verdict == by["al_ice"].verdict == "pass"
    assert by["al ice"].verdict == "fail" and by["alice."].verdict == "error"
    table = _table(out)
    for student, verdict in [("alice", "pass"), ("alice.", "error"), ("al_ice", "pass"),
                             ("al ice", "fail"), ("grades.csv", "error")]:
        rep = json.loads((out / table[student]["report"]).read_text())
        assert rep["verdict"] == verdict, student
    assert table["alice"]["report"] == "alice/report.json"


def test_symlinks_that_leave_a_students_folder_are_refused(tmp_path):
    k = tmp_path / "class"
    k.mkdir()
    (k / "alice").mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "alice" / "model.py")
    (k / "bob").mkdir()
    (k / "bob" / "model.py").symlink_to("../alice/model.py")  # Alice's code as Bob's
    (k / "carol").mkdir()  # a link inside her own folder is hers: fine
    shutil.copy(REF / "rnn_karpathy.py", k / "carol" / "model.py")
    (k / "carol" / "data").mkdir()
    shutil.copy(REF / "input.txt", k / "carol" / "data" / "input.txt")
    (k / "carol" / "input.txt").symlink_to("data/input.txt")
    (k / "dan.py").symlink_to(REF / "rnn_functional.py")  # a file anywhere outside
    (k / "erin").mkdir()  # her model is hers, but a file beside it reads Alice's folder
    shutil.copy(REF / "rnn_functional.py", k / "erin" / "model.py")
    (k / "erin" / "notes.txt").symlink_to(k / "alice" / "model.py")
    (k / "frank").symlink_to(k / "alice", target_is_directory=True)  # Alice's whole folder
    out = tmp_path / "out"
    rows = grade(str(k), settings(timeout=5.0), str(out), jobs=2, html=False, progress=False)
    by = {r.student: r for r in rows}
    assert set(by) == {"alice", "bob", "carol", "dan", "erin", "frank"}
    assert by["alice"].verdict == by["carol"].verdict == "pass"  # graded as without the links
    for who in ("bob", "dan", "erin", "frank"):
        assert (by[who].verdict, by[who].error_kind, by[who].score) == ("error", "forbidden", 0)
    rep = json.loads((out / _table(out)["bob"]["report"]).read_text())
    assert "symbolic link to ../alice/model.py" in rep["error"]["message"]


def test_grades_csv_cannot_hold_a_formula_or_a_control_character(tmp_path):
    k = tmp_path / "class"
    k.mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "alice.py")
    names = ["=1+2", "+SUM(1)", "-2+3", "@SUM(A1)", "\tx", "\rx", "eve\x1b[2J\nhi"]
    for n in names:
        (k / f"{n}.py").write_text(STUB)
    out = tmp_path / "out"
    grade(str(k), settings(timeout=5.0), str(out), jobs=2, html=False, progress=False)
    text = (out / "grades.csv").read_text()
    assert "\x1b" not in text and "\r" not in text and "\t" not in text
    assert len(text.splitlines()) == 1 + 1 + len(names)  # a line a row
    table = _table(out)
    for t in table.values():
        for cell in t.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        assert (out / t["report"]).is_file()
    assert {"'=1+2", "'+SUM(1)", "'-2+3", "'@SUM(A1)", "\\x09x", "\\x0dx",
            "eve\\x1b[2J\\x0ahi"} <= set(table)
    assert table["alice"]["verdict"] == "pass" and table["alice"]["percent"] == "100.0"


HOSTILE_MESSAGE = "\x1b[2J\x1b[31mall checks passed\x1b[0m\rPASS\x00\x07\x0c\u202e!"


def test_terminal_and_junit_show_a_hostile_message_inert(tmp_module):
    import xml.etree.ElementTree as ET

    from bpttcheck import report_junit, report_terminal
    from bpttcheck.check.engine import Options, check
    src = ("def loss_and_grads(p, x, y, h):\n"
           f"    print({HOSTILE_MESSAGE!r})\n"
           f"    raise ValueError({HOSTILE_MESSAGE!r})\n")
    r = check(tmp_module(src), Options())
    assert r.verdict == "error" and "\x1b" in r.error.message  # the JSON keeps it as it was
    term = report_terminal.render(r)
    assert not any(c in term for c in "\x1b\r\x00\x07\x0c\u202e")
    assert "\\x1b[2J\\x1b[31mall checks passed" in term and "\\u202e" in term
    junit = report_junit.render(r)
    root = ET.fromstring(junit.encode("utf-8"))  # valid XML (it would not parse with \x1b)
    assert "\\x1b[2J" in root.find(".//error").get("message")
    # a correct submission renders exactly as before
    good = check(str(REF / "rnn_functional.py"), Options())
    assert report_terminal.render(good).count("\\x") == 0
    ET.fromstring(report_junit.render(good).encode("utf-8"))
