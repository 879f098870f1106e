"""The worker's process tree: every process below it, and killing all of them at once."""
from __future__ import annotations

import os
import signal


def descendants(pid: int) -> set[int]:
    """Live (not zombie) processes below ``pid``, found through /proc (Linux)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest and rest[0] != b"Z":
            children.setdefault(int(rest[1]), []).append(int(e))
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
        try:
            kill(target, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            pass
    found: set[int] = set()
    for _ in range(50):
        new = descendants(pid) - found
        if not new:
            break
        for c in new:
            try:
                os.kill(c, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                pass
        found |= new
    for c in found:
        try:
            os.kill(c, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
