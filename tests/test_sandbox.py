"""The sandbox's small public pieces: the process tree (psutil), the task limit, and the one
way every message points at a line of the user's code."""
from __future__ import annotations

import os
import subprocess
import sys
import time

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
