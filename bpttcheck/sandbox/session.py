"""The checker's side of the worker: start it with limits, talk to it, and turn everything
that can go wrong in user code into a UserCodeError that names the cause and the line."""
from __future__ import annotations

import contextlib
import math
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
from bpttcheck.sandbox import osbox, proctree
from bpttcheck.sandbox.budget import GRACE, MARGIN, CallBudget, duration, suggested_limit
from bpttcheck.sandbox.limits import Limits, libc, nproc, preexec, worker_env
from bpttcheck.sandbox.proctree import kill_tree
from bpttcheck.sandbox.refusals import CHANNEL_LOST_EXIT, RefusalChannel
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
         "trace": "one call of your code, its lines recorded",
         "layer_trace": "one call of your code, its lines recorded",
         "line_values": "one call of your code, with rewrites of one line tried",
         "layer_line_values": "one call of your code, with rewrites of one line tried",
         "layer_writes": "one call of your code, watched for writes into its arguments"}

_BATCH = {"losses": "finite differences of your loss",
          "layer_project": "finite differences of your forward"}

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
    "layer_trace": {"records": _LIST, "truncated": (int,)},
    "line_values": {"values": _LIST},
    "layer_line_values": {"values": _LIST},
    "layer_writes": {"writes": _LIST},
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


def _records(hdr: dict, arrs: dict) -> tuple[list[tuple[str, int, str, int | None]], list, bool]:
    """A traced call's records (file, line, name, step) and values; a record that is not
    what the tracer sends is dropped, never trusted."""
    recs, values = [], []
    for i, r in enumerate(hdr["records"]):
        ok = (isinstance(r, list) and len(r) == 4 and isinstance(r[0], str)
              and isinstance(r[1], int) and isinstance(r[2], str)
              and (r[3] is None or isinstance(r[3], int)) and f"R{i}" in arrs)
        if ok:
            recs.append((r[0], r[1], r[2], r[3]))
            values.append(arrs[f"R{i}"])
    return recs, values, bool(hdr["truncated"])

def _values(hdr: dict, arrs: dict, statements: list[str]) -> dict[int, object]:
    """A line_values reply's arrays by statement; what is not an index the checker sent,
    with its array, is dropped, never trusted."""
    return {i: arrs[f"V{i}"] for i in hdr["values"]
            if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(statements)
            and f"V{i}" in arrs}


_CHANNEL_CLOSED = (
    "your code closed or replaced a file descriptor bpttcheck uses (the worker's channel for "
    "refused operations), so nothing it did after that can be trusted. Do not close file "
    "descriptors your code did not open (os.closerange, os.dup2 over low numbers).")


def _is_progress(got, rid: str) -> bool:
    """A progress message of request ``rid``: {"id": rid, "progress": n}, sent by the worker
    after each call of a batch (and nothing else: a reply has "ok")."""
    if not isinstance(got, tuple) or not isinstance(got[0], dict):
        return False
    hdr = got[0]
    n = hdr.get("progress")
    return ("ok" not in hdr and hdr.get("id") == rid and isinstance(n, int)
            and not isinstance(n, bool))


_SETPIPE_SZ = 1031  # fcntl's F_SETPIPE_SZ (Linux)


def _widen(fd: int) -> None:
    """Let a pipe hold a whole request or reply (a Karpathy-size call's parameters are about
    200 KB, the default pipe 64 KB): the writer goes on without waiting for the reader to be
    scheduled three times. Where the system refuses, the pipe stays as it was."""
    try:
        import fcntl
        fcntl.fcntl(fd, _SETPIPE_SZ, 1 << 20)
    except (ImportError, OSError):
        pass


_PRESTARTED: dict = {}  # _key(path, limits) -> a WorkerSession started before it was asked for


def _key(path: str, limits: Limits) -> tuple[str, str]:
    return os.path.abspath(path), repr(limits)


def prestarted(path: str, limits: Limits) -> WorkerSession | None:
    """The early worker for ``path`` with ``limits``, if one is waiting (it stays waiting)."""
    return _PRESTARTED.get(_key(path, limits))


def any_prestarted() -> bool:
    """Whether any early worker is still waiting to be handed out."""
    return bool(_PRESTARTED)


def prestart(path: str, limits: Limits, load_early: bool = False) -> None:
    """Start the worker for ``path`` now; session() hands it out if asked with equal limits.
    A worker that is never asked for is killed at exit. ``load_early``: the worker imports
    the file as soon as it is up (WorkerSession), for `bpttcheck run`; not for a spare
    worker that is staged again before it is used (`watch`)."""
    import atexit
    if _key(path, limits) in _PRESTARTED:
        return
    try:
        w = WorkerSession(path, limits, load_early=load_early)
    except OSError:
        return  # the ordinary start will say what is wrong
    _PRESTARTED[_key(path, limits)] = w
    atexit.register(w.close)

def session(path: str, limits: Limits) -> WorkerSession:
    w = _PRESTARTED.pop(_key(path, limits), None)
    return w if w is not None else WorkerSession(path, limits)

class WorkerSession:
    def __init__(self, path: str, limits: Limits | None = None, load_early: bool = False):
        """``load_early``: the worker imports the staged file (a .py or notebook) as soon as
        it has started, under the guard and within the load timeout as the load request
        would, and answers that request with the result; meanwhile this process is still
        importing its own modules (the early worker of `bpttcheck run`: about a tenth of a
        passing check's wall time). Only in the OS sandbox: with the fallback, nothing of the
        user's runs before the checks that may refuse it (--require-sandbox) are done."""
        self.path = os.path.abspath(path)
        self.limits = limits or Limits()
        # its real path: the OS sandbox shows the folder at that path, and the worker's
        # paths (workdir, traceback file) must name the same files inside and out
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="bpttcheck-"))
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
        for fd in (w1, w2):
            _widen(fd)
        r3, w3 = os.pipe()  # the guard's refusals, as they happen (refusals.py)
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        argv = [sys.executable, "-I", "-c", BOOT, pkg_parent, _plugin_path(), str(r1), str(w2),
                self.workdir, origin, self.tb_path, str(w3)]
        env = self._env(home)
        fds: tuple[int, ...] = (r1, w2, w3)  # closed here once the worker has them
        self.sandbox = osbox.current()
        if load_early and self.sandbox.strong and self.user_path.endswith((".py", ".ipynb")):
            argv += [self.user_path, repr(self.limits.load_timeout)]
        self._info: int | None = None  # bwrap says here that the sandbox is up
        self._up: bool | None = None  # what it said (read once the worker has ended)
        if self.sandbox.strong:
            # the worker in its own namespaces, seeing only the Python installation, bpttcheck
            # (without check/ and oracle/) and this session's folder (osbox.py)
            self._info, info_w = os.pipe()
            argv = osbox.worker_command(
                self.sandbox, argv, writable=self.tmp, chdir=self.workdir,
                plugin_path=_plugin_path().split(os.pathsep) if _plugin_path() else (),
                preload=env.pop("LD_PRELOAD", None), hide=self._hidden(origin), info_fd=info_w)
            fds += (info_w,)
        try:
            # its own session and process group (killed as a whole), limits, no network:
            # preexec (bwrap, when it runs, makes the namespaces itself)
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=fds, cwd=self.workdir, env=env, start_new_session=True,
                # preexec only makes system calls (setrlimit, and prctl/unshare through a libc
                # resolved before the fork): nothing a thread of ours could hold a lock on
                preexec_fn=preexec(self.limits, nproc(os.getuid()), libc(),
                                   namespaces=not self.sandbox.strong))
        finally:
            for fd in fds:
                os.close(fd)
        self.refusals = RefusalChannel(r3, self._stop_at_refusal)
        self.born = proctree.started(self.proc.pid)  # escapees are born after it (close())
        self.wf = os.fdopen(w1, "wb")
        self.rf = os.fdopen(r2, "rb")
        self.out = _Drain(self.proc.stdout, self.limits.output_cap)
        self.err = _Drain(self.proc.stderr, self.limits.output_cap)
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.evaluations = 0
        self.call_seconds = float("inf")  # the fastest round trip of one call seen so far

    def _hidden(self, origin: str) -> list[str]:
        """Folders the sandboxed worker must not see even where a folder bound for it (a
        PYTHONPATH entry) holds them: the submission's own and the one above it (the class
        folder), the folder bpttcheck runs from, and the real HOME."""
        return [origin, os.path.dirname(origin), os.path.dirname(self.path),
                os.path.dirname(os.path.dirname(self.path)), self.limits.run_from or origin,
                os.getcwd(), os.path.expanduser("~"), os.environ.get("HOME") or origin]

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

    def visible(self, path: str) -> str:
        """A path of ``path`` the worker can read: itself, or in the sandbox, where only this
        session's folder shows, a copy in it (a C library built in the compile cache)."""
        real = os.path.realpath(path)
        if not self.sandbox.strong or real.startswith(self.tmp + os.sep):
            return path
        dst = os.path.join(self.tmp, "lib", os.path.basename(path))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(path, dst)
        return dst

    def _worker_exit(self, code: int | None) -> int | None:
        """The worker's exit status, once it has ended: bwrap's status turned back into the
        worker's (osbox.exit_status); SandboxError if bwrap never set the sandbox up."""
        if self._info is None:
            return code
        if self._up is None:
            try:
                os.set_blocking(self._info, False)
                self._up = bool(os.read(self._info, 4096))
            except OSError:  # nothing written, and still open: bwrap is not done
                self._up = True
        if not self._up:
            lines = [ln for ln in self.err.text().splitlines() if ln.startswith("bwrap:")]
            raise osbox.SandboxError(
                "bwrap could not set up the OS sandbox for the worker"
                + (f" ({lines[0]})" if lines else f" (exit status {code})")
                + f"; run with {osbox.SWITCH_VAR}=weak to check without it, and please "
                  "report this")
        return osbox.exit_status(code)

    def _read(self):
        while True:
            try:
                from bpttcheck.sandbox import protocol
                self.replies.put(protocol.receive(self.rf))
            except Exception as e:  # noqa: BLE001 - EOF or garbage: the worker is gone
                self.replies.put(e)
                return

    # ------------------------------------------------------------------ requests

    @property
    def budget(self) -> CallBudget:
        """The time account of this check (sandbox/budget.py), made on first use."""
        b = self.__dict__.get("_budget")
        if b is None:
            b = self.__dict__["_budget"] = CallBudget(self.limits.call_timeout)
        return b

    def request(self, header: dict, arrays: dict | None, timeout: float, calls: int = 0):
        """Send one request and wait for its reply. ``timeout`` is the limit of one call of
        the user's code (or of the import); a request of ``calls`` calls gets each of them
        within it (the worker reports each call it finishes) and all of them within what is
        left of the check's budget."""
        # a fresh id a request: a reply that does not carry it answers something else (a
        # message user code wrote to the reply pipe itself)
        from bpttcheck.sandbox import protocol
        rid = secrets.token_hex(8)
        header = dict(header, timeout=timeout, id=rid)
        try:
            protocol.send(self.wf, header, arrays)
        except (BrokenPipeError, OSError):
            self._died()
        got = self._await(header["op"], rid, timeout, calls)
        if isinstance(got, protocol.ProtocolError):
            self._forged(header["op"], str(got))
        if isinstance(got, Exception):
            self._died()
        hdr, arrs = got
        problem = reply_problem(header["op"], rid, hdr, arrs)
        if problem:
            self._forged(header["op"], problem)
        self.evaluations = hdr.get("evaluations", self.evaluations)
        refused = self._refused(alive=True)
        if refused:
            raise refused
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

    def _stop_at_refusal(self):
        """The guard refused something of the user's: the check is over, stop the worker now
        (from the channel's thread; the request waiting for a reply then reports it)."""
        with contextlib.suppress(OSError):
            self.proc.kill()

    def _refused(self, alive: bool, garbage: bool = True) -> UserCodeError | None:
        """What the refusal channel says, or None: a refusal the guard reported (forbidden,
        whatever the replies say); bytes on it that are no record (protocol); the channel
        closed while the worker runs (``alive``): the user's code closed or replaced it."""
        ch = self.refusals
        ch.drain()
        if ch.records:
            line, message = ch.records[0]
            more = len(ch.records) - 1
            return UserCodeError(ErrorKind.FORBIDDEN, message + (
                f" (and {more} other blocked attempt{'s' if more > 1 else ''})" if more else ""),
                line, self._output())
        if garbage and ch.garbage:
            return UserCodeError(
                ErrorKind.PROTOCOL, f"something in the worker process wrote {ch.garbage} "
                "bytes to bpttcheck's channel for refused operations (does your code write to "
                "a file descriptor it did not open?); no reply can be trusted after that.",
                None, self._output())
        if alive and ch.eof and self.proc.poll() is None:
            return UserCodeError(ErrorKind.FORBIDDEN, _CHANNEL_CLOSED, None, self._output())
        return None

    def _forged(self, op: str, problem: str):
        """A reply the worker never sends: the pipe can no longer be trusted, the check ends."""
        refused = self._refused(alive=False, garbage=False)
        self.kill()
        if refused:
            raise refused
        raise UserCodeError(
            ErrorKind.PROTOCOL, f"the worker's reply to {_WHAT.get(op, op)} is not one "
            f"bpttcheck's worker sends ({problem}): something in the worker process wrote to "
            f"bpttcheck's reply pipe (does your code write to a file descriptor it did not "
            f"open?), or the worker broke. No reply after it can be trusted.",
            None, self._output())

    def load(self, style: str | None, options: dict, path: str | None = None) -> dict:
        hdr, _ = self.request({"op": "load", "path": self.visible(path or self.user_path),
                               "style": style,
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

    def layer_writes(self, unit: str, args: list, ups: list, keys: list[str]) -> list:
        """Layer style: the line of the user's code that first writes into each array of
        ``keys`` ("role:label", as the layer_run reply's ``modified`` names them):
        [[key, file, line, source, function, local name or None, step or None], ...]."""
        arrays = {f"A{i}": a for i, a in enumerate(args)}
        arrays.update({f"U{i}": a for i, a in enumerate(ups)})
        hdr, _ = self.request({"op": "layer_writes", "unit": unit, "keys": keys}, arrays,
                              self.limits.call_timeout * 4)  # traced: slower than a call
        return hdr["writes"]

    def _one_call(self, header: dict, arrays: dict):
        """A request for one call of the user's code, timed: these round trips are what one
        call takes, the yardstick of the check's budget."""
        t = time.perf_counter()
        got = self.request(header, arrays, self.limits.call_timeout, calls=1)
        self.budget.measured(time.perf_counter() - t)
        return got

    def _await(self, op: str, rid: str, timeout: float, calls: int):
        """The reply to request ``rid``. Each of its ``calls`` calls must end within
        ``timeout`` of the one before (the worker reports each call it finishes: a progress
        message), and all of them within what is left of the budget; a request that is no
        call (the import) gets ``timeout``. Past either, the worker is killed (_timed_out)."""
        start = last = time.perf_counter()
        # the import is the first thing the worker runs under its guard, and an early worker
        # may have begun it (and dumped a hang's stack) before this request was sent
        done, mark = 0, (0 if op == "load" else self._dump_size())
        budget_end = start + self.budget.remaining(calls) + GRACE if calls else math.inf
        while True:
            now = time.perf_counter()
            end = min(last + timeout + GRACE, budget_end)
            try:
                got = self.replies.get(timeout=max(end - now, 0.0))
            except queue.Empty:
                self.budget.spend(time.perf_counter() - start, done)
                self._timed_out(op, timeout, calls, done, mark,
                                by_budget=budget_end < last + timeout + GRACE)
            if _is_progress(got, rid):
                done, last, mark = done + 1, time.perf_counter(), self._dump_size()
                continue
            ok = isinstance(got, tuple) and isinstance(got[0], dict) and got[0].get("ok") is True
            self.budget.spend(time.perf_counter() - start, calls if ok else done)
            return got

    def _dump_size(self) -> int:
        """How far the worker's traceback dumps (faulthandler) reach now: a timeout names the
        line of the dump written after it, not one of an earlier slow call."""
        try:
            return os.path.getsize(self.tb_path)
        except OSError:
            return 0

    def layer_project(self, unit: str, args: list, ups: list, dirs: list[list], offsets):
        arrays = {f"A{i}": a for i, a in enumerate(args)}
        arrays.update({f"U{i}": a for i, a in enumerate(ups)})
        for j, d in enumerate(dirs):
            arrays.update({f"D{j}_{i}": a for i, a in enumerate(d)})
        _, arrs = self.request({"op": "layer_project", "unit": unit, "ndirs": len(dirs),
                                "offsets": [list(o) for o in offsets]}, arrays,
                               self.limits.call_timeout, calls=len(offsets))
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
        return _records(hdr, arrs)

    def line_values(self, case, layout, where: tuple, statements: list[str]) -> dict[int, object]:
        """One call on ``case`` that stops at ``where`` = (file, line, step, name) and runs
        each statement in place of that line (tracer.LineProbe): the value ``name`` then
        holds, by the statement's index (a statement that did not run is absent). What is not
        an index the checker sent, with its array, is dropped, never trusted."""
        hdr, arrs = self.request({"op": "line_values", "where": list(where),
                                  "statements": statements, **self._case_header(case, layout)},
                                 self._case_arrays(case), self.limits.call_timeout * 4)
        return _values(hdr, arrs, statements)

    def layer_line_values(self, unit: str, args: list, ups: list, where: tuple,
                          statements: list[str]) -> dict[int, object]:
        """Layer style: ``line_values`` on one unit's forward and backward."""
        arrays = {f"A{i}": a for i, a in enumerate(args)}
        arrays.update({f"U{i}": a for i, a in enumerate(ups)})
        hdr, arrs = self.request({"op": "layer_line_values", "unit": unit,
                                  "where": list(where), "statements": statements}, arrays,
                                 self.limits.call_timeout * 4)
        return _values(hdr, arrs, statements)

    def layer_trace(self, unit: str, args: list, ups: list):
        """Layer style: one unit's forward and backward with the user's lines recorded."""
        arrays = {f"A{i}": a for i, a in enumerate(args)}
        arrays.update({f"U{i}": a for i, a in enumerate(ups)})
        hdr, arrs = self.request({"op": "layer_trace", "unit": unit}, arrays,
                                 self.limits.call_timeout * 4)
        return _records(hdr, arrs)



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
        # each call within the per-call limit, all of them within the check's budget
        _, arrs = self.request({"op": "losses", "offsets": [list(o) for o in offsets],
                                "entries": [list(e) for e in entries],
                                **self._case_header(case, layout)}, arrays,
                               self.limits.call_timeout, calls=len(offsets) + len(entries))
        return arrs["losses"]

    # ------------------------------------------------------------------ failures

    def _output(self, extra: str = "") -> str:
        self.proc.poll()
        parts = [extra.rstrip()] if extra.strip() else []
        out = self.out.text().strip()
        if out:
            parts.append("your code printed:\n" + out[-4000:])
        return "\n".join(parts)

    def _user_line(self, dump_path: str, start: int = 0) -> str | None:
        """The innermost frame in the user's files of a faulthandler dump (the first dump
        written from byte ``start`` on)."""
        try:
            with open(dump_path, "rb") as dump:
                dump.seek(start)
                text = dump.read().decode("utf-8", "replace")
        except OSError:
            return None
        for m in re.finditer(r'File "([^"]+)", line (\d+)', text):
            f, n = m.group(1), int(m.group(2))
            if os.path.realpath(f).startswith(os.path.realpath(self.workdir) + os.sep):
                return source_line(f, n)
        return None

    def _timed_out(self, op: str, timeout: float, calls: int = 0, done: int = 0,
                   mark: int = 0, by_budget: bool = False):
        """End the worker and say what ran out: the import's limit, one call's limit (alone
        or within a batch) or the check's budget; with what was measured and one fix."""
        refused = self._refused(alive=True)
        if by_budget and not refused:  # mid-call: the worker's own clock has not dumped its stack yet
            self._ask_for_stack(mark)
        self.kill()
        if refused:  # a refusal explains the hang better (the worker may wait on it)
            raise refused
        line = self._user_line(self.tb_path, mark)
        running = f"; it was running {line}" if line else ""
        if op in ("load", "inspect"):
            raise UserCodeError(
                ErrorKind.TIMEOUT, f"importing your module did not finish within {timeout:g} s"
                f"{running}. If that is a training loop, put it under `if __name__ == "
                f"\"__main__\":` (bpttcheck skips top-level `while` loops and `for` loops that "
                f"call your loss function, but not other long-running code); if the import is "
                f"just slow, raise the limit: `--timeout {suggested_limit(timeout)}` or "
                f"`[limits] timeout = {suggested_limit(timeout)}` in the spec.",
                line, self._output())
        b = self.budget
        measured = b.describe()
        fix_to = suggested_limit(max(timeout, b.call_seconds or 0.0))
        fix = (f"`--timeout {fix_to}` (or `[limits] timeout = {fix_to}` in the spec)")
        if by_budget:
            t = b.call_seconds or 0.0
            msg = (f"the calls of your code ran past the check's time budget: {measured}; "
                   f"the limit is {timeout:g} s per call, and the check allows its calls "
                   f"{MARGIN:g}x their measured time plus one limit, "
                   f"{duration(b.allowance(calls - done))}. After {b.made} calls it had spent "
                   f"{duration(b.spent)} ({duration(b.spent / max(b.made, 1))} a call, against "
                   f"{duration(t)} measured){running}. Your calls get slower as the check goes "
                   f"on: is something kept between calls that grows (a list, a history)? If "
                   f"your code is just that slow, raise the limit per call: {fix}.")
        else:
            batch = calls > 1
            what = (f"call {done + 1} of {calls} in a batch of calls of your code "
                    f"({_BATCH.get(op, 'finite differences')})" if batch
                    else "one call of your code")
            msg = (f"{what} did not finish within {timeout:g} s"
                   + (f" ({measured}; the limit is {timeout:g} s per call)" if measured
                      else ", the limit per call")
                   + f"{running}. If that is an endless loop, look for a loop whose condition "
                   f"never changes; if your code is just slow, raise the limit per call: "
                   f"{fix}.")
        raise UserCodeError(ErrorKind.TIMEOUT, msg, line, self._output())

    def _ask_for_stack(self, mark: int, wait: float = 1.0) -> None:
        """SIGUSR1 to the worker (it dumps its stack on it) and a short wait for the dump;
        nothing if the signal cannot be sent. Under bwrap the worker is in a session of its own
        below bwrap (which SIGUSR1 would end): it is found among bwrap's descendants."""
        try:
            if self.sandbox.strong:
                for pid in proctree.descendants(self.proc.pid):
                    if _is_worker(pid):
                        os.kill(pid, signal.SIGUSR1)
            else:
                os.killpg(self.proc.pid, signal.SIGUSR1)
        except (ProcessLookupError, PermissionError, OSError):
            return
        end = time.perf_counter() + wait
        while time.perf_counter() < end and self._dump_size() <= mark:
            time.sleep(0.02)
        time.sleep(0.05)  # the dump is written in one go; let it finish

    def _died(self):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        code = self._worker_exit(code)
        refused = self._refused(alive=False)
        if refused:
            raise refused
        if code == CHANNEL_LOST_EXIT:
            raise UserCodeError(ErrorKind.FORBIDDEN, _CHANNEL_CLOSED, None, self._output())
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
        # a process that left the worker's tree (clone with CLONE_PARENT) is ours: end it too
        proctree.kill_strays(self.born)
        proctree.ended(self.proc.pid)
        self.refusals.stop()
        with contextlib.suppress(OSError):
            self.wf.close()
        if self._info is not None:
            with contextlib.suppress(OSError):
                os.close(self._info)
            self._info = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # a refusal the checker swallowed on the way (a diagnosis probe that may fail) still
        # ends the check as forbidden, and it names the cause better than a later error
        refused = None
        if exc is None or isinstance(exc, UserCodeError):
            refused = self._refused(alive=self.proc.poll() is None)
        self.close()
        if refused and not (isinstance(exc, UserCodeError) and exc.kind == refused.kind):
            raise refused from None


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` runs bpttcheck's worker (its command line names the worker module)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"bpttcheck.sandbox.worker" in f.read()
    except OSError:
        return False


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
