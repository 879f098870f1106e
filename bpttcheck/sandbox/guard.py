"""The worker's guard: a Python audit hook (PEP 578), armed after bpttcheck's own imports and
before the user's module loads. It refuses what a submission never needs and a cheater would
use: starting processes, the network, signals to other processes, other processes' /proc files
(the checker's environment may hold BPTTCHECK_SECRET), and bpttcheck's own reference and
diagnosis code (importing it, or opening its files).

A refusal is a PermissionError that says what was blocked and why. Since user code can catch
it, every refusal of the user's own doing is also written, the moment it happens, to a pipe of
its own (the report channel: a file descriptor the checker passes to the worker, opened before
any user code runs, its number kept only in this module's closures). The checker reads it in a
thread (session.py) and ends the check as ``forbidden`` whatever later replies say; clearing
``attempts()`` erases nothing there, and closing or replacing the channel is itself caught.

Paths are judged as the kernel resolves them: by the (device, inode) that a path reaches from
the current folder and from every open directory file descriptor (``os.open(rel, dir_fd=fd)``
and ``open(..., opener=...)`` give the hook no dir_fd, so every one is tried), with the
folder the file would be created in checked too. ``os.stat``, ``os.access`` and
``os.readlink`` raise no audit event; they read metadata, never a file's bytes.

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
import resource
import stat as stat_mode
import sys
import sysconfig
from types import ModuleType

from bpttcheck.errors import source_line
from bpttcheck.sandbox.refusals import CHANNEL_LOST_EXIT, encode

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
    """(device, inode) of every secret file and folder: a hard link or a bind mount has
    another path but the same; a folder's lets a file created in it later be recognised."""
    paths = [os.path.join(root, n) for d in SECRET_DIRS for root, dirs, names in os.walk(d)
             for n in [*names, *dirs]] + list(SECRET_DIRS)
    out = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _open_fds() -> list[int] | None:
    """Every open file descriptor of this process; None when that cannot be known (no /proc
    and a descriptor limit too high to try each number)."""
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY or hard > 1 << 16:
            return None
        return list(range(hard))


def _reporter(fd: int | None):
    """The function that writes one refusal to the report channel ``fd`` (None: no channel,
    the guard only keeps its list), and the channel's (device, inode). It writes to the pipe it was given, found by its (device,
    inode) even if user code moved it to another number; with no copy of it left in the
    process it ends the worker with CHANNEL_LOST_EXIT, which the checker reports."""
    if fd is None:
        return (lambda message, line: None), None
    os.set_inheritable(fd, False)
    st = os.fstat(fd)
    pipe = (st.st_dev, st.st_ino)
    fstat, write, exit_now = os.fstat, os.write, os._exit

    def same(n: int) -> bool:
        try:
            s = fstat(n)
        except OSError:
            return False
        return (s.st_dev, s.st_ino) == pipe

    def report(message: str, line: str | None) -> None:
        data = encode(message, line)
        n = fd if same(fd) else next((k for k in _open_fds() or () if same(k)), None)
        try:
            if n is None:
                raise OSError("no report channel")
            write(n, data)
        except OSError:
            exit_now(CHANNEL_LOST_EXIT)
    return report, pipe


def install(workdir: str, report_fd: int | None = None) -> None:
    """Arm the guard for the user's code under ``workdir`` (once: an audit hook stays);
    refusals are written to ``report_fd`` as they happen (see _reporter)."""
    if _state["armed"]:
        return
    _state["armed"] = True
    report, channel = _reporter(report_fd)
    written = [0]  # records sent on the channel: kept here, out of the user's easy reach
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
    fstat, readlink, getcwd = os.fstat, os.readlink, os.getcwd

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
            if written[0] < MAX_RECORDED:  # reported now: nothing the code does later erases it
                written[0] += 1
                report(message, entry["line"])
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

    def reaches_secret(path: str, dir_fd: int | None) -> bool:
        """Whether ``path``, resolved from ``dir_fd`` (None: the current folder) as the kernel
        would, is a secret file or folder, or a new file in a secret folder."""
        for p in (path, os.path.dirname(path) or "."):
            try:
                st = stat(p, dir_fd=dir_fd)
            except (OSError, ValueError, TypeError):
                continue
            if (st.st_dev, st.st_ino) in secret_inodes:
                return True
        return False

    def reaches_channel(path: str, dir_fd: int | None) -> bool:
        """Whether ``path`` opens the report channel again (``/proc/self/fd/N``, /dev/fd/N):
        a read end would let the code take its own refusals off the pipe."""
        try:
            st = stat(path, dir_fd=dir_fd)
        except (OSError, ValueError, TypeError):
            return False
        return (st.st_dev, st.st_ino) == channel

    def places(path: str) -> list[tuple[int | None, str | None]] | None:
        """(dir_fd, absolute path) of every place ``path`` may be opened from: itself when
        absolute; else the current folder and every open folder descriptor (an os.open with
        dir_fd, or an opener using one, gives the hook no dir_fd). None: the descriptors
        cannot be listed, so where a relative path leads is unknown."""
        if os.path.isabs(path):
            return [(None, path)]
        try:
            out: list[tuple[int | None, str | None]] = [(None, os.path.join(getcwd(), path))]
        except OSError:  # the current folder was removed: only the inode test applies
            out = [(None, None)]
        fds = _open_fds()
        if fds is None:
            return None
        for n in fds:
            try:
                if not stat_mode.S_ISDIR(fstat(n).st_mode):
                    continue
            except OSError:
                continue
            try:
                base: str | None = readlink(f"/proc/self/fd/{n}")
            except OSError:
                base = None
            ok = base is not None and base.startswith("/") and not base.endswith(" (deleted)")
            out.append((n, os.path.join(base, path) if ok and base else None))
        return out

    def judge_path(path, verb: str) -> None:
        """Refuse ``verb`` on ``path`` (a path, or an open descriptor) when it leads into
        bpttcheck's reference or checking code, or into another process's /proc files, and
        the user's code asked (judged first: the rest costs system calls)."""
        frame = getframe(3)
        if not culprit(frame)[0]:
            return
        if path is None:
            path = "."
        if isinstance(path, int):
            try:
                st = fstat(path)
            except OSError:
                return
            if (st.st_dev, st.st_ino) in secret_inodes:
                block(f"to {verb} file descriptor {path} (bpttcheck's own reference or "
                      "diagnosis code)", "submissions may not read bpttcheck's reference", frame)
            return
        try:
            path = os.fsdecode(fspath(path))
        except (TypeError, ValueError):
            return
        found = places(path)
        if found is None:
            block(f"to {verb} {path} relative to a folder bpttcheck cannot identify",
                  "the guard cannot tell where the path leads, so it is refused", frame)
            return
        for dir_fd, full in found:
            real = None
            if full is not None:
                try:
                    real = realpath(full)
                except (OSError, ValueError):
                    real = None
            m = _PROC_PID.match(real) if real else None
            if m and int(m.group(1)) != me:
                block(f"to {verb} {path} (another process's files)",
                      "submissions may not look into other processes, the checker's included",
                      frame)
            if channel is not None and reaches_channel(path, dir_fd):
                block(f"to {verb} {path} (bpttcheck's channel for refused operations)",
                      "submissions may not touch the pipes bpttcheck uses", frame)
            if (real is not None and _is_secret(real)) or reaches_secret(path, dir_fd):
                how = "" if dir_fd is None else f" (from file descriptor {dir_fd})"
                block(f"to {verb} {path}{how} (bpttcheck's own reference or diagnosis code)",
                      "submissions may not read bpttcheck's reference", frame)

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
        if args and args[0] is not None:
            judge_path(args[0], "open")

    def on_folder(event, args):  # os.listdir, os.scandir (None: the current folder), chdir
        judge_path(args[0] if args else None,
                   "change into" if event == "os.chdir" else "list")

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
                     "os.killpg": on_signal, "os.listdir": on_folder, "os.scandir": on_folder,
                     "os.chdir": on_folder})

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

    _gate_pidfds(me, block, getframe)
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


def _pidfd_target(pidfd: int) -> int | None:
    """The process a pidfd stands for (its fdinfo's ``Pid:`` line), or None."""
    try:
        with open(f"/proc/self/fdinfo/{int(pidfd)}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, TypeError, IndexError):
        return None
    return None


def _gate_pidfds(me: int, block, getframe) -> None:
    """os.pidfd_open and signal.pidfd_send_signal raise no audit event: put a gate on them
    (in os/posix and signal/_signal alike) that refuses any process but the worker itself.
    A tripwire on the obvious route; the OS sandbox's PID namespace is the wall."""
    import _signal  # type: ignore[import-not-found]  # the C module behind signal
    import posix
    import signal

    real_open = getattr(posix, "pidfd_open", None)
    real_send = getattr(_signal, "pidfd_send_signal", None)
    why = "submissions may not signal other processes"

    def pidfd_open(pid, flags=0):
        if pid != me:
            block(f"to open a pidfd of process {pid} (os.pidfd_open)", why, getframe(1))
        return real_open(pid, flags)  # type: ignore[misc]

    def pidfd_send_signal(pidfd, sig, siginfo=None, flags=0):
        target = _pidfd_target(pidfd)
        if target != me:
            block(f"to send signal {sig} through a pidfd to process {target} "
                  "(signal.pidfd_send_signal)", why, getframe(1))
        return real_send(pidfd, sig, siginfo, flags)  # type: ignore[misc]

    if real_open is not None:
        os.pidfd_open = posix.pidfd_open = pidfd_open
    if real_send is not None:
        signal.pidfd_send_signal = _signal.pidfd_send_signal = pidfd_send_signal


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
