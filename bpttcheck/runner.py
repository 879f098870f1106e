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
from dataclasses import dataclass

import numpy as np

from bpttcheck import protocol
from bpttcheck.errors import UserCodeError

SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".mypy_cache"}
COPY_BUDGET = (2000, 200 << 20)  # files, bytes copied from the submission's folder
MAX_DEPTH = 3  # folder levels below the submission's own that are copied


@dataclass
class Limits:
    call_timeout: float = 10.0  # seconds for one call of the user's function
    load_timeout: float = 20.0  # seconds for importing the module
    memory_mb: int = 4096  # address space of the worker
    output_cap: int = 64 << 10  # bytes of the user's prints kept
    preload: str | None = None  # a sanitizer runtime to LD_PRELOAD (C code built with --sanitize)


def copy_submission(src_file: str, dst: str) -> str:
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


def _limits(memory_mb: int):
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb:
            b = memory_mb << 20
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
    return apply


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


class WorkerSession:
    def __init__(self, path: str, limits: Limits | None = None):
        self.path = os.path.abspath(path)
        self.limits = limits or Limits()
        self.tmp = tempfile.mkdtemp(prefix="bpttcheck-")
        self.workdir = os.path.join(self.tmp, "work")
        os.makedirs(self.workdir)
        self.user_path = copy_submission(self.path, self.workdir)
        self.tb_path = os.path.join(self.tmp, "traceback.txt")
        home = os.path.join(self.tmp, "home")
        os.makedirs(home)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, pkg_parent, str(r1), str(w2), self.workdir,
             os.path.dirname(self.path), self.tb_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(r1, w2), cwd=self.workdir, env=self._env(home), start_new_session=True,
            # ASan reserves terabytes of address space for its shadow: no RLIMIT_AS with it
            preexec_fn=_limits(0 if self.limits.preload else self.limits.memory_mb))
        os.close(r1)
        os.close(w2)
        self.wf = os.fdopen(w1, "wb")
        self.rf = os.fdopen(r2, "rb")
        self.out = _Drain(self.proc.stdout, self.limits.output_cap)
        self.err = _Drain(self.proc.stderr, self.limits.output_cap)
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.evaluations = 0

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
                self.replies.put(protocol.receive(self.rf))
            except Exception as e:  # EOF or garbage: the worker is gone
                self.replies.put(e)
                return

    # ------------------------------------------------------------------ requests

    def request(self, header: dict, arrays: dict | None, timeout: float):
        header = dict(header, timeout=timeout)
        try:
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
        if not hdr.get("ok"):
            raise UserCodeError(hdr.get("kind", "exception"), hdr.get("message", "failed"),
                                hdr.get("line"), self._output(hdr.get("traceback", "")))
        return hdr, arrs

    def load(self, style: str | None, options: dict, path: str | None = None) -> dict:
        hdr, _ = self.request({"op": "load", "path": path or self.user_path, "style": style,
                               "options": options}, None, self.limits.load_timeout)
        return hdr

    def _case_arrays(self, case, params=None) -> dict:
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
        hdr, arrs = self.request({"op": "call", **self._case_header(case, layout)},
                                 self._case_arrays(case), self.limits.call_timeout)
        grads = protocol.unpack_params("G", arrs)
        last = tuple(arrs.get(f"S{i}") for i in range(len(case.state)))
        return hdr["loss"], grads, last, hdr

    def losses(self, case, layout, directions: list[dict], offsets: list[tuple[int, float]]):
        arrays = self._case_arrays(case)
        for j, d in enumerate(directions):
            arrays.update(protocol.pack_params(f"D{j}", d))
        timeout = self.limits.call_timeout * max(len(offsets), 1)
        _, arrs = self.request({"op": "losses", "offsets": [list(o) for o in offsets],
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
        what = "importing your module" if op == "load" else "one call of your code"
        hint = (" If that is a training loop, put it under `if __name__ == \"__main__\":` "
                "(bpttcheck skips top-level `while` loops and `for` loops that call your loss "
                "function, but not other long-running code)." if op == "load" else
                " Look for a loop whose condition never changes; raise the limit with "
                "--timeout if the code is just slow.")
        raise UserCodeError("timeout", f"{what} did not finish within {timeout:g} s"
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
            kind = "memory" if sig == "SIGKILL" else "crash"
            msg = f"your code crashed the worker with {sig}"
            if sig == "SIGSEGV":
                msg += " (a segmentation fault: an out-of-bounds or NULL pointer access)"
        else:
            kind = "exit"
            msg = (f"your code ended the process with exit status {code} (os._exit or a C "
                   "exit()); bpttcheck needs the function to return")
        raise UserCodeError(kind, msg + (f" at {line}" if line else ""), line, self._output())

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self):
        try:
            self.wf.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
