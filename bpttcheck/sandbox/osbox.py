"""The OS sandbox around the worker: bubblewrap (``bwrap``) puts it in new PID, network, IPC,
UTS, cgroup and user namespaces, on a file system that shows only what it needs — the Python
installation and bpttcheck read-only (without its checking and reference code), a private
``/tmp``, and the session's own folder (the staged submission, the traceback file, the fake
HOME) as the only writable place. Everything else of the machine — the class folder, the
reports, the compile cache, the real HOME, other processes, the network — does not exist in
there. Killing the sandbox's first process ends every process inside it (PID namespace).

Where bwrap is missing or cannot create namespaces, the worker starts as before (limits.py,
guard.py) and every report carries the note ``sandbox.weak``; ``--require-sandbox`` (or
``[limits] require_sandbox = true``) makes that an error. ``BPTTCHECK_SANDBOX=weak`` turns the
sandbox off (for debugging).

Whether bwrap works is probed once per process, with the same namespace flags and system
mounts the worker gets."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from bpttcheck.errors import BpttcheckError

SWITCH_VAR = "BPTTCHECK_SANDBOX"  # "weak": no OS sandbox (debugging); unset or "auto": bwrap
NOBODY = "65534"  # the worker's uid and gid inside its user namespace
TMP_BYTES = 256 << 20  # the private /tmp: RAM-backed, so bounded
PROBE_SECONDS = 2.0

# the namespace flags, strongest first; the first that works here is used. --unshare-all is
# pid, net, ipc, uts, cgroup (if possible) and a user namespace if possible: the first two
# tiers insist on the user namespace (the worker is then nobody, without capabilities, and
# cannot make namespaces of its own); the last serves root (or a setuid bwrap) on a kernel
# without user namespaces: the worker is then uid 0 of the machine, with every capability
# dropped and the same mounts
TIERS: tuple[tuple[str, ...], ...] = (
    ("--unshare-all", "--unshare-user", "--disable-userns", "--uid", NOBODY, "--gid", NOBODY),
    ("--unshare-all", "--unshare-user", "--uid", NOBODY, "--gid", NOBODY),
    ("--unshare-all",),
)
COMMON = ("--cap-drop", "ALL", "--die-with-parent", "--new-session")
# top-level system folders: bound read-only (or recreated as the symlinks they are)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# from /etc only what the dynamic linker and the Python installation read
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
             "/etc/localtime")
HIDDEN_PACKAGE_DIRS = ("check", "oracle")  # the worker never imports them (ARCHITECTURE.md)

WEAK_ADVICE = ("The code ran with the fallback isolation only (resource limits, a network "
               "namespace where allowed, an audit hook), so it could read any file this user "
               "can read. Graders: install bubblewrap (apt-get install bubblewrap), allow "
               "unprivileged user namespaces, and pass --require-sandbox (or set [limits] "
               "require_sandbox = true) so that a machine without the sandbox refuses to "
               "grade.")


class SandboxError(BpttcheckError):
    """The OS sandbox was required (--require-sandbox, [limits] require_sandbox) and is not
    available, or bwrap could not start a worker it had started before: the checker cannot
    run as asked (exit 4), which is never the checked code's fault."""

    exit_code = 4


@dataclass(frozen=True)
class Sandbox:
    """What the workers of this process start in: bwrap with ``flags``, or (``bwrap`` None)
    the fallback, for the reason ``why_weak``."""

    bwrap: str | None
    flags: tuple[str, ...] = ()
    why_weak: str | None = None

    @property
    def strong(self) -> bool:
        return self.bwrap is not None


_probed: list[Sandbox] = []
# (bwrap, its process) of the first tier's probe when start_probe began it
_pending: list[tuple[str, subprocess.Popen]] = []


def current() -> Sandbox:
    """The sandbox workers start in now: BPTTCHECK_SANDBOX=weak turns it off, else the
    (cached) probe decides."""
    if os.environ.get(SWITCH_VAR, "").strip().lower() == "weak":
        return Sandbox(None, why_weak=f"the OS sandbox was turned off ({SWITCH_VAR}=weak)")
    if not _probed:
        _probed.append(probe(_pending.pop() if _pending else None))
    return _probed[0]


def start_probe() -> None:
    """Begin the probe's first try now, in the background, for current() to wait on: the
    early worker of `bpttcheck run` stages the submission meanwhile, instead of waiting for
    bwrap first (a few milliseconds of its start). The answer is the same probe's."""
    if _probed or _pending or os.environ.get(SWITCH_VAR, "").strip().lower() == "weak":
        return
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return
    try:
        p = subprocess.Popen(_probe_command(bwrap, TIERS[0]), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError:
        return  # probe() tries again and says why
    _pending.append((bwrap, p))


def reset() -> None:
    """Forget the probe's answer (tests that change PATH or bwrap)."""
    _probed.clear()
    for _, p in _pending:
        p.kill()
        p.wait()
    _pending.clear()


def weak_note(sb: Sandbox) -> tuple[str, str, str] | None:
    """(id, title, evidence) of the note a report carries when its code ran without the OS
    sandbox, or None."""
    if sb.strong:
        return None
    return ("sandbox.weak", "Checked without the OS sandbox",
            f"No OS sandbox ({sb.why_weak}). {WEAK_ADVICE}")


def require(sb: Sandbox | None = None) -> None:
    """SandboxError unless the OS sandbox is available."""
    sb = sb or current()
    if not sb.strong:
        raise SandboxError(
            f"the OS sandbox is required (--require-sandbox or [limits] require_sandbox) but "
            f"not available: {sb.why_weak}. Install bubblewrap (Debian/Ubuntu: apt-get "
            f"install bubblewrap) and allow unprivileged user namespaces (Debian, Ubuntu: "
            f"sysctl kernel.unprivileged_userns_clone=1; Ubuntu 24.04: an AppArmor profile "
            f"for bwrap), or run the grader in a container that allows them; unset "
            f"{SWITCH_VAR} if it says weak. No submission was run.")


def _probe_command(bwrap: str, flags: tuple[str, ...]) -> list[str]:
    true = os.path.realpath(shutil.which("true") or "/bin/true")
    return [bwrap, *flags, *COMMON, *_system_mounts(), "--ro-bind", true, true, "--", true]


def probe(started: tuple[str, subprocess.Popen] | None = None) -> Sandbox:
    """Whether bwrap can make its namespaces here, tried with each tier of TIERS and the
    system mounts a worker gets (a few milliseconds each; a failure returns at once).
    ``started``: the first tier's try, already running (start_probe)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        if started is not None:
            started[1].kill()
            started[1].wait()
        return Sandbox(None, why_weak="bwrap not found")
    first = ""
    for i, flags in enumerate(TIERS):
        if i == 0 and started is not None and started[0] == bwrap:
            proc = started[1]
        else:
            if i == 0 and started is not None:  # another bwrap now (PATH changed): ask it
                started[1].kill()
                started[1].wait()
            try:
                proc = subprocess.Popen(_probe_command(bwrap, flags),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
            except OSError as e:
                first = first or f"{type(e).__name__}: {e}"
                continue
        try:
            _, err = proc.communicate(timeout=PROBE_SECONDS)
        except subprocess.TimeoutExpired as e:
            proc.kill()
            proc.wait()
            msg = f"{type(e).__name__}: {e}"
        else:
            if proc.returncode == 0:
                return Sandbox(bwrap, flags)
            lines = err.decode(errors="replace").strip().splitlines()
            msg = lines[0] if lines else f"exit status {proc.returncode}"
        first = first or msg
    if "namespace" in first.lower() or "permission" in first.lower():
        return Sandbox(None, why_weak=f"user namespaces are off: {first}")
    return Sandbox(None, why_weak=f"bwrap cannot start a sandbox here: {first}")


def _system_mounts() -> list[str]:
    out: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    for f in ETC_FILES:
        out += ["--ro-bind-try", f, f]
    out += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    return out


# ---------------------------------------------------------------------- the worker's mounts

def _real(p: str) -> str:
    return os.path.realpath(os.path.abspath(p))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def package_dir() -> str:
    """bpttcheck's own folder (the one holding sandbox/)."""
    return _real(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pth_paths(site_dir: str) -> list[str]:
    """The folders the .pth files of a site-packages folder add to sys.path: plain lines, and
    the folders an editable install's finder maps its packages to (setuptools writes them as
    ``MAPPING = {...}`` in ``__editable___*_finder.py``)."""
    found: list[str] = []
    try:
        names = sorted(os.listdir(site_dir))
    except OSError:
        return found
    for n in names:
        p = os.path.join(site_dir, n)
        try:
            if n.endswith(".pth"):
                with open(p, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        line = line.strip()
                        if line and not line.startswith(("#", "import ", "import\t")):
                            found.append(os.path.join(site_dir, line))
            elif n.startswith("__editable__") and n.endswith("_finder.py"):
                with open(p, encoding="utf-8", errors="replace") as f:
                    tree = ast.parse(f.read())
                for node in tree.body:
                    if (isinstance(node, ast.Assign) and len(node.targets) == 1
                            and getattr(node.targets[0], "id", "") == "MAPPING"):
                        mapping = ast.literal_eval(node.value)
                        found += [v for v in mapping.values() if isinstance(v, str)]
        except (OSError, SyntaxError, ValueError):
            continue
    return found


def _symlink_chain(path: str, limit: int = 40) -> list[str]:
    """``path`` and every link it goes through to the file it names (each hop must exist in
    the sandbox for the path to resolve there)."""
    chain = [os.path.abspath(path)]
    while os.path.islink(chain[-1]) and len(chain) < limit:
        chain.append(os.path.join(os.path.dirname(chain[-1]), os.readlink(chain[-1])))
    return chain


@cache
def python_paths() -> tuple[str, ...]:
    """What the worker's interpreter (``sys.executable -I``) reads: the folders of its
    executable (and of each link to it), a venv's pyvenv.cfg, the standard library, the
    site-packages and the folders their .pth files add, and its shared library's folder.
    Never a whole prefix: a Python installed with --prefix=$HOME would show the HOME."""
    paths = [os.path.dirname(p) for p in _symlink_chain(sys.executable)]
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    paths.append(os.path.join(venv, "pyvenv.cfg"))
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    sites = {sysconfig.get_paths()[k] for k in keys}
    sites |= {sysconfig.get_paths(vars={"base": b, "platbase": b, "installed_base": b,
                                        "installed_platbase": b})[k]
              for b in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
              for k in keys}
    paths += sorted(sites)
    for s in sorted(sites):
        paths += _pth_paths(s)
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        paths.append(libdir)
    return tuple(p for p in dict.fromkeys(paths) if os.path.exists(p) and _real(p) != os.sep)


ARCH_GROUP = "[bpttcheck.architectures]"


@cache
def _third_party_architectures(folders: tuple[str, ...]) -> bool:
    """Whether a distribution in ``folders`` registers an architecture outside bpttcheck: its
    entry point is imported in the worker and may build on bpttcheck.oracle (read from the
    entry_points.txt files: importlib.metadata costs more than the worker's start here)."""
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(folder, n, "entry_points.txt"), errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if ARCH_GROUP not in text:
                continue
            section = text.split(ARCH_GROUP, 1)[1].split("\n[", 1)[0]
            for line in section.splitlines():
                _, eq, value = line.partition("=")
                if eq and not value.strip().startswith("bpttcheck."):
                    return True
    return False


@dataclass
class Mounts:
    """The worker's file system, built up as (destination, kind, bwrap arguments): read-only
    binds (kind 0), masks over what must not show even inside a bound folder (kind 1: an
    empty tmpfs, made read-only last), the one writable folder (kind 2)."""

    ops: list[tuple[str, int, list[str]]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # a path as named -> its real path

    def ro(self, path: str) -> None:
        real = _real(path)
        self.ops.append((real, 0, ["--ro-bind", real, real]))
        named = os.path.abspath(path)
        if named != real:
            self.aliases[named] = real

    def rw(self, path: str) -> None:
        real = _real(path)
        self.ops.append((real, 2, ["--bind", real, real]))

    def mask(self, path: str) -> None:
        real = _real(path)
        self.ops.append((real, 1, ["--size", "65536", "--tmpfs", real]))

    def covered(self, path: str) -> bool:
        """Whether a bind shows ``path`` (it lies inside a bound folder)."""
        return any(kind != 1 and _within(path, dest) for dest, kind, _ in self.ops)

    def args(self) -> list[str]:
        """In bwrap's order: a folder before what is mounted inside it (shallower first; at
        one path a bind, then a mask), then the masks made read-only, once nothing more is
        mounted inside them. A path named through a symlink is bound where it is named too,
        unless a bound folder shows it already or it lies under a system symlink (/lib)."""
        ops = list(self.ops)
        for named, real in self.aliases.items():
            if not self.covered(named) and not any(
                    _within(named, d) for d in SYSTEM_DIRS if os.path.islink(d)):
                ops.append((named, 0, ["--ro-bind", real, named]))
        out: list[str] = []
        seen = set()
        for dest, kind, a in sorted(ops, key=lambda o: (o[0].count(os.sep), o[1], o[0])):
            if (dest, kind) not in seen:
                seen.add((dest, kind))
                out += a
        for dest in dict.fromkeys(d for d, kind, _ in ops if kind == 1):
            out += ["--remount-ro", dest]
        return out


def worker_command(sb: Sandbox, argv: list[str], *, writable: str, chdir: str,
                   plugin_path: Iterable[str] = (), preload: str | None = None,
                   hide: Iterable[str] = (), info_fd: int | None = None) -> list[str]:
    """``argv`` (the worker's interpreter and its arguments) inside bwrap. ``writable``: the
    session's folder, the only one the worker may write to. ``plugin_path``: the checker's
    PYTHONPATH folders (bound read-only unless they hold bpttcheck's source checkout).
    ``preload``: a sanitizer runtime given to the worker (not to bwrap) as LD_PRELOAD.
    ``hide``: folders that must not show even where a bound folder holds them (the class
    folder, the real HOME). ``info_fd``: where bwrap reports that the sandbox is set up."""
    assert sb.bwrap is not None
    plugin_path = tuple(plugin_path)
    pkg = package_dir()
    checkout = os.path.dirname(pkg)  # a source checkout's root, or site-packages
    installed = {_real(p) for p in python_paths()}
    m = Mounts()
    for p in python_paths():
        m.ro(p)
    for p in plugin_path:
        rp = _real(p)
        if not os.path.isdir(rp) or rp == os.sep:
            continue
        # a folder holding bpttcheck's own checkout would show its tests and reference files
        if _within(checkout, rp) and rp not in installed:
            continue
        m.ro(rp)
    m.ro(pkg)
    hidden = list(HIDDEN_PACKAGE_DIRS)
    if _third_party_architectures(tuple(python_paths()) + tuple(plugin_path)):
        # a plugin's architecture is imported in the worker and may build on the reference:
        # oracle/ stays (read-only; the guard still refuses it to user code), check/ goes
        hidden.remove("oracle")
    for d in hidden:
        m.mask(os.path.join(pkg, d))
    if preload and os.path.exists(preload):
        m.ro(preload)
    for h in hide:
        rh = _real(h)
        if rh != os.sep and m.covered(rh):
            m.mask(rh)
    m.rw(writable)
    args = [sb.bwrap, *sb.flags, *COMMON]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args += _system_mounts() + m.args() + ["--chdir", _real(chdir)]
    if preload:
        args += ["--setenv", "LD_PRELOAD", preload]
    return [*args, "--", *argv]


def exit_status(code: int | None) -> int | None:
    """The worker's exit status from bwrap's: bwrap exits with 128 + N when the worker died of
    signal N, which Popen reports as -N for a process of its own."""
    if code is not None and 128 < code <= 128 + 64:
        return -(code - 128)
    return code
