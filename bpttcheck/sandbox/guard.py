"""The worker's guard: a Python audit hook (PEP 578), armed after bpttcheck's own imports and
before the user's module loads. It refuses what a submission never needs and a cheater would
use: starting processes, the network, signals to other processes, other processes' /proc files
(the checker's environment may hold BPTTCHECK_SECRET), and bpttcheck's own reference and
diagnosis code (importing it, or opening its files).

A refusal is a PermissionError that says what was blocked and why. Since user code can catch
it, every refusal is also recorded; the worker sends the list with each reply (``attempts()``)
and the checker turns it into the error kind ``forbidden``.

This is a tripwire on the obvious routes, not a sandbox: code that calls libc through ctypes,
or digs through ``sys.modules``, ``gc`` or frame objects, gets past any in-process hook. The
process limits, the network namespace and the process-tree kill in sandbox/ (limits.py, proctree.py) are the walls
that hold without the user's cooperation."""
from __future__ import annotations

import _thread
import builtins
import importlib
import importlib.util
import linecache
import os
import re
import sys
import sysconfig
from types import ModuleType

from bpttcheck.errors import source_line

_PKG = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # the bpttcheck package

# module -> what it is, as the message names it. Importing any of these (or a submodule) from
# user code is refused: the checking room and the reference whole, the registry that hands out
# the reference (plugins, the adapters that hold it), and the two sandbox modules that would let
# code switch the guard off.
FORBIDDEN_MODULES = {
    "bpttcheck.oracle": "bpttcheck's reference",
    "bpttcheck.check": "bpttcheck's checking and diagnosis code",
    "bpttcheck.plugins": "the registry that hands out bpttcheck's reference",
    "bpttcheck.adapters": "bpttcheck's adapters (they hold the reference)",
    "bpttcheck.sandbox.guard": "the guard that runs around your code",
    "bpttcheck.sandbox.worker": "the process that runs your code",
}
# folders whose files (sources and compiled .pyc) are the reference or the checker: never opened
# by user code, whatever the route (open, os.open, a loader, linecache, a symlink or a hard link)
SECRET_DIRS = tuple(os.path.join(_PKG, d) for d in ("oracle", "check"))

PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "subprocess.Popen", "pty.spawn", "os.startfile"}
NETWORK_EVENTS = {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
                  "socket.sendmsg", "socket.gethostbyname", "socket.gethostbyaddr",
                  "socket.getnameinfo"}
MAX_RECORDED = 20
_PROC_PID = re.compile(r"/proc/(\d+)(/|$)")

_attempts: list[dict] = []
_state: dict = {"armed": False}


def attempts() -> list[dict]:
    """What user code tried and was refused, in order: [{"message", "line"}...]."""
    return [dict(a) for a in _attempts]


def forbidden_module(name: str) -> str | None:
    """What ``name`` is if user code may not import it, else None."""
    for mod, what in FORBIDDEN_MODULES.items():
        if name == mod or name.startswith(mod + "."):
            return what
    return None


def _is_secret(path: str) -> bool:
    """A real path inside one of SECRET_DIRS (a .pyc written there after the guard was armed
    included)."""
    return any(path == d or path.startswith(d + os.sep) for d in SECRET_DIRS)


def _secret_inodes() -> set[tuple[int, int]]:
    """(device, inode) of every secret file: a hard link has another path but the same."""
    paths = [os.path.join(root, n) for d in SECRET_DIRS for root, _, names in os.walk(d)
             for n in names]
    out = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def install(workdir: str) -> None:
    """Arm the guard for the user's code under ``workdir`` (once: an audit hook stays)."""
    if _state["armed"]:
        return
    _state["armed"] = True
    workdir = os.path.realpath(workdir) + os.sep
    main_thread = _thread.get_ident()
    me = os.getpid()
    secret_inodes = _secret_inodes()
    is_user_cache: dict[str, bool] = {}
    stdlib_cache: dict[str, bool] = {}
    stdlib = tuple({os.path.realpath(sysconfig.get_paths()[k]) + os.sep
                    for k in ("stdlib", "platstdlib")})
    busy: set[int] = set()  # threads inside the hook: what the hook itself does is not judged
    getframe, realpath, stat, fspath = sys._getframe, os.path.realpath, os.stat, os.fspath

    def is_user(filename: str) -> bool:
        r = is_user_cache.get(filename)
        if r is None:
            try:  # "<frozen ...>" and "<string>" are not files (and not under the cwd)
                r = os.path.isabs(filename) and realpath(filename).startswith(workdir)
            except (OSError, ValueError, TypeError):
                r = False
            is_user_cache[filename] = r
        return r

    def is_stdlib(filename: str) -> bool:
        r = stdlib_cache.get(filename)
        if r is None:
            if not os.path.isabs(filename):  # frozen importlib, exec'd strings: look further
                r = True
            else:
                p = realpath(filename)
                r = p.startswith(stdlib) and "-packages" + os.sep not in p
            stdlib_cache[filename] = r
        return r

    def culprit(frame):
        """(by the user?, the innermost frame of the user's files on the stack or None).
        Code on a thread other than the worker's main thread counts as the user's: only user
        code starts threads in the worker."""
        f = frame
        while f is not None:
            if is_user(f.f_code.co_filename):
                return True, f
            f = f.f_back
        return _thread.get_ident() != main_thread, None

    def where(frame) -> str | None:
        fn, n = frame.f_code.co_filename, frame.f_lineno
        return source_line(fn, n or 0, linecache.getline(fn, n) if n else "")

    def block(what: str, why: str, frame):
        """Refuse; record it when the user's own code asked (through the standard library at
        most). A library that probes for a tool or the network and copes with the refusal (a
        font cache running fc-list) is refused without failing the check."""
        message = f"your code tried {what}: {why}"
        f = frame
        while f is not None and is_stdlib(f.f_code.co_filename):
            f = f.f_back
        if f is not None and is_user(f.f_code.co_filename):
            entry = {"message": message, "line": where(f)}
            if entry not in _attempts and len(_attempts) < MAX_RECORDED:
                _attempts.append(entry)
        raise PermissionError(f"bpttcheck blocked this: {message}")

    def refuse_module(name: str, frame) -> None:
        what = forbidden_module(name)
        if what is None:
            return
        if culprit(frame)[0]:
            block(f"to import {name} ({what})",
                  "submissions may not use bpttcheck's own reference or checking code", frame)

    def secret_file(p: str) -> bool:
        if _is_secret(p):
            return True
        try:
            st = stat(p)
        except (OSError, ValueError):
            return False
        return (st.st_dev, st.st_ino) in secret_inodes

    def on_process(event, args):
        cmd = ""
        if event == "os.system" and args:
            cmd = f": {args[0]!r}"
        elif event in ("subprocess.Popen", "os.exec", "os.posix_spawn") and len(args) > 1:
            cmd = f": {args[1]!r}" if args[1] else f": {args[0]!r}"
        block(f"to start another process ({event}{cmd})",
              "bpttcheck runs your code in a single process; starting processes is blocked",
              getframe(2))

    def on_network(event, args):
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            target = args[1] if len(args) > 1 else None
            verb = {"socket.connect": "to connect to", "socket.bind": "to listen on"}.get(
                event, "to send to")
        else:
            target, verb = (args[0] if args else None), "to look up"
            if event == "socket.getaddrinfo" and len(args) > 1 and args[1] is not None:
                target = (target, args[1])
        if isinstance(target, tuple) and len(target) >= 2:
            target = f"{target[0]}:{target[1]}"
        block(f"{verb} {target!s} ({event})", "network access is blocked while your code is "
              "checked", getframe(2))

    def on_import(event, args):
        if args and isinstance(args[0], str):
            refuse_module(args[0], getframe(2))

    def on_open(event, args):
        path = args[0] if args else None
        if path is None or isinstance(path, int):
            return
        try:
            path = os.fsdecode(fspath(path))
            real = realpath(path)
        except (TypeError, ValueError, OSError):
            return
        m = _PROC_PID.match(real)
        if m and int(m.group(1)) != me:
            frame = getframe(2)
            if culprit(frame)[0]:
                block(f"to open {path} (another process's files)",
                      "submissions may not look into other processes, the checker's included",
                      frame)
        if secret_file(real):
            frame = getframe(2)
            if culprit(frame)[0]:
                block(f"to open {path} (bpttcheck's own reference or diagnosis code)",
                      "submissions may not read bpttcheck's reference", frame)

    def on_signal(event, args):
        pid = args[0] if args else 0
        if event == "os.kill" and pid in (0, me):
            return
        if event == "os.killpg" and pid == os.getpgid(0):
            return
        block(f"to send a signal to process {pid} ({event})",
              "submissions may not signal other processes", getframe(2))

    handlers = {e: on_process for e in PROCESS_EVENTS}
    handlers.update({e: on_network for e in NETWORK_EVENTS})
    handlers.update({"import": on_import, "open": on_open, "os.kill": on_signal,
                     "os.killpg": on_signal})

    def hook(event, args):
        h = handlers.get(event)
        if h is None:
            return
        tid = _thread.get_ident()
        if tid in busy:
            return
        busy.add(tid)
        try:
            h(event, args)
        finally:
            busy.discard(tid)

    # A cached module fires no "import" event: watch import statements, __import__ and
    # importlib.import_module as well, and put a gate on the package attributes
    # (`import bpttcheck; bpttcheck.oracle.rnn`).
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def full_name(name, globals_, level):
        if not level:
            return name
        pkg = (globals_ or {}).get("__package__") or ""
        base = pkg.rsplit(".", level - 1)[0] if level > 1 else pkg
        return f"{base}.{name}" if name else base

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level or "bpttcheck" in name:
            full = full_name(name, globals, level)
            if full.startswith("bpttcheck"):
                caller = getframe(1)
                refuse_module(full, caller)
                for item in fromlist or ():
                    if isinstance(item, str) and item != "*":
                        refuse_module(f"{full}.{item}", caller)
        return real_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name, package=None):
        full = importlib.util.resolve_name(name, package) if name.startswith(".") else name
        refuse_module(full, getframe(1))
        return real_import_module(name, package)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module
    importlib.__import__ = guarded_import
    pkg = sys.modules.get("bpttcheck")
    if pkg is not None:
        for attr, mod in list(vars(pkg).items()):
            if isinstance(mod, ModuleType) and forbidden_module(f"bpttcheck.{attr}"):
                setattr(pkg, attr, _Gate(mod, f"bpttcheck.{attr}", refuse_module, getframe))

        def missing(attr):  # PEP 562: bpttcheck.oracle when it was never imported here
            if forbidden_module(f"bpttcheck.{attr}"):
                refuse_module(f"bpttcheck.{attr}", getframe(1))
            raise AttributeError(f"module 'bpttcheck' has no attribute {attr!r}")
        pkg.__getattr__ = missing  # type: ignore[method-assign]  # PEP 562 on a live module
    sys.addaudithook(hook)


class _Gate:
    """Stands for a forbidden submodule as an attribute of the bpttcheck package: bpttcheck's
    own code reads through it, user code is refused."""

    def __init__(self, module, name, refuse, getframe):
        object.__setattr__(self, "_gate", (module, name, refuse, getframe))

    def __getattr__(self, attr):
        module, name, refuse, getframe = object.__getattribute__(self, "_gate")
        refuse(f"{name}.{attr}", getframe(1))
        return getattr(module, attr)

    def __setattr__(self, attr, value):
        module, name, refuse, getframe = object.__getattribute__(self, "_gate")
        refuse(f"{name}.{attr}", getframe(1))
        setattr(module, attr, value)

    def __repr__(self):
        return f"<module {object.__getattribute__(self, '_gate')[1]!r} (guarded)>"
