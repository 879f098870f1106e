"""The checker's side of the worker: start it with limits, talk to it, and turn everything
that can go wrong in user code into a UserCodeError that names the cause and the line."""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from bpttcheck.errors import UserCodeError

# numpy and the protocol are imported where they are used: `bpttcheck run` starts the worker
# (prestart) before it pays for its own heavy imports, so the two start-ups overlap

SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".mypy_cache"}
CODE_SUFFIXES = (".py", ".c", ".so", ".h", ".o")
COPY_BUDGET = (2000, 200 << 20)  # files, bytes copied from the submission's folder
DATA_FILES = 100  # files copied from beside a submission in a class folder (grade)
MAX_DEPTH = 3  # folder levels below the submission's own that are copied


@dataclass
class Limits:
    call_timeout: float = 10.0  # seconds for one call of the user's function
    load_timeout: float = 20.0  # seconds for importing the module
    memory_mb: int = 4096  # address space of the worker
    output_cap: int = 64 << 10  # bytes of the user's prints kept
    preload: str | None = None  # a sanitizer runtime to LD_PRELOAD (C code built with --sanitize)
    # "folder": the submission's folder is copied; "data": only the file and the data files
    # beside it (a class folder of one file per student: the others' code is not copied)
    copy: str = "folder"


def copy_submission(src_file: str, dst: str, mode: str = "folder") -> str:
    """Copy the submission's folder (bounded in depth, files and bytes) so the user's files are
    found but never touched. A file in a big shared folder (/tmp, a home directory) costs at
    most the budget, and our own work folders are never copied into themselves."""
    src_dir = os.path.dirname(os.path.abspath(src_file))
    dst_real = os.path.realpath(dst)
    files, size = 0, 0
    for root, dirs, names in os.walk(src_dir):
        rel = os.path.relpath(root, src_dir)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith((".", "bpttcheck-"))
                   and not os.path.realpath(os.path.join(root, d)).startswith(dst_real)
                   and depth < MAX_DEPTH]
        if mode == "data":  # a class folder: the data files beside, the first DATA_FILES
            dirs[:] = []
            names = sorted(n for n in names if not n.endswith(CODE_SUFFIXES))[:DATA_FILES]
        for n in names:
            p = os.path.join(root, n)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if not os.path.isfile(p) or size + st.st_size > COPY_BUDGET[1]:
                continue
            os.makedirs(os.path.join(dst, rel), exist_ok=True)
            try:
                shutil.copy2(p, os.path.join(dst, rel, n))
            except OSError:
                continue  # unreadable files are simply not available to the user's code
            files, size = files + 1, size + st.st_size
            if files >= COPY_BUDGET[0]:
                break
        if files >= COPY_BUDGET[0]:
            break
    target = os.path.join(dst, os.path.basename(src_file))
    if not os.path.exists(target):
        shutil.copy2(src_file, target)
    return target


CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
NOFILE = 256  # open files of the worker
NPROC_MARGIN = 64  # tasks the worker may add to its user's count (threads count too)
_libc_cache: list = []


def _libc():
    """libc through ctypes (Linux), resolved in the checker before a fork; or None."""
    if not _libc_cache:
        lib = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                lib = ctypes.CDLL(None, use_errno=True)
                lib.unshare, lib.prctl  # noqa: B018 - resolve the symbols now, not in the child
            except (OSError, AttributeError):
                lib = None
        _libc_cache.append(lib)
    return _libc_cache[0]


def _cpu_seconds(limits: Limits) -> int:
    """CPU time of the whole worker: generous (the wall clock of each request is the real
    limit), but a busy loop that escaped it still dies."""
    return int(limits.load_timeout + 50 * limits.call_timeout) + 1


def _nproc(uid: int) -> int | None:
    """An RLIMIT_NPROC for a worker of ``uid``: the tasks that user runs now plus a margin, so
    a fork bomb stops early. None for root, whom the kernel does not hold to it."""
    if uid == 0 or not os.path.isdir("/proc"):
        return None
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                st = f.read()
        except OSError:
            continue
        m = re.search(rb"\nUid:\s+(\d+)", st)
        t = re.search(rb"\nThreads:\s+(\d+)", st)
        if m and int(m.group(1)) == uid:
            n += int(t.group(1)) if t else 1
    return n + NPROC_MARGIN


def _limits(limits: Limits, nproc: int | None = None, libc=None):
    """The worker's preexec_fn (after fork, before exec): resource limits; dies with the
    checker; adopts its orphaned descendants (so close() finds them); no network."""
    memory_mb = 0 if limits.preload else limits.memory_mb  # ASan reserves terabytes of address
    cpu = _cpu_seconds(limits)                                # space for its shadow: no RLIMIT_AS

    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb:
            b = memory_mb << 20
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))  # SIGXCPU, then SIGKILL
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        n = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            # a network namespace of its own has nothing but a loopback that is down; without
            # root, a user namespace may allow it; otherwise guard.py still refuses sockets
            if libc.unshare(CLONE_NEWNET) != 0:
                libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)
    return apply


def _descendants(pid: int) -> set[int]:
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


def _kill_tree(pid: int) -> None:
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
        new = _descendants(pid) - found
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


def _env(home: str) -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _sanitizer_report(stderr: str) -> tuple[str, str | None] | None:
    """(what, user's file:line: source) from an AddressSanitizer or UBSan report."""
    m = re.search(r"ERROR: AddressSanitizer: ([^\n]*)", stderr)
    if m:
        what = re.sub(r" on address 0x[0-9a-f]+.*", "", m.group(1))
        acc = re.search(r"\n(READ|WRITE) of size (\d+)", stderr)
        if acc:
            what += f" ({acc.group(1).lower()} of {acc.group(2)} bytes)"
        frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\w+) (\S+\.c):(\d+)", stderr)
    else:
        m = re.search(r"(\S+\.c):(\d+):\d+: runtime error: ([^\n]*)", stderr)
        if not m:
            return None
        what, frame = "undefined behaviour: " + m.group(3), None
        return what, _source_line(m.group(1), int(m.group(2)))
    return what, _source_line(frame.group(2), int(frame.group(3))) if frame else None


def _sanitizer_excerpt(stderr: str, user_file: str) -> str:
    """The lines of a sanitizer report a user needs: what, where in their C, where allocated."""
    keep = []
    for ln in stderr.splitlines():
        frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\w+) (\S+\.c):(\d+)", ln)
        if frame and os.path.basename(frame.group(2)) == user_file:
            keep.append(f"    in {frame.group(1)} {os.path.basename(frame.group(2))}:{frame.group(3)}")
        elif re.search(r"ERROR: AddressSanitizer|^(READ|WRITE) of size|is located|allocated by|"
                       r"runtime error:|^SUMMARY", ln):
            keep.append(re.sub(r"(/[^\s:]+/)([^/\s]+\.c)", r"\2", ln.strip()))
    return "\n".join(keep)


def _source_line(path: str, n: int) -> str:
    try:
        src = open(path, errors="replace").read().splitlines()[n - 1].strip()
    except (OSError, IndexError):
        src = ""
    return f"{os.path.basename(path)}:{n}: {src}"


BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from bpttcheck.worker import main; main(sys.argv[2:])"


class _Drain(threading.Thread):
    """Keeps the first ``cap`` bytes of a stream and discards the rest, so a flood of prints
    neither fills the pipe (a hang) nor our memory."""

    def __init__(self, stream, cap):
        super().__init__(daemon=True)
        self.stream, self.cap, self.buf, self.total = stream, cap, bytearray(), 0
        self.start()

    def run(self):
        while chunk := self.stream.read1(65536):  # a BufferedReader: returns what is there
            self.total += len(chunk)
            if len(self.buf) < self.cap:
                self.buf += chunk[: self.cap - len(self.buf)]

    def text(self) -> str:
        s = self.buf.decode("utf-8", "replace")
        if self.total > len(self.buf):
            s += f"\n... ({self.total - len(self.buf)} more bytes not kept)"
        return s


def limits_for(spec_limits: dict | None, timeout: float | None, memory_mb: int | None) -> Limits:
    """The worker's limits from a spec's [limits] table (already validated, or raw TOML for
    the prestart) and the --timeout / --memory-mb flags, which win."""
    lim = Limits()
    if spec_limits is not None:
        t, m = spec_limits.get("timeout"), spec_limits.get("memory_mb", 4096)
        if t is not None:
            lim.call_timeout = lim.load_timeout = float(t)
        lim.memory_mb = int(m)
    if timeout is not None:
        lim.call_timeout = lim.load_timeout = timeout
    if memory_mb is not None:
        lim.memory_mb = memory_mb
    return lim


_PRESTARTED: dict = {}  # _key(path, limits) -> a WorkerSession started before it was asked for


def _key(path: str, limits: Limits) -> tuple[str, str]:
    return os.path.abspath(path), repr(limits)


def prestart(path: str, limits: Limits) -> None:
    """Start the worker for ``path`` now; session() hands it out if asked with equal limits.
    A worker that is never asked for is killed at exit."""
    import atexit
    if _key(path, limits) in _PRESTARTED:
        return
    try:
        w = WorkerSession(path, limits)
    except OSError:
        return  # the ordinary start will say what is wrong
    _PRESTARTED[_key(path, limits)] = w
    atexit.register(w.close)


def session(path: str, limits: Limits) -> "WorkerSession":
    w = _PRESTARTED.pop(_key(path, limits), None)
    return w if w is not None else WorkerSession(path, limits)


class WorkerSession:
    def __init__(self, path: str, limits: Limits | None = None):
        self.path = os.path.abspath(path)
        self.limits = limits or Limits()
        self.tmp = tempfile.mkdtemp(prefix="bpttcheck-")
        self.workdir = os.path.join(self.tmp, "work")
        os.makedirs(self.workdir)
        self.user_path = copy_submission(self.path, self.workdir, self.limits.copy)
        self.tb_path = os.path.join(self.tmp, "traceback.txt")
        home = os.path.join(self.tmp, "home")
        os.makedirs(home)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # its own session and process group (killed as a whole), limits, no network: _limits
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, pkg_parent, str(r1), str(w2), self.workdir,
             os.path.dirname(self.path), self.tb_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(r1, w2), cwd=self.workdir, env=self._env(home), start_new_session=True,
            preexec_fn=_limits(self.limits, _nproc(os.getuid()), _libc()))
        os.close(r1)
        os.close(w2)
        self.wf = os.fdopen(w1, "wb")
        self.rf = os.fdopen(r2, "rb")
        self.out = _Drain(self.proc.stdout, self.limits.output_cap)
        self.err = _Drain(self.proc.stderr, self.limits.output_cap)
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.evaluations = 0
        self.call_seconds = float("inf")  # the fastest round trip of one call seen so far

    def _env(self, home: str) -> dict:
        env = _env(home)
        if self.limits.preload:
            env["LD_PRELOAD"] = self.limits.preload
            env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:exitcode=86"
            env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:exitcode=86"
        return env

    def _read(self):
        while True:
            try:
                from bpttcheck import protocol
                self.replies.put(protocol.receive(self.rf))
            except Exception as e:  # EOF or garbage: the worker is gone
                self.replies.put(e)
                return

    # ------------------------------------------------------------------ requests

    def request(self, header: dict, arrays: dict | None, timeout: float):
        header = dict(header, timeout=timeout)
        try:
            from bpttcheck import protocol
            protocol.send(self.wf, header, arrays)
        except (BrokenPipeError, OSError):
            self._died()
        try:
            got = self.replies.get(timeout=timeout + 2.0)
        except queue.Empty:
            self._timed_out(header["op"], timeout)
        if isinstance(got, Exception):
            self._died()
        hdr, arrs = got
        self.evaluations = hdr.get("evaluations", self.evaluations)
        blocked = hdr.get("blocked")
        if blocked:  # refused by the worker's guard (guard.py), even if the code caught it
            more = len(blocked) - 1
            raise UserCodeError("forbidden", blocked[0]["message"] + (
                f" (and {more} other blocked attempt{'s' if more > 1 else ''})" if more else ""),
                blocked[0].get("line"), self._output())
        if not hdr.get("ok"):
            raise UserCodeError(hdr.get("kind", "exception"), hdr.get("message", "failed"),
                                hdr.get("line"), self._output(hdr.get("traceback", "")))
        return hdr, arrs

    def load(self, style: str | None, options: dict, path: str | None = None) -> dict:
        hdr, _ = self.request({"op": "load", "path": path or self.user_path, "style": style,
                               "options": options}, None, self.limits.load_timeout)
        return hdr

    def layer_run(self, unit: str, args: list, ups: list):
        """Layer style: forward then backward of one unit; (header, outputs, grads)."""
        arrays = {f"A{i}": a for i, a in enumerate(args)}
        arrays.update({f"U{i}": a for i, a in enumerate(ups)})
        hdr, arrs = self._one_call({"op": "layer_run", "unit": unit}, arrays)
        outs = [arrs[f"O{i}"] for i in range(len(arrs)) if f"O{i}" in arrs]
        grads = [arrs[f"G{i}"] for i in range(len(arrs)) if f"G{i}" in arrs]
        return hdr, outs, grads

    def _one_call(self, header: dict, arrays: dict):
        """A request for one call of the user's code, timed: the fastest round trip seen sets
        how long a batch of calls may take (_batch_timeout)."""
        t = time.perf_counter()
        got = self.request(header, arrays, self.limits.call_timeout)
        self.call_seconds = min(self.call_seconds, time.perf_counter() - t)
        return got

    def _batch_timeout(self, n: int) -> float:
        """A batch of n calls may take one slow call plus ample time for the rest (20x the
        fastest call seen, each), but never more than two call timeouts in all: a hang
        anywhere in a batch ends about as fast as a hang in a single call."""
        each = max(20 * self.call_seconds, 0.05)
        return self.limits.call_timeout + min(n * each, self.limits.call_timeout)

    def layer_project(self, unit: str, args: list, ups: list, dirs: list[list], offsets):
        arrays = {f"A{i}": a for i, a in enumerate(args)}
        arrays.update({f"U{i}": a for i, a in enumerate(ups)})
        for j, d in enumerate(dirs):
            arrays.update({f"D{j}_{i}": a for i, a in enumerate(d)})
        _, arrs = self.request({"op": "layer_project", "unit": unit, "ndirs": len(dirs),
                                "offsets": [list(o) for o in offsets]}, arrays,
                               self._batch_timeout(len(offsets)))
        return arrs["values"]

    def _case_arrays(self, case, params=None) -> dict:
        import numpy as np

        from bpttcheck import protocol
        a = protocol.pack_params("P", params if params is not None else case.params)
        a["xs"] = np.asarray(case.xs, dtype=np.int64)
        a["ys"] = np.asarray(case.ys, dtype=np.int64)
        for i, s in enumerate(case.state):
            a[f"state{i}"] = np.asarray(s, dtype=np.float64)
        return a

    def _case_header(self, case, layout) -> dict:
        d = case.dims
        return {"layout": layout.to_dict(), "nstate": len(case.state),
                "dims": {"T": d.T, "X": d.X, "H": d.H, "Y": d.Y}}

    def call(self, case, layout):
        """(loss, grads, last_state, info) of the user's code on ``case``."""
        hdr, arrs = self._one_call({"op": "call", **self._case_header(case, layout)},
                                   self._case_arrays(case))
        from bpttcheck import protocol
        grads = protocol.unpack_params("G", arrs)
        last = tuple(arrs.get(f"S{i}") for i in range(len(case.state)))
        return hdr["loss"], grads, last, hdr

    def losses(self, case, layout, directions: list[dict], offsets: list[tuple[int, float]],
               entries: list[tuple[str, int, float]] = ()):
        """The user's loss at params + s * directions[j] for each (j, s) in offsets, then at
        params with entry i of group g moved by s for each (g, i, s) in entries."""
        arrays = self._case_arrays(case)
        for j, d in enumerate(directions):
            from bpttcheck import protocol
            arrays.update(protocol.pack_params(f"D{j}", d))
        # a batch may take as long as one slow call plus ample time for the rest: a hang in
        # any call still ends within about one call_timeout, not n of them
        timeout = self._batch_timeout(len(offsets) + len(entries))
        _, arrs = self.request({"op": "losses", "offsets": [list(o) for o in offsets],
                                "entries": [list(e) for e in entries],
                                **self._case_header(case, layout)}, arrays, timeout)
        return arrs["losses"]

    # ------------------------------------------------------------------ failures

    def _output(self, extra: str = "") -> str:
        self.proc.poll()
        parts = [extra.rstrip()] if extra.strip() else []
        out = self.out.text().strip()
        if out:
            parts.append("your code printed:\n" + out[-4000:])
        return "\n".join(parts)

    def _user_line(self, dump_path: str) -> str | None:
        """The innermost frame in the user's files of a faulthandler dump."""
        try:
            text = open(dump_path, errors="replace").read()
        except OSError:
            return None
        for m in re.finditer(r'File "([^"]+)", line (\d+)', text):
            f, n = m.group(1), int(m.group(2))
            if os.path.realpath(f).startswith(os.path.realpath(self.workdir) + os.sep):
                try:
                    src = open(f, errors="replace").read().splitlines()[n - 1].strip()
                except (OSError, IndexError):
                    src = ""
                return f"{os.path.basename(f)}:{n}: {src}"
        return None

    def _timed_out(self, op: str, timeout: float):
        self.kill()
        line = self._user_line(self.tb_path)
        what = {"load": "importing your module", "call": "one call of your code",
                "layer_run": "one call of your code"}.get(
            op, f"a batch of calls of your code (finite differences; {self.limits.call_timeout:g} s "
                f"a call)")
        hint = (" If that is a training loop, put it under `if __name__ == \"__main__\":` "
                "(bpttcheck skips top-level `while` loops and `for` loops that call your loss "
                "function, but not other long-running code)." if op == "load" else
                " Look for a loop whose condition never changes; raise the limit with "
                "--timeout if the code is just slow.")
        raise UserCodeError("timeout", f"{what} did not finish within {timeout:.1f} s"
                            + (f"; it was running {line}" if line else "") + "." + hint,
                            line, self._output())

    def _died(self):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        line = self._user_line(self.tb_path + ".crash")
        found = _sanitizer_report(self.err.text())
        if found:
            summary, where = found
            raise UserCodeError("sanitizer", f"the sanitizer stopped your code: {summary}"
                                + (f" at {where}" if where else ""), where,
                                _sanitizer_excerpt(self.err.text(), os.path.basename(self.path)))
        if code is not None and code < 0:
            sig = signal.Signals(-code).name
            kind = {"SIGKILL": "memory", "SIGXCPU": "timeout"}.get(sig, "crash")
            msg = f"your code crashed the worker with {sig}"
            if sig == "SIGXCPU":
                msg = ("your code used up the worker's CPU-time limit (SIGXCPU): it kept "
                       "computing past every per-call timeout")
            if sig == "SIGSEGV":
                msg += " (a segmentation fault: an out-of-bounds or NULL pointer access)"
        else:
            kind = "exit"
            msg = (f"your code ended the process with exit status {code} (os._exit or a C "
                   "exit()); bpttcheck needs the function to return")
        raise UserCodeError(kind, msg + (f" at {line}" if line else ""), line, self._output())

    def kill(self):
        """End the worker and everything it started (see _kill_tree)."""
        if self.proc.returncode is None:
            _kill_tree(self.proc.pid)
        else:  # already reaped: its pid may be reused, only its group can still be ours
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self):
        # no graceful exit to wait for: the worker has nothing to save, and a process it
        # forked must not outlive the check
        self.kill()
        try:
            self.wf.close()
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
