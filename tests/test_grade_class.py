"""Grading a class as instructors do (issue 14): one maximum for every submission with a score
card in each report, regrades that merge, submissions as students hand them in, and the
class at a glance (problems, per-check breakdown, title, a CSV spreadsheets read)."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from bpttcheck import report_gradescope, report_html, scoring
from bpttcheck.errors import UsageError
from bpttcheck.grade import grade
from bpttcheck.result import CheckResult, ErrorInfo, Report
from bpttcheck.settings import settings
from conftest import REF, ROOT, ZOO

SLOW_LSTM = (REF / "lstm_functional.py").read_text().replace(
    "def loss_and_grads(params, inputs, targets, state):\n",
    "def loss_and_grads(params, inputs, targets, state):\n    import time\n    time.sleep(60)\n")


def rows_of(out) -> dict[str, dict]:
    with open(out / "grades.csv", encoding="utf-8") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def card(out, folder: str) -> dict:
    return json.loads((out / folder / "report.json").read_text())["score"]


@pytest.fixture(scope="module")
def lstm_class(tmp_path_factory):
    """The issue's cases: a pass, a syntax error, a gate-order bug, a timeout, a C compile
    error and a folder with no model file, graded with a spec that names the architecture."""
    base = tmp_path_factory.mktemp("lstm")
    k = base / "class"
    k.mkdir()
    shutil.copy(REF / "lstm_functional.py", k / "pass.py")
    shutil.copy(ZOO / "lstm_gate_order.py", k / "gateorder.py")
    (k / "syntax.py").write_text("def loss_and_grads(p, x, y, h)\n    return 1\n")
    (k / "slow.py").write_text(SLOW_LSTM)
    (k / "cbroken.c").write_text("int f( { return 0 }\n")
    (k / "dave").mkdir()
    (k / "dave" / "notes.txt").write_text("not done")
    spec = base / "lstm.toml"
    spec.write_text('[assignment]\narch = "lstm"\ntitle = "Homework 3: LSTM backprop"\n'
                    '[points]\n"grad.*" = 2\n')
    out = base / "out"
    s = settings(str(spec), timeout=2.0)
    rows = grade(str(k), s, str(out), jobs=2, progress=False, tell=lambda m: None)
    return s, rows, out


@pytest.mark.slow
def test_every_submission_has_the_assignments_maximum(lstm_class):
    s, rows, out = lstm_class
    top = scoring.max_score(s.points, "lstm")
    assert top == 1 + 3 + 2 * 10 + 4  # gate order, loss, last h and c, 10 groups, 4 more
    by = {r.student: r for r in rows}
    kinds = {n: by[n].error_kind for n in ("syntax", "slow", "cbroken", "dave")}
    assert kinds == {"syntax": "syntax", "slow": "timeout", "cbroken": "compile",
                     "dave": "missing"}
    assert {r.max_score for r in rows} == {top}
    assert by["pass"].score == top and by["pass"].percent == 100.0
    # the gate-order bug loses the gate order's point and nothing else: a fail is not 100 %
    assert by["gateorder"].verdict == "fail"
    assert by["gateorder"].score == top - 1 and by["gateorder"].percent < 100
    for n in kinds:
        assert by[n].score == 0.0
    table = rows_of(out)
    for r in rows:  # the CSV, the row and the student's JSON report say the same
        c = card(out, r.report.split("/")[0])
        assert (c["earned"], c["possible"]) == (r.score, r.max_score)
        assert float(table[r.student]["score"]) == r.score
        assert float(table[r.student]["max_score"]) == top
        assert sum(x["possible"] for x in c["checks"]) == top
        assert sum(x["earned"] for x in c["checks"]) == r.score
    # an error's card lists every scored check as not run, worth its points
    c = card(out, "slow")
    assert {x["status"] for x in c["checks"]} == {"not-run"}
    assert {x["name"]: x["possible"] for x in c["checks"]}["grad.Wf"] == 2
    c = card(out, "gateorder")
    assert {x["name"]: x["status"] for x in c["checks"]}["layout.gate-order"] == "fail"
    assert {x["name"]: x["status"] for x in card(out, "pass")["checks"]}[
        "layout.gate-order"] == "pass"


@pytest.mark.slow
def test_the_report_and_the_index_show_the_score_and_each_checks_points(lstm_class):
    s, _, out = lstm_class
    page = (out / "gateorder" / "report.html").read_text()
    top = f"{scoring.max_score(s.points, 'lstm'):g}"
    assert f"Score <b>{float(top) - 1:g}</b> of {top} points" in page
    assert '<tr class="fail" data-check="layout.gate-order">' in page
    assert '<td class="num points">0 / 1</td>' in page and "2 / 2" in page
    slow = (out / "slow" / "report.html").read_text()
    assert f"Score <b>0</b> of {top} points" in slow and "did not run" in slow
    assert slow.count('<tr class="notrun"') == len(scoring.scored_checks("lstm"))
    index = (out / "index.html").read_text()
    assert "<h1>Homework 3: LSTM backprop</h1>" in index
    assert f">{float(top) - 1:g} / {top}<" in index and f">0 / {top}<" in index
    # most common problems: each error kind and the gate-order diagnosis, once per student
    for problem in ("error: timeout", "error: syntax", "error: compile", "error: missing",
                    "layout.gate-order"):
        assert f'class="id">{problem}</text>' in index, problem
    # per check: the gate order failed by 1 student, not run for the 4 errors
    assert 'id="checks"' in index
    row = index[index.index('data-check="layout.gate-order"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="num fail-n">1</td><td class="num">4</td><td class="num">1</td>' in row


def test_a_score_card_counts_what_ran_before_an_error_and_not_what_did_not():
    ran = [CheckResult(name="forward.loss", status="pass", message=""),
           CheckResult(name="grad.Whh", status="pass", message=""),
           CheckResult(name="grad.Wxh", status="fail", message="")]
    r = Report(verdict="error", path="x.py", arch="rnn", checks=ran, layout="hx",
               error=ErrorInfo(kind="timeout", message="one call took too long"))
    c = scoring.scorecard(r, {"grad.*": 2})
    status = {x.name: (x.status, x.earned, x.possible) for x in c.checks}
    assert status["forward.loss"] == ("pass", 1, 1) and status["grad.Whh"] == ("pass", 2, 2)
    assert status["grad.Wxh"] == ("fail", 0, 2) and status["fd.all"] == ("not-run", 0, 1)
    assert "layout.gate-order" not in status  # an RNN has no gates
    assert (c.earned, c.possible) == (3, scoring.max_score({"grad.*": 2}, "rnn"))
    # Gradescope adds up to the same, the check that did not run listed as failed
    out = json.loads(report_gradescope.render(r, {"grad.*": 2}))
    assert out["score"] == 3 and sum(t["max_score"] for t in out["tests"]) == c.possible
    assert any(t["name"] == "fd.all" and "not run" in t["output"] for t in out["tests"])
    # after an error that breaks the rules, nothing the code answered counts
    r.error = ErrorInfo(kind="forbidden", message="tried to open a socket")
    assert scoring.scorecard(r).earned == 0
    # an LSTM whose layout was settled without a gate-order failure passed the gate order
    lstm = Report(verdict="pass", path="y.py", arch="lstm", layout="stacked gates in order ifgo")
    assert {x.name: x.status for x in scoring.scorecard(lstm).checks}["layout.gate-order"] == "pass"
    lstm.layout = None  # it stopped before the layout was decided
    assert {x.name: x.status for x in scoring.scorecard(lstm).checks}["layout.gate-order"] == "not-run"


@pytest.mark.slow
def test_a_timeout_after_the_first_calls_keeps_what_they_earned(tmp_path):
    """A correct LSTM that hangs from its third call on: the checks of the first two calls
    earn their points, the ones after the timeout are listed as not run."""
    from bpttcheck.check.engine import Options, check
    from bpttcheck.sandbox.limits import Limits
    late = tmp_path / "late.py"
    late.write_text((REF / "lstm_functional.py").read_text().replace(
        "def loss_and_grads(params, inputs, targets, state):\n",
        "CALLS = [0]\n\n\ndef loss_and_grads(params, inputs, targets, state):\n"
        "    CALLS[0] += 1\n    if CALLS[0] > 2:\n        import time\n        time.sleep(60)\n"))
    r = check(str(late), Options(limits=Limits(call_timeout=2.0)))
    assert r.verdict == "error" and r.error.kind == "timeout"
    c = scoring.scorecard(r, {}, "lstm")
    status = {x.name: x.status for x in c.checks}
    ran = {x.name for x in r.checks if x.status != "not-run"}
    assert all(status[n] == "pass" for n in ran if n in status)
    assert {n for n, st in status.items() if st == "not-run"} == set(status) - ran - {
        "layout.gate-order"}
    assert 0 < c.earned < c.possible == scoring.max_score({}, "lstm")
    page = report_html.render(r.model_copy(update={"score": c}))
    assert "scored checks did not run" in page or "scored check did not run" in page


@pytest.mark.slow
def test_without_a_spec_arch_an_error_is_scored_as_the_class(tmp_path):
    """No assignment arch: a syntax error's card names the class's RNN checks, and an LSTM
    among RNNs is scaled to the class maximum, its percentage and the card's sum kept."""
    k = tmp_path / "class"
    k.mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "ann.py")
    shutil.copy(ZOO / "rnn_dwhy_prev_h.py", k / "ben.py")
    shutil.copy(REF / "lstm_functional.py", k / "cho.py")
    (k / "dan.py").write_text("def loss_and_grads(:\n")
    out = tmp_path / "out"
    rows = {r.student: r for r in grade(str(k), settings(), str(out), jobs=2, progress=False)}
    top = scoring.max_score({}, "rnn")
    assert {r.max_score for r in rows.values()} == {top}
    dan = card(out, "dan")
    assert dan["possible"] == top and "grad.Whh" in {x["name"] for x in dan["checks"]}
    cho = card(out, "cho")
    assert rows["cho"].percent == 100.0 and cho["possible"] == top and cho["earned"] == top
    assert "class's maximum" in cho["note"]
    assert sum(x["possible"] for x in cho["checks"]) == pytest.approx(top)
    assert "class&#39;s maximum" in (out / "cho" / "report.html").read_text()


@pytest.mark.slow
def test_an_error_in_a_class_of_layer_files_gets_the_layer_styles_card(tmp_path):
    k = tmp_path / "class"
    k.mkdir()
    shutil.copy(ROOT / "reference" / "layers" / "rnn_layers.py", k / "ann.py")
    (k / "bob.py").write_text("def rnn_step_forward(:\n")
    out = tmp_path / "out"
    rows = {r.student: r for r in grade(str(k), settings(), str(out), jobs=2, progress=False)}
    assert rows["ann"].verdict == "pass" and rows["bob"].error_kind == "syntax"
    bob, ann = card(out, "bob"), card(out, "ann")
    assert bob["possible"] == ann["possible"] == rows["bob"].max_score
    assert [x["name"] for x in bob["checks"]] == [x["name"] for x in ann["checks"]]
    assert "grad.rnn_step.dx" in {x["name"] for x in bob["checks"]} and not bob["note"]


# ---------------------------------------------------------------------------- regrading

@pytest.fixture
def small_class(tmp_path):
    k = tmp_path / "class"
    k.mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "amy.py")
    (k / "bob.py").write_text("def loss_and_grads(p, x, y, h)\n    return 1\n")
    (k / "Zoë").mkdir()
    shutil.copy(ZOO / "rnn_dwhy_prev_h.py", k / "Zoë" / "rnn.py")
    return k


def snapshot(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_only_regrades_one_student_and_keeps_everyone_else(small_class, tmp_path):
    out = tmp_path / "out"
    s = settings(arch="rnn")
    grade(str(small_class), s, str(out), jobs=2, progress=False)
    before = snapshot(out)
    assert rows_of(out)["bob"]["verdict"] == "error"
    shutil.copy(REF / "rnn_functional.py", small_class / "bob.py")  # bob fixes his file
    said: list[str] = []
    rows = grade(str(small_class), s, str(out), jobs=1, progress=False, only=["bob"],
                 tell=said.append)
    after = snapshot(out)
    assert {r.student for r in rows} == {"amy", "bob", "Zoë"}
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {"grades.csv", "grades.json", "index.html", "bob/report.html",
                       "bob/report.json"}
    old_csv = before["grades.csv"].decode().splitlines()
    new_csv = after["grades.csv"].decode().splitlines()
    assert [x for x in new_csv if not x.startswith("bob,")] == \
           [x for x in old_csv if not x.startswith("bob,")]
    assert rows_of(out)["bob"]["verdict"] == "pass"
    assert "regrading 1 of 3 submissions (bob)" in said[0]
    index = after["index.html"].decode()
    assert index.count('<td class="student"') == 3 and 'href="Zo%C3%AB/report.html"' in index

    # --failed: Zoë's failing row (and nobody else) is checked again
    said.clear()
    grade(str(small_class), s, str(out), jobs=1, progress=False, failed=True, tell=said.append)
    assert "(Zoë)" in said[0]
    assert snapshot(out)["amy/report.json"] == before["amy/report.json"]


def test_regrade_usage_errors_say_what_to_do(small_class, tmp_path):
    """Folders with nothing to run: the errors come before any submission is checked."""
    out = tmp_path / "out"
    s = settings(arch="rnn")
    with pytest.raises(UsageError, match=r"holds no grades\.json"):
        grade(str(small_class), s, str(out), progress=False, only=["amy"])
    from bpttcheck.grade import settings_key
    out.mkdir()
    (out / "grades.json").write_text(json.dumps({
        "folder": os.path.realpath(small_class), "settings": dict(settings_key(s), arch="lstm"),
        "rows": []}))
    with pytest.raises(UsageError, match=r"differ from the grading in .*\(arch\)"):
        grade(str(small_class), s, str(out), progress=False, only=["amy"])
    (out / "grades.json").write_text(json.dumps({
        "folder": os.path.realpath(small_class), "settings": settings_key(s), "rows": []}))
    with pytest.raises(UsageError) as e:
        grade(str(small_class), s, str(out), progress=False, only=["amyy", "bob", "zz"])
    msg = str(e.value)
    assert "--only 'amyy': no submission of that name" in msg and "close: amy" in msg
    assert "--only 'zz'" in msg and "'bob'" not in msg
    with pytest.raises(UsageError, match="graded with HTML reports: regrade the same way"):
        grade(str(small_class), s, str(out), progress=False, only=["amy"], html=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.py").write_text("x = 1\n")
    with pytest.raises(UsageError, match=r"holds the grades of .*class, not of"):
        grade(str(other), s, str(out), progress=False, failed=True)


def test_a_plain_grade_says_what_it_replaces(tmp_path):
    """Folders without a model (graded without running any code)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for n in ("ann", "ben", "cy"):
        (a / n).mkdir(parents=True)
    (b / "ann").mkdir(parents=True)
    out = tmp_path / "out"
    s = settings(arch="rnn")
    said: list[str] = []
    grade(str(a), s, str(out), progress=False, tell=said.append)
    grade(str(a), s, str(out), progress=False, tell=said.append)
    assert said == []  # the same class again: nothing to say
    grade(str(b), s, str(out), progress=False, tell=said.append)
    assert f"held the grades of {os.path.realpath(a)} (3 rows): replaced" in said[0]
    assert "2 student(s) graded in" in said[1] and "ben, cy" in said[1]
    assert "left in place" in said[1] and (out / "ben" / "report.html").exists()
    assert list(rows_of(out)) == ["ann"]


@pytest.mark.slow
def test_regrade_cli(small_class, tmp_path):
    out = tmp_path / "out"
    base = [sys.executable, "-m", "bpttcheck", "grade", str(small_class), "--out", str(out),
            "--arch", "rnn", "-q"]
    p = subprocess.run([*base, "--csv-bom"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    raw = (out / "grades.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfstudent,")  # Excel's cue for UTF-8
    with open(out / "grades.csv", encoding="utf-8-sig") as f:
        assert "Zoë" in {r["student"] for r in csv.DictReader(f)}
    p = subprocess.run([*base, "--only", "amy", "Zoe"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "--only 'Zoe'" in p.stderr and "close: Zoë" in p.stderr
    p = subprocess.run([*base, "--only", "amy", "Zoë"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "3 rows after the regrade" in p.stdout and "regrading 2 of 3" in p.stderr
    assert (out / "grades.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # kept
    p = subprocess.run([*base[:-1], "amy"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "give them after --only" in p.stderr


def test_the_csv_has_no_bom_unless_asked(tmp_path):
    (tmp_path / "c" / "Zoë").mkdir(parents=True)
    grade(str(tmp_path / "c"), settings(), str(tmp_path / "o"), progress=False)
    raw = (tmp_path / "o" / "grades.csv").read_bytes()
    assert raw.startswith(b"student,") and "Zoë".encode() in raw


# ---------------------------------------------------------------------------- as handed in

HELPER = '''import numpy as np


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


def rnn_step_forward(x, h, Wxh, Whh, bh):
    return np.tanh(Wxh @ x + Whh @ h + bh)
'''


def model_with_helper(folder) -> None:
    folder.mkdir(parents=True)
    src = (REF / "rnn_functional.py").read_text()
    start, end = src.index("def softmax(z):"), src.index("def loss_and_grads")
    src = src[:start] + "import helper as hp\n\n\n" + src[end:]
    src = src.replace("h = np.tanh(Wxh @ x + Whh @ hs[t] + bh)",
                      "h = hp.rnn_step_forward(x, hs[t], Wxh, Whh, bh)")
    src = src.replace("p = softmax(", "p = hp.softmax(")
    (folder / "model.py").write_text(src)
    (folder / "helper.py").write_text(HELPER)


@pytest.mark.slow
def test_run_on_a_folder_checks_the_model_with_its_helper(tmp_path):
    model_with_helper(tmp_path / "hw")
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(tmp_path / "hw"),
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "checked model.py" in p.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["verdict"] == "pass" and r["path"].endswith("model.py")
    assert r["notes"][0]["id"] == "run.folder" and r["score"]["percent"] == 100
    # a folder where nothing says which file is the model: a usage error naming them
    (tmp_path / "two").mkdir()
    for n in ("a.py", "b.py"):
        shutil.copy(REF / "rnn_functional.py", tmp_path / "two" / n)
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(tmp_path / "two")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "a.py, b.py" in p.stderr


@pytest.mark.slow
def test_a_missing_spec_file_is_replaced_by_the_one_model_file_with_a_note(tmp_path):
    k = tmp_path / "class"
    (k / "ann").mkdir(parents=True)
    shutil.copy(REF / "rnn_functional.py", k / "ann" / "rnn.py")  # the spec's name
    (k / "ben").mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "ben" / "my_rnn.py")  # another name
    model_with_helper(k / "cy")  # another name, and a helper that also looks like a model
    (k / "dee").mkdir()
    for n in ("v1.py", "v2.py"):  # two models: nobody guesses
        shutil.copy(REF / "rnn_functional.py", k / "dee" / n)
    spec = tmp_path / "s.toml"
    spec.write_text('[assignment]\narch = "rnn"\nfile = "rnn.py"\n')
    out = tmp_path / "out"
    rows = {r.student: r for r in grade(str(k), settings(str(spec)), str(out), jobs=2,
                                        progress=False)}
    assert rows["ann"].verdict == "pass" and rows["ann"].note == ""
    for n, f in (("ben", "my_rnn.py"), ("cy", "model.py")):
        assert rows[n].verdict == "pass" and rows[n].file.endswith(f)
        assert f"no rnn.py (the spec's assignment.file) in {n}/: graded {f}" in rows[n].note
        notes = json.loads((out / n / "report.json").read_text())["notes"]
        assert notes[0]["id"] == "grade.other-file"
        assert rows_of(out)[n]["note"] == rows[n].note
    assert rows["dee"].error_kind == "missing" and "v1.py, v2.py" in rows["dee"].top_title
    index = (out / "index.html").read_text()
    assert 'class="note">note: no rnn.py' in index


def test_helpers_are_not_models_and_unrelated_files_stay_ambiguous(tmp_path):
    from bpttcheck.grade import model_in_folder
    model_with_helper(tmp_path / "cy")
    sub = model_in_folder("cy", str(tmp_path / "cy"), None)
    assert sub.path.endswith("model.py") and not sub.note
    (tmp_path / "cy" / "train.py").write_text("from model import loss_and_grads\n")
    assert model_in_folder("cy", str(tmp_path / "cy"), None).path.endswith("model.py")
    (tmp_path / "cy" / "other.py").write_text("def lossFun(a, b, c):\n    pass\n")
    sub = model_in_folder("cy", str(tmp_path / "cy"), None)
    assert sub.path is None and sub.kind == "ambiguous" and "model.py, other.py" in sub.problem


# ---------------------------------------------------------------------------- at a glance

def test_most_common_problems_count_unmatched_and_every_error_kind():
    entries = [
        {"student": "a", "verdict": "fail", "score": 5.0, "max_score": 10.0,
         "top_diagnosis": "unmatched", "diagnoses": [], "error_kind": None, "seconds": 1.0,
         "checks": {"grad.Whh": "fail", "fd.all": "pass"}},
        {"student": "b", "verdict": "fail", "score": 5.0, "max_score": 10.0,
         "top_diagnosis": "unmatched", "diagnoses": [], "error_kind": None, "seconds": 1.0,
         "checks": {"grad.Whh": "fail", "fd.all": "fail"}},
        {"student": "c", "verdict": "error", "score": 0.0, "max_score": 10.0,
         "top_diagnosis": None, "diagnoses": [], "error_kind": "timeout", "seconds": 1.0,
         "checks": {"grad.Whh": "not-run", "fd.all": "not-run"}},
        {"student": "d", "verdict": "error", "score": 0.0, "max_score": 10.0,
         "top_diagnosis": None, "diagnoses": [], "error_kind": "syntax", "seconds": 1.0},
    ]
    page = report_html.render_index(entries, "t")
    chart = page[page.index('<svg class="hbarchart"'):]
    bars = re.findall(r'class="id">([^<]+)</text>\s*<rect class="hbar"[^>]*/>\s*'
                      r'<text[^>]*>(\d+) of 4', chart)
    assert bars == [("unmatched", "2"), ("error: syntax", "1"), ("error: timeout", "1")]
    assert "<h2>Most common problems</h2>" in page
    rows = re.findall(r'data-check="([^"]+)"[^>]*><td class="cname"><code>[^<]+</code></td>'
                      r'<td class="num fail-n[^"]*">(\d+)</td><td class="num">(\d+)</td>'
                      r'<td class="num">(\d+)</td>', page)
    # d has no checks at all (its row came from a dead process): not run, as for c
    assert rows == [("grad.Whh", "2", "2", "0"), ("fd.all", "1", "2", "1")]


def test_examples_show_the_score():
    text = (ROOT / "reports" / "fail-lstm-state-offset.html").read_text()
    assert 'id="score"' in text and '<td class="num points">' in text
