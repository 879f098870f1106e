"""The checker's side of the worker: start it with limits, talk to it, and turn everything
that can go wrong in user code into a UserCodeError that names the cause and the line."""
from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from bpttcheck.errors import ErrorKind, PluginError, UserCodeError, source_line
from bpttcheck.sandbox.limits import Limits, libc, nproc, preexec, worker_env
from bpttcheck.sandbox.proctree import kill_tree
from bpttcheck.sandbox.sanitizer import sanitizer_excerpt, sanitizer_report
from bpttcheck.sandbox.staging import copy_submission, root_of

# numpy and the protocol are imported where they are used: `bpttcheck run` starts the worker
# (prestart) before it pays for its own heavy imports, so the two start-ups overlap


# The worker runs isolated (-I: no PYTHONPATH, no user site). Its path gets bpttcheck first
# and, last, the checker's PYTHONPATH folders: a plugin the checker finds there (an entry point
# of a distribution on PYTHONPATH) must be found by the worker too, or the two disagree on
# which adapters and architectures exist.
BOOT = ("import os, sys; sys.path.insert(0, sys.argv[1]); "
        "sys.path += [p for p in sys.argv[2].split(os.pathsep) if p]; "
        "from bpttcheck.sandbox.worker import main; main(sys.argv[3:])")


def _plugin_path() -> str:
    """The checker's PYTHONPATH, absolute (the worker starts in another folder)."""
    return os.pathsep.join(os.path.abspath(p) for p in
                           os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)


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

_WHAT = {"load": "loading your module", "inspect": "inspecting your module",
         "call": "one call of your code", "losses": "a batch of calls of your code",
         "layer_run": "one call of your code", "layer_project": "a batch of calls of your code",
         "trace": "one call of your code, its lines recorded"}

_STR, _OPT_STR = (str,), (str, type(None))
_DICT, _OPT_DICT, _LIST = (dict,), (dict, type(None)), (list,)
_MODIFIED = (list, dict, type(None))
# the header fields the checker reads, by op, with the types the worker sends (a field
# missing from a successful reply is a problem; one missing from a failure's is not)
_OK_FIELDS: dict[str, dict[str, tuple]] = {
    "load": {"adapter": _STR, "arch": _STR, "capabilities": _DICT, "dims": _OPT_DICT,
             "layouts": _LIST, "skipped": _LIST, "notes": _LIST, "extra": _DICT,
             "model": _OPT_DICT, "options": _DICT},
    "inspect": {"found": _DICT, "skipped": _LIST},
    "call": {"loss": (int, float), "modified": _MODIFIED, "dtype": _STR},
    "losses": {},
    "layer_run": {"status": _STR, "message": _OPT_STR, "line": _OPT_STR,
                  "modified": _MODIFIED, "dtype": _STR},
    "layer_project": {},
    "trace": {"records": _LIST, "truncated": (int,)},
}
_OK_ARRAYS = {"losses": "losses", "layer_project": "values"}
_ERROR_FIELDS = {"kind": _STR, "message": _STR, "line": _OPT_STR, "traceback": _STR,
                 "plugin": _LIST}


def reply_problem(op: str, rid: str, hdr, arrs) -> str | None:
    """What is wrong with a reply to request ``rid`` (an ``op``), or None: the id it answers,
    the type of every header field the checker reads, plain numeric arrays. A loss must be a
    number: NaN and infinities are the user's results and are judged as such; a string, a
    bool or an integer beyond the float range is no loss the worker sends."""
    if not isinstance(hdr, dict):
        return f"a header that is a {type(hdr).__name__}, not an object"
    if hdr.get("id") != rid:
        return "it answers another request"
    if not isinstance(hdr.get("ok"), bool):
        return "'ok' is not true or false"
    ev = hdr.get("evaluations", 0)
    if not isinstance(ev, int) or isinstance(ev, bool) or ev < 0:
        return "'evaluations' is not a count"
    blocked = hdr.get("blocked") or []
    if not isinstance(blocked, list) or not all(
            isinstance(b, dict) and isinstance(b.get("message"), str)
            and isinstance(b.get("line"), _OPT_STR) for b in blocked):
        return "'blocked' is not a list of refused attempts"
    fields = _OK_FIELDS.get(op, {}) if hdr["ok"] else _ERROR_FIELDS
    for name, types in fields.items():
        if hdr["ok"] and name not in hdr and type(None) not in types:
            return f"no {name!r}"
        v = hdr.get(name)
        if (name in hdr and (not isinstance(v, types) or isinstance(v, bool))):
            return f"{name!r} is a {type(v).__name__}"
    if not hdr["ok"]:
        if hdr.get("kind", ErrorKind.EXCEPTION) not in set(ErrorKind):
            return f"an unknown error kind {str(hdr['kind'])[:40]!r}"
        plugin = hdr.get("plugin")
        if plugin is not None and (len(plugin) != 4 or
                                   not all(isinstance(x, str) for x in plugin)):
            return "'plugin' is not four strings"
    elif op == "call":
        try:
            float(hdr["loss"])
        except OverflowError:
            return "'loss' is an integer beyond the float range"
    elif op == "load":
        if not isinstance(hdr["capabilities"].get("kind"), str):
            return "the capabilities have no kind"
        if not all(isinstance(x, str) for x in hdr["skipped"]) or not all(
                isinstance(x, dict) for x in hdr["layouts"]) or not all(
                isinstance(n, dict) and all(isinstance(n.get(f), str)
                                            for f in ("id", "title", "evidence"))
                for n in hdr["notes"]):
            return "its skipped lines, layouts or notes are not what they should be"
    if not isinstance(arrs, dict):
        return "arrays that are not a bundle"
    for k, a in arrs.items():
        if getattr(getattr(a, "dtype", None), "kind", "?") not in ("b", "i", "u", "f"):
            return f"array {k[:40]!r} is not numbers"
    need = _OK_ARRAYS.get(op) if hdr["ok"] else None
    if need and need not in arrs:
        return f"no array {need!r}"
    return None


_PRESTARTED: dict = {}  # _key(path, limits) -> a WorkerSession started before it was asked for


def _key(path: str, limits: Limits) -> tuple[str, str]:
    return os.path.abspath(path), repr(limits)


def prestarted(path: str, limits: Limits) -> WorkerSession | None:
    """The early worker for ``path`` with ``limits``, if one is waiting (it stays waiting)."""
    return _PRESTARTED.get(_key(path, limits))


def any_prestarted() -> bool:
    """Whether any early worker is still waiting to be handed out."""
    return bool(_PRESTARTED)


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

def session(path: str, limits: Limits) -> WorkerSession:
    w = _PRESTARTED.pop(_key(path, limits), None)
    return w if w is not None else WorkerSession(path, limits)

class WorkerSession:
    def __init__(self, path: str, limits: Limits | None = None):
        self.path = os.path.abspath(path)
        self.limits = limits or Limits()
        self.tmp = tempfile.mkdtemp(prefix="bpttcheck-")
        self.workdir = os.path.join(self.tmp, "work")
        os.makedirs(self.workdir)
        self.user_path = copy_submission(self.path, self.workdir, self.limits.copy,
                                         self.limits.run_from)
        origin = root_of(self.path, self.limits.copy, self.limits.run_from)
        self.tb_path = os.path.join(self.tmp, "traceback.txt")
        home = os.path.join(self.tmp, "home")
        os.makedirs(home)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        # its own session and process group (killed as a whole), limits, no network: preexec
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, pkg_parent, _plugin_path(), str(r1), str(w2),
             self.workdir, origin, self.tb_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(r1, w2), cwd=self.workdir, env=self._env(home), start_new_session=True,
            # preexec only makes system calls (setrlimit, and prctl/unshare through a libc
            # resolved before the fork): nothing a thread of ours could hold a lock on
            preexec_fn=preexec(self.limits, nproc(os.getuid()), libc()))
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

    def restage(self) -> None:
        """Stage the submission again as it is now, in place of the copy made at the start
        (`bpttcheck watch` starts a worker ahead of the next save: the save is staged into it)."""
        for name in os.listdir(self.workdir):
            p = os.path.join(self.workdir, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)
        self.user_path = copy_submission(self.path, self.workdir, self.limits.copy,
                                         self.limits.run_from)

    def _env(self, home: str) -> dict:
        env = worker_env(home)
        if self.limits.preload:
            env["LD_PRELOAD"] = self.limits.preload
            env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:exitcode=86"
            env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:exitcode=86"
        return env

    def _read(self):
        while True:
            try:
                from bpttcheck.sandbox import protocol
                self.replies.put(protocol.receive(self.rf))
            except Exception as e:  # noqa: BLE001 - EOF or garbage: the worker is gone
                self.replies.put(e)
                return

    # ------------------------------------------------------------------ requests

    def request(self, header: dict, arrays: dict | None, timeout: float):
        # a fresh id a request: a reply that does not carry it answers something else (a
        # message user code wrote to the reply pipe itself)
        from bpttcheck.sandbox import protocol
        rid = secrets.token_hex(8)
        header = dict(header, timeout=timeout, id=rid)
        try:
            protocol.send(self.wf, header, arrays)
        except (BrokenPipeError, OSError):
            self._died()
        try:
            got = self.replies.get(timeout=timeout + 2.0)
        except queue.Empty:
            self._timed_out(header["op"], timeout)
        if isinstance(got, protocol.ProtocolError):
            self._forged(header["op"], str(got))
        if isinstance(got, Exception):
            self._died()
        hdr, arrs = got
        problem = reply_problem(header["op"], rid, hdr, arrs)
        if problem:
            self._forged(header["op"], problem)
        self.evaluations = hdr.get("evaluations", self.evaluations)
        blocked = hdr.get("blocked")
        if blocked:  # refused by the worker's guard (guard.py), even if the code caught it
            more = len(blocked) - 1
            raise UserCodeError(ErrorKind.FORBIDDEN, blocked[0]["message"] + (
                f" (and {more} other blocked attempt{'s' if more > 1 else ''})" if more else ""),
                blocked[0].get("line"), self._output())
        if hdr.get("kind") == ErrorKind.PLUGIN and hdr.get("plugin"):
            raise PluginError(*hdr["plugin"])  # an installed plugin is broken (exit 4)
        if not hdr.get("ok"):
            raise UserCodeError(hdr.get("kind", ErrorKind.EXCEPTION), hdr.get("message", "failed"),
                                hdr.get("line"), self._output(hdr.get("traceback", "")))
        return hdr, arrs

    def _forged(self, op: str, problem: str):
        """A reply the worker never sends: the pipe can no longer be trusted, the check ends."""
        self.kill()
        raise UserCodeError(
            ErrorKind.PROTOCOL, f"the worker's reply to {_WHAT.get(op, op)} is not one "
            f"bpttcheck's worker sends ({problem}): something in the worker process wrote to "
            f"bpttcheck's reply pipe (does your code write to a file descriptor it did not "
            f"open?), or the worker broke. No reply after it can be trusted.",
            None, self._output())

    def load(self, style: str | None, options: dict, path: str | None = None) -> dict:
        hdr, _ = self.request({"op": "load", "path": path or self.user_path, "style": style,
                               "options": options}, None, self.limits.load_timeout)
        return hdr

    def inspect(self) -> tuple[dict, list[str]]:
        """What the module defines (inspection.py), read in the worker after loading it:
        (found, the top-level statements the load left out)."""
        hdr, _ = self.request({"op": "inspect", "path": self.user_path}, None,
                              self.limits.load_timeout)
        return hdr["found"], hdr.get("skipped", [])

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

        from bpttcheck.sandbox import protocol
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
        from bpttcheck.sandbox import protocol
        grads = protocol.unpack_params("G", arrs)
        last = tuple(arrs.get(f"S{i}") for i in range(len(case.state)))
        return float(hdr["loss"]), grads, last, hdr

    def trace(self, case, layout) -> tuple[list[tuple[str, int, str, int | None]], list, bool]:
        """One call on ``case`` with the user's lines recorded (sandbox/tracer.py): the
        records (file, line, name, step), their values, and whether the budget cut it short.
        Records that are not what the tracer sends are dropped, never trusted."""
        hdr, arrs = self.request({"op": "trace", **self._case_header(case, layout)},
                                 self._case_arrays(case), self.limits.call_timeout * 4)
        recs, values = [], []
        for i, r in enumerate(hdr["records"]):
            ok = (isinstance(r, list) and len(r) == 4 and isinstance(r[0], str)
                  and isinstance(r[1], int) and isinstance(r[2], str)
                  and (r[3] is None or isinstance(r[3], int)) and f"R{i}" in arrs)
            if ok:
                recs.append((r[0], r[1], r[2], r[3]))
                values.append(arrs[f"R{i}"])
        return recs, values, bool(hdr["truncated"])


    def measured_call(self, case, layout):
        """``call`` measured in the worker (calltrace.py): (loss, grads, last_state, info,
        trace) with trace = {"lines", "calls": [[name, n]], "complex", "tampered"}. Tracing
        slows line-dense Python up to ten times (a few seconds at most, calltrace.LINE_BUDGET):
        the call may take three call timeouts, or one plus 30 times the fastest call seen."""
        from bpttcheck.sandbox import protocol
        fastest = self.call_seconds if self.call_seconds < float("inf") else 0.0
        timeout = max(3 * self.limits.call_timeout, self.limits.call_timeout + 30 * fastest)
        hdr, arrs = self.request({"op": "call", "measure": True, **self._case_header(case, layout)},
                                 self._case_arrays(case), timeout)
        trace = _measured_fields(hdr.get("measured"))
        if trace is None:
            self._forged("call", "its measurement of the call is not what the worker sends")
        grads = protocol.unpack_params("G", arrs)
        last = tuple(arrs.get(f"S{i}") for i in range(len(case.state)))
        return float(hdr["loss"]), grads, last, hdr, trace

    def losses(self, case, layout, directions: list[dict], offsets: list[tuple[int, float]],
               entries: list[tuple[str, int, float]] | None = None):
        """The user's loss at params + s * directions[j] for each (j, s) in offsets, then at
        params with entry i of group g moved by s for each (g, i, s) in entries."""
        entries = entries or []
        arrays = self._case_arrays(case)
        for j, d in enumerate(directions):
            from bpttcheck.sandbox import protocol
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
            with open(dump_path, errors="replace") as dump:
                text = dump.read()
        except OSError:
            return None
        for m in re.finditer(r'File "([^"]+)", line (\d+)', text):
            f, n = m.group(1), int(m.group(2))
            if os.path.realpath(f).startswith(os.path.realpath(self.workdir) + os.sep):
                return source_line(f, n)
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
        raise UserCodeError(ErrorKind.TIMEOUT, f"{what} did not finish within {timeout:.1f} s"
                            + (f"; it was running {line}" if line else "") + "." + hint,
                            line, self._output())

    def _died(self):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        line = self._user_line(self.tb_path + ".crash")
        found = sanitizer_report(self.err.text())
        if found:
            summary, where = found
            raise UserCodeError(ErrorKind.SANITIZER, f"the sanitizer stopped your code: {summary}"
                                + (f" at {where}" if where else ""), where,
                                sanitizer_excerpt(self.err.text(), os.path.basename(self.path)))
        if code is not None and code < 0:
            sig = signal.Signals(-code).name
            kind = {"SIGKILL": ErrorKind.MEMORY, "SIGXCPU": ErrorKind.TIMEOUT}.get(
                sig, ErrorKind.CRASH)
            msg = f"your code crashed the worker with {sig}"
            if sig == "SIGXCPU":
                msg = ("your code used up the worker's CPU-time limit (SIGXCPU): it kept "
                       "computing past every per-call timeout")
            if sig == "SIGSEGV":
                msg += " (a segmentation fault: an out-of-bounds or NULL pointer access)"
        else:
            kind = ErrorKind.EXIT
            msg = (f"your code ended the process with exit status {code} (os._exit or a C "
                   "exit()); bpttcheck needs the function to return")
        raise UserCodeError(kind, msg + (f" at {line}" if line else ""), line, self._output())

    def kill(self):
        """End the worker and everything it started (see kill_tree)."""
        if self.proc.returncode is None:
            kill_tree(self.proc.pid)
        else:  # already reaped: its pid may be reused, only its group can still be ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def close(self):
        # no graceful exit to wait for: the worker has nothing to save, and a process it
        # forked must not outlive the check
        self.kill()
        with contextlib.suppress(OSError):
            self.wf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _measured_fields(t) -> dict | None:
    """The worker's measurement of a traced call (calltrace.CallTrace.summary), or None when it
    is not that shape: a reply forged by the user's code must not pass for one."""
    if not isinstance(t, dict):
        return None
    calls = t.get("calls")
    ok = (isinstance(t.get("lines"), int) and not isinstance(t.get("lines"), bool)
          and isinstance(calls, list)
          and all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str)
                  and isinstance(c[1], int) for c in calls)
          and isinstance(t.get("complex"), (str, type(None)))
          and isinstance(t.get("tampered"), bool))
    return t if ok else None
