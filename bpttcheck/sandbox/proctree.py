"""The worker's process tree: every process below it, and killing all of them at once."""
from __future__ import annotations

import contextlib
import os
import signal


def descendants(pid: int) -> set[int]:
    """Live (not zombie) processes below ``pid``. psutil reads the whole table in one pass
    and copes with processes that end while it is read."""
    import psutil  # here, not at the top: only a worker's end needs it

    children: dict[int, list[int]] = {}
    for p in psutil.process_iter(["ppid", "status"]):
        if p.info["ppid"] is not None and p.info["status"] != psutil.STATUS_ZOMBIE:
            children.setdefault(p.info["ppid"], []).append(p.pid)
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


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
