"""The worker's process tree: every process below it, and killing all of them at once; and
the processes that escape it (below)."""
from __future__ import annotations

import contextlib
import os
import signal


def descendants(pid: int) -> set[int]:
    """Live (not zombie) processes below ``pid``, from one pass over the process table. A
    process that ends while the table is read is simply not there."""
    children: dict[int, list[int]] = {}
    for ppid, child in _parents():
        children.setdefault(ppid, []).append(child)
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _parents():
    """(parent, pid) of every live process. /proc is read directly where there is one: it
    costs a tenth of psutil's import and walk (about 25 ms of CPU at the end of every check);
    psutil elsewhere."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    if "self" not in entries:
        import psutil  # no /proc: psutil knows how to read this system's table
        for p in psutil.process_iter(["ppid", "status"]):
            if p.info["ppid"] is not None and p.info["status"] != psutil.STATUS_ZOMBIE:
                yield p.info["ppid"], p.pid
        return
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so from the last ")"
        fields = stat[stat.rfind(b")") + 2:].split(None, 2)
        if len(fields) >= 2 and fields[0] != b"Z":
            yield int(fields[1]), int(e)


def kill_tree(pid: int) -> None:
    """SIGKILL the worker, its process group, and every process below it, also those that
    left the group (setsid) or were orphaned (the worker is their subreaper). Everything is
    stopped first, so nothing forks while the tree is read."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(target, signal.SIGSTOP)
    found: set[int] = set()
    for _ in range(50):
        new = descendants(pid) - found
        if not new:
            break
        for c in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(c, signal.SIGSTOP)
        found |= new
    for c in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(c, signal.SIGKILL)
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(target, signal.SIGKILL)


# ---------------------------------------------------------------- escapees
# A process can leave the worker's tree without leaving this process's: clone(CLONE_PARENT)
# makes it a child of the worker's parent (the checker), outside the worker's process group,
# session and subreaper. So the checker is a subreaper itself (orphans below it come back
# to it instead of init), remembers the children it started (the workers, and in `grade`
# its per-submission processes), and when a check ends kills every other child of its own
# born since that check's worker, with all below it.

PR_SET_CHILD_SUBREAPER = 36
# start time -> the children already there when the worker of that start time was started
_BEFORE: dict[int, set[int]] = {}
_STARTED: set[int] = set()  # children this process started and still knows
_subreaper: list[bool] = []


def become_subreaper() -> bool:
    """Make this process the reaper of orphaned processes below it (Linux), once."""
    if not _subreaper:
        ok = False
        try:
            import ctypes
            ok = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        _subreaper.append(ok)
    return _subreaper[0]


def started(pid: int) -> int:
    """Remember ``pid`` as a child this process started; returns its start time (clock
    ticks since boot): every stray born from it is born no earlier."""
    become_subreaper()
    _STARTED.add(pid)
    since = start_ticks(pid) or 0
    # the children already here are no stray of it, even one started in the same clock tick
    # (start times have a tick's resolution: 10 ms)
    _BEFORE.setdefault(since, set()).update(children() - {pid})
    return since


def ended(pid: int) -> None:
    _STARTED.discard(pid)


def now_ticks() -> int:
    """Now, in the clock ticks since boot that start_ticks uses."""
    import time
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def children() -> set[int]:
    """This process's children (zombies included), from every thread's list."""
    me = os.getpid()
    out: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
        for t in tasks:
            with open(f"/proc/{me}/task/{t}/children") as f:
                out.update(int(c) for c in f.read().split())
        return out
    except (OSError, ValueError):  # no CONFIG_PROC_CHILDREN: read the whole table
        import psutil
        return {p.pid for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == me}


def strays(since: int) -> set[int]:
    """Children of this process it did not start, born at or after ``since`` (ticks)."""
    out = set()
    for c in children() - _STARTED - _BEFORE.get(since, set()):
        t = start_ticks(c)
        if t is not None and t >= since:
            out.add(c)
    return out


def kill_strays(since: int) -> set[int]:
    """SIGKILL every stray child born since ``since`` and everything below it, and reap
    them. All are stopped first, again and again until no new one appears (a stray cannot
    clone while stopped); returns the pids killed."""
    found: set[int] = set()
    for _ in range(50):
        new = set()
        for s in strays(since) - found:
            new |= {s} | descendants(s)
        new -= found
        if not new:
            break
        for p in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGSTOP)
        found |= new
    for p in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    _reap(found)
    return found


def _reap(pids: set[int], seconds: float = 2.0) -> None:
    """Wait for the killed children of ours: no zombie is left behind."""
    import time
    end = time.monotonic() + seconds
    left = set(pids)
    pause = 0.0005  # a killed process is gone within a millisecond or two: look again soon
    while left and time.monotonic() < end:
        for p in list(left):
            try:
                done, _ = os.waitpid(p, os.WNOHANG)
            except ChildProcessError:  # not (or no longer) ours to wait for
                done = p
            if done:
                left.discard(p)
        if left:
            time.sleep(pause)
            pause = min(2 * pause, 0.01)
