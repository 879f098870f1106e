"""The sandbox's small public pieces: the process tree (psutil), the task limit, and the one
way every message points at a line of the user's code."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import pytest

from bpttcheck.errors import source_line
from bpttcheck.sandbox.limits import NPROC_MARGIN, nproc
from bpttcheck.sandbox.proctree import descendants, kill_tree

# a child that starts a grandchild in a session of its own (setsid), then waits
TREE = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print("up", flush=True)
time.sleep(60)
"""


def test_descendants_and_kill_tree_find_a_grandchild_that_left_the_session():
    p = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE,
                         start_new_session=True)
    try:
        assert p.stdout.readline().strip() == b"up"
        below = descendants(p.pid)
        assert len(below) == 1
        kill_tree(p.pid)
        p.wait(timeout=10)
        deadline = time.monotonic() + 10
        while descendants(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in below:  # the grandchild is gone (or a zombie waiting for its reaper)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_nproc_counts_the_users_tasks_plus_a_margin():
    assert nproc(0) is None  # root is not held to RLIMIT_NPROC
    uid = os.getuid() or 65534
    n = nproc(uid)
    assert n is not None and n >= NPROC_MARGIN
    if os.getuid():
        assert n > NPROC_MARGIN  # this process itself counts


def test_source_line_is_one_format_everywhere(tmp_path):
    src = tmp_path / "model.py"
    src.write_text("a = 1\n    dh = Why @ dy   \n")
    assert source_line(str(src), 2) == "model.py:2: dh = Why @ dy"
    assert source_line(str(src), 2, "  given text ") == "model.py:2: given text"
    assert source_line(str(src), 9) == "model.py:9: "
    assert source_line(str(tmp_path / "gone.c"), 3) == "gone.c:3: "


# ---------------------------------------------------------------- escapees (issue 13)

# A child made with clone(CLONE_PARENT) is the checker's child, not the worker's: outside its
# process group, session and subreaper. It leaves the worker's session too, waits for the
# worker to be gone (the check is over) and then rewrites a file the grader trusts. With
# DOUBLE it first forks once more and lets the middle process exit (its orphan is reparented).
ESCAPE = """
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
SYS_CLONE = {"x86_64": 56, "aarch64": 220}[platform.machine()]
worker = libc.getpid()
if libc.syscall(SYS_CLONE, 0x8000 | 17, 0, 0, 0, 0) == 0:  # CLONE_PARENT | SIGCHLD
    libc.setsid()
    if DOUBLE and libc.fork() != 0:
        libc._exit(0)
    fd = os.open(PIDFILE + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, str(libc.getpid()).encode())
    os.close(fd)
    os.rename(PIDFILE + ".tmp", PIDFILE)  # whole, or not there
    while libc.kill(worker, 0) == 0:
        libc.usleep(20000)
    libc.usleep(300000)
    fd = os.open(TARGET, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"student,verdict\\nmallory,pass\\n")
    libc._exit(0)
while not os.path.exists(PIDFILE):  # the worker waits until the clone has said who it is
    libc.usleep(10000)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="clone number")
@pytest.mark.parametrize("double", [False, True], ids=["clone-parent", "then-double-fork"])
def test_a_process_that_left_the_workers_tree_does_not_outlive_the_check(monkeypatch, tmp_path, double):
    monkeypatch.setenv("BPTTCHECK_SANDBOX", "weak")  # the fallback's defence (the OS sandbox: test_os_sandbox.py)
    from bpttcheck.check.engine import Options, check
    from conftest import REF
    target, pidfile = tmp_path / "grades.csv", tmp_path / "escapee.pid"
    target.write_text("student,verdict\nmallory,fail\n")
    model = tmp_path / "model.py"
    model.write_text((REF / "rnn_functional.py").read_text() + ESCAPE.replace(
        "PIDFILE", repr(str(pidfile))).replace("TARGET", repr(str(target))).replace(
        "DOUBLE", str(double)))
    # a child of the checker's own, started before the check: not the check's to end
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        r = check(str(model), Options())
        assert r.verdict == "pass", r.error  # it computed right; it just tried to stay
        pid = int(pidfile.read_text())
        assert not _alive(pid), f"the escapee {pid} outlived the check"
        time.sleep(1.0)
        assert target.read_text() == "student,verdict\nmallory,fail\n"
        assert bystander.poll() is None  # the sweep ended only what the check left
    finally:
        bystander.kill()
        bystander.wait()


def test_strays_are_only_children_born_since_and_not_started_by_us():
    from bpttcheck.sandbox import proctree
    before = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(0.05)
    since = proctree.start_ticks(os.getpid())
    known = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    born = proctree.started(known.pid)
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert since is not None and born >= since
        assert proctree.strays(born) == {stray.pid}
        assert proctree.kill_strays(born) == {stray.pid}
        assert not _alive(stray.pid)  # killed, and reaped by kill_strays (no zombie)
        assert before.poll() is None and known.poll() is None
    finally:
        proctree.ended(known.pid)
        for p in (before, known, stray):
            p.kill()
            p.wait()
