"""Issue 13, "grade survives its students": each attack next to a correct control that is
graded exactly as without the attack."""
import csv
import json
import shutil
import time
from pathlib import Path

import pytest

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


# ---------------------------------------------------------------- replies from the worker

def _forging(tmp_path, forged: bytes) -> str:
    """A correct model that first writes ``forged`` to the worker's reply pipe (the one pipe
    above stderr open for writing)."""
    src = (REF / "rnn_functional.py").read_text() + (
        "\n\n_real = loss_and_grads\n\n\ndef loss_and_grads(*a, **k):\n"
        "    import fcntl, os, stat\n"
        "    for fd in range(3, 256):\n"
        "        try:\n"
        "            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)\n"
        "        except OSError:\n"
        "            continue\n"
        "        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:\n"
        f"            os.write(fd, {forged!r})\n"
        "    return _real(*a, **k)\n")
    p = tmp_path / "forger.py"
    p.write_text(src)
    return str(p)


def _message(header) -> bytes:
    import json
    import struct
    h = json.dumps(header).encode()
    return struct.pack("<QQ", len(h), 0) + h


@pytest.mark.parametrize("forged", [
    _message({"ok": True}),  # no loss: the checker's KeyError (exit 4) before
    _message({"ok": True, "loss": 0.0, "dtype": "float64", "evaluations": 1, "blocked": []}),
    _message({"ok": False, "kind": ["crash"], "message": 7}),
    _message([1, 2, 3]),
    b"\xff" * 64,  # a length of exabytes, then garbage
    _message({"ok": True})[:16] + b"{not json}",
], ids=["no-loss", "plausible", "wrong-types", "not-an-object", "huge-length", "not-json"])
def test_a_reply_forged_by_user_code_is_a_named_error(tmp_path, forged):
    from bpttcheck.check.engine import Options, check
    r = check(_forging(tmp_path, forged), Options())
    assert (r.verdict, r.error.kind) == ("error", "protocol"), r.error
    assert "reply pipe" in r.error.message


def test_reply_fields_are_checked_by_type_and_nan_losses_stay_results():
    import numpy as np

    from bpttcheck.sandbox.session import reply_problem
    ok = {"ok": True, "id": "r", "loss": 1.5, "modified": [], "dtype": "float64",
          "evaluations": 1, "blocked": []}
    assert reply_problem("call", "r", ok, {"G.Wxh": np.zeros(2)}) is None
    for loss in (float("nan"), float("inf"), -float("inf"), 3):  # the user's results: judged
        assert reply_problem("call", "r", {**ok, "loss": loss}, {}) is None
    bad = [({**ok, "id": "other"}, {}), ({**ok, "loss": "1.5"}, {}), ({**ok, "loss": True}, {}),
           ({**ok, "loss": 10 ** 400}, {}), ({**ok, "loss": None}, {}),
           ({**ok, "evaluations": "3"}, {}), ({**ok, "evaluations": -1}, {}),
           ({**ok, "blocked": [{"message": 1}]}, {}), ({**ok, "dtype": 64}, {}),
           (ok, {"G.Wxh": np.array(["a"])}), (ok, {"G.Wxh": np.zeros(2, complex)}),
           ({"ok": False, "id": "r", "kind": "nonsense", "message": "m"}, {}),
           ({"ok": False, "id": "r", "kind": "plugin", "message": "m", "plugin": [1]}, {}),
           ({"ok": 1, "id": "r"}, {})]
    for hdr, arrs in bad:
        assert reply_problem("call", "r", hdr, arrs), hdr
    assert reply_problem("losses", "r", {**ok}, {}) == "no array 'losses'"


def test_a_huge_exception_message_is_capped_and_memory_stays_bounded(tmp_path):
    import subprocess
    import sys
    p = tmp_path / "model.py"
    p.write_text("def loss_and_grads(p, x, y, h):\n    raise ValueError('x' * 250_000_000)\n")
    probe = ("import resource, sys\n"
             "from bpttcheck import report_json, report_junit, report_terminal\n"
             "from bpttcheck.check.engine import Options, check\n"
             "r = check(sys.argv[1], Options())\n"
             "sizes = [len(f(r)) for f in (report_json.render, report_junit.render, "
             "report_terminal.render)]\n"
             "print(r.error.kind, max(sizes), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
             " '_'.join(r.error.message[-60:].split()))\n")
    out = subprocess.run([sys.executable, "-c", probe, str(p)], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    kind, size, rss_kib, tail = out[0], int(out[1]), int(out[2]), out[3]
    assert kind == "exception"
    assert size < 4 << 20  # a few MB of report, not 262
    assert rss_kib < 700 << 10  # the checker's peak, not 2.8 GB
    assert tail.endswith("_more_characters_not_kept"), tail
    assert int(tail.split("_")[-5].replace(",", "")) > 248_000_000  # counted, and said


# ---------------------------------------------------------------- spec sizes

def test_spec_sizes_beyond_the_memory_limit_are_a_spec_error(tmp_path):
    import subprocess
    import sys

    from bpttcheck.errors import SpecError
    from bpttcheck.spec import load_spec
    p = tmp_path / "spec.toml"
    p.write_text("[sizes]\nH = 100000\n")  # 74 GiB for one H x H matrix before
    with pytest.raises(SpecError) as e:
        load_spec(str(p))
    msg = str(e.value)
    assert "H = 100000" in msg and "GiB" in msg and "4096 MiB" in msg, msg
    r = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(REF / "rnn_functional.py"),
                        "--spec", str(p)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "need about" in r.stderr, r.stderr
    # the limit is the spec's: raised, the same sizes are accepted (and would be tried)
    p.write_text("[sizes]\nH = 100000\n[limits]\nmemory_mb = 100000000\n")
    assert load_spec(str(p)).sizes.H == 100000
    # a correct control: sizes a course uses load and check as before
    p.write_text("[assignment]\narch = \"lstm\"\n[sizes]\nT = 50\nX = 64\nH = 128\nY = 64\n")
    assert load_spec(str(p)).sizes.H == 128
    p.write_text("[sizes]\nT = 7\nH = 9\n")
    r = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(REF / "rnn_functional.py"),
                        "--spec", str(p)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "H=9" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- the compile cache

C_REF = REF.parent / "c" / "rnn.c"
C_BUG = ZOO.parent / "c" / "dwhh_current_h.c"


def _poison(monkeypatch, cache_home, with_record: bool) -> None:
    """Write a buggy library where the user's cache keeps the build of the correct rnn.c (what
    code run earlier as the same user can do), with a matching hash record or without."""
    import hashlib

    from bpttcheck.sandbox.compile import compile_c
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home / "elsewhere"))
    bad = compile_c(str(C_BUG))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    good = compile_c(str(C_REF))
    shutil.copyfile(bad, good)
    if with_record:
        digest = hashlib.sha256(Path(bad).read_bytes()).hexdigest()
        Path(good + ".sha256").write_text(digest + "\n")
    else:
        Path(good + ".sha256").unlink(missing_ok=True)


@pytest.mark.parametrize("record", [False, True], ids=["bytes-changed", "record-changed-too"])
def test_a_library_written_over_in_the_user_cache_is_not_used(tmp_path, monkeypatch, record):
    from bpttcheck.check.engine import Options, check
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert check(str(C_REF), Options()).verdict == "pass"  # built and cached
    assert check(str(C_REF), Options()).verdict == "pass"  # the cached build, verified
    _poison(monkeypatch, tmp_path / "cache", with_record=False)
    assert check(str(C_REF), Options()).verdict == "pass"  # its hash differs: built again
    # grade never reads the user cache: even a forged record does not get in
    _poison(monkeypatch, tmp_path / "cache", with_record=record)
    k = tmp_path / "class"
    (k / "carol").mkdir(parents=True)
    shutil.copy(C_REF, k / "carol" / "model.c")
    shutil.copy(C_BUG, k / "mallory.c")  # a buggy submission next to her is still found out
    rows = grade(str(k), settings(timeout=5.0), str(tmp_path / "out"), jobs=2, html=False,
                 progress=False)
    by = {r.student: r for r in rows}
    assert by["carol"].verdict == "pass" and by["mallory"].verdict == "fail"
    assert by["mallory"].top_diagnosis == "rnn.dwhh-uses-current-h"


def test_a_formula_after_leading_spaces_is_escaped_too():
    from bpttcheck.formatting import csv_cell
    assert csv_cell(" =2+2") == "' =2+2" and csv_cell("  @SUM(A1)") == "'  @SUM(A1)"
    assert csv_cell(" alice") == " alice" and csv_cell(3.5) == 3.5


# ---------------------------------------------------------------- submissions against grade itself

# correct models that end the process checking them, each its own way (ctypes: past the guard)
KILL_PARENT = "import ctypes, os\nctypes.CDLL(None).kill(os.getppid(), 9)\n"
PIDFD_PARENT = ("import ctypes, os, platform\nlibc = ctypes.CDLL(None)\n"
                "n_open, n_send = {'x86_64': (434, 424), 'aarch64': (434, 424)}[platform.machine()]\n"
                "libc.syscall(n_send, libc.syscall(n_open, os.getppid(), 0), 9, None, 0)\n")
# kills every other process the grade runs a check in (its grandparent's other children),
# reading /proc through libc: the guard sees none of it
KILL_NEIGHBOURS = """
import ctypes, os
libc = ctypes.CDLL(None)


def read(path):
    fd, buf = libc.open(path.encode(), os.O_RDONLY), ctypes.create_string_buffer(1 << 16)
    n = libc.read(fd, buf, len(buf))
    libc.close(fd)
    return buf.raw[:max(n, 0)].decode()


mine = os.getppid()
top = int(read(f"/proc/{mine}/stat").rsplit(")", 1)[1].split()[1])
for pid in read(f"/proc/{top}/task/{top}/children").split():
    if int(pid) != mine:
        libc.kill(int(pid), 9)
"""


def _class(folder: Path, attackers: dict[str, str]) -> Path:
    """Alice and Carol correct, Bob and Dan buggy, and the attackers (correct models plus
    their attack at import)."""
    folder.mkdir()
    shutil.copy(REF / "rnn_functional.py", folder / "alice.py")
    shutil.copy(ZOO / "rnn_dwhy_prev_h.py", folder / "bob.py")
    shutil.copy(REF / "rnn_functional.py", folder / "carol.py")
    (folder / "dan.py").write_text(STUB)
    for name, attack in attackers.items():
        (folder / f"{name}.py").write_text((REF / "rnn_functional.py").read_text() + "\n" + attack)
    return folder


def _without_timings(rows) -> dict:
    from dataclasses import asdict
    return {r.student: {k: (Path(v).name if k == "file" else v) for k, v in asdict(r).items()
                        if k != "seconds"} for r in rows}


@pytest.mark.slow
def test_submissions_that_kill_the_grading_processes_cost_the_others_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("BPTTCHECK_SANDBOX", "weak")  # the fallback's defence (the OS sandbox: test_os_sandbox.py)
    import tempfile
    scratch = tmp_path / "tmp"  # where every temporary folder of the grading goes
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    attackers = {"mallory": KILL_PARENT, "trudy": PIDFD_PARENT, "eve": KILL_NEIGHBOURS}
    s = settings(timeout=5.0)
    clean = grade(str(_class(tmp_path / "clean", {})), s, str(tmp_path / "out0"), jobs=2,
                  html=False, progress=False)
    rows = grade(str(_class(tmp_path / "attacked", attackers)), s, str(tmp_path / "out1"),
                 jobs=2, html=False, progress=False)
    by = _without_timings(rows)
    others = _without_timings(clean)
    assert {k: by[k] for k in others} == others  # alice, bob, carol, dan: as without them
    assert others["alice"]["verdict"] == "pass" and others["bob"]["verdict"] == "fail"
    for who in ("mallory", "trudy"):
        assert (by[who]["verdict"], by[who]["error_kind"], by[who]["score"]) == \
            ("error", "killed", 0.0), by[who]
        assert by[who]["file"].endswith(f"{who}.py")
        rep = json.loads((tmp_path / "out1" / by[who]["report"]).read_text())
        assert rep["error"]["kind"] == "killed" and "checked alone" in rep["error"]["message"]
    # eve's own process lives: her neighbours were checked again, alone, and she is graded
    assert by["eve"]["verdict"] == "pass"
    table = _table(tmp_path / "out1")
    assert table["mallory"]["error_kind"] == "killed" and table["alice"]["verdict"] == "pass"
    # the session folders of the killed checks went with the grading's own (they never
    # remove theirs); the compiled-library cache is the only thing a grading keeps
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("bpttcheck-so-")] == []


ESCAPEE = """
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
SYS_CLONE = {"x86_64": 56, "aarch64": 220}[platform.machine()]
if libc.syscall(SYS_CLONE, 0x8000 | 17, 0, 0, 0, 0) == 0:  # CLONE_PARENT | SIGCHLD
    libc.setsid()
    fd = os.open(PIDFILE + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, str(libc.getpid()).encode())
    os.close(fd)
    os.rename(PIDFILE + ".tmp", PIDFILE)  # whole, or not there
    csv = os.path.join(OUT, "grades.csv")
    while not os.path.exists(csv):  # once the grade is written, make it say something else
        libc.usleep(50000)
    libc.usleep(300000)
    fd = os.open(csv, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"student,verdict\\nmallory,pass\\n")
    libc._exit(0)
while not os.path.exists(PIDFILE):  # the worker waits until the clone has said who it is
    libc.usleep(10000)
"""


@pytest.mark.slow
@pytest.mark.parametrize("then", ["returns", "kills-its-parent"])
def test_a_process_left_behind_cannot_rewrite_grades_csv(monkeypatch, tmp_path, then):
    monkeypatch.setenv("BPTTCHECK_SANDBOX", "weak")  # the fallback's defence (the OS sandbox: test_os_sandbox.py)
    out, pidfile = tmp_path / "out", tmp_path / "escapee.pid"
    attack = ESCAPEE.replace("PIDFILE", repr(str(pidfile))).replace("OUT", repr(str(out)))
    if then == "kills-its-parent":  # the clone is orphaned: it comes back to grade's process
        attack += "import time\ntime.sleep(0.3)\n" + KILL_PARENT
    k = _class(tmp_path / "class", {"mallory": attack})
    rows = grade(str(k), settings(timeout=5.0), str(out), jobs=2, html=False, progress=False)
    written = (out / "grades.csv").read_text()
    pid = int(pidfile.read_text())
    time.sleep(1.5)
    assert (out / "grades.csv").read_text() == written
    assert "mallory,pass" not in written
    try:
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z", f"escapee {pid} alive"
    except FileNotFoundError:
        pass
    by = {r.student: r for r in rows}
    assert by["alice"].verdict == "pass" and by["bob"].verdict == "fail"
    if then == "kills-its-parent":
        assert by["mallory"].error_kind == "killed"


def test_grade_exits_4_when_bpttcheck_fails_on_a_submission(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bpttcheck.check import engine
    from bpttcheck.cli import app
    real = engine.check

    def broken(path, opts=None):
        if path.endswith("bob.py"):
            raise RuntimeError("a bug of bpttcheck's")
        return real(path, opts)

    monkeypatch.setattr(engine, "check", broken)  # the forked processes inherit it
    k = _class(tmp_path / "class", {})
    res = CliRunner().invoke(app, ["grade", str(k), "--out", str(tmp_path / "out"), "-q",
                                   "--no-html", "-j", "2"])
    assert res.exit_code == 4, res.output
    assert "bpttcheck failed on 1 submission" in res.output and "bob" in res.output
    table = _table(tmp_path / "out")  # every output is still written
    assert table["bob"]["error_kind"] == "internal" and table["alice"]["verdict"] == "pass"
    monkeypatch.setattr(engine, "check", real)
    res = CliRunner().invoke(app, ["grade", str(k), "--out", str(tmp_path / "out2"), "-q",
                                   "--no-html"])
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_when_every_checking_process_dies_the_grade_fails_instead_of_blaming_everyone(monkeypatch, tmp_path):
    """Three submissions whose processes all die twice: the machine's doing, not three
    saboteurs; grade stops with a message (exit 4 from the CLI) and writes no grades.csv."""
    monkeypatch.setenv("BPTTCHECK_SANDBOX", "weak")  # the fallback's defence (the OS sandbox: test_os_sandbox.py)
    from bpttcheck.grade import GradeError
    k = tmp_path / "class"
    k.mkdir()
    for n in ("a", "b", "c"):
        (k / f"{n}.py").write_text((REF / "rnn_functional.py").read_text() + "\n" + KILL_PARENT)
    with pytest.raises(GradeError, match=r"died, twice .*signal SIGKILL.* no student's doing"):
        grade(str(k), settings(timeout=5.0), str(tmp_path / "out"), jobs=2, html=False,
              progress=False)
    assert not (tmp_path / "out" / "grades.csv").exists()
    assert GradeError.exit_code == 4
