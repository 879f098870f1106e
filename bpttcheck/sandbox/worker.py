"""The worker process: imports the user's code, calls it on request, and sends back plain
arrays. It runs in a child process (see session.py) so that anything the user's code does —
raise, crash, hang, exit — ends here and not in the checker."""
from __future__ import annotations

import ast
import contextlib
import faulthandler
import linecache
import os
import re
import signal
import sys
import traceback
import types
from typing import Any

from bpttcheck.errors import ErrorKind, PluginError, source_line
from bpttcheck.sandbox import guard, loader

# an exercise left blank: the course templates' markers and the usual placeholders
STUB_MARK = re.compile(r"YOUR CODE HERE|START CODE HERE|=\s*None\b|^\s*pass\s*$|NotImplementedError")
# a notebook statement that fails in one of these ways is set aside (with a note), as
# Jupyter would leave a failing cell; anything else (a hang, an exit, a crash) ends the load
SET_ASIDE = {ErrorKind.EXCEPTION, ErrorKind.IMPORT, ErrorKind.NOT_IMPLEMENTED,
             ErrorKind.INTERFACE}


class UserFailure(Exception):
    def __init__(self, kind: ErrorKind, message: str, line: str | None = None, tb: str = ""):
        super().__init__(message)
        self.kind, self.message, self.line, self.tb = kind, message, line, tb


class Worker:
    def __init__(self, workdir: str, origdir: str, tb_path: str):
        self.workdir = os.path.realpath(workdir)
        self.origdir = origdir
        self.tb_file = open(tb_path, "w")
        # the checker asks for the stack with SIGUSR1 before it ends a check that ran out of
        # its budget in the middle of a call (session._timed_out): the line it was running
        with contextlib.suppress(AttributeError, ValueError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, file=self.tb_file, all_threads=False)
        self.adapter: Any = None  # the adapter instance, once a module is loaded
        self.evaluations = 0
        # (path, timeout, what importing it gave or raised): the import done before the
        # load request came (main's load_early), for that request to take
        self.early: tuple[str, float, Any] | None = None

    def load_early(self, path: str, timeout: float) -> None:
        """Import ``path`` now, as the load request will ask (the checker is still starting);
        its result, or the failure, is kept for that request."""
        try:
            got: Any = self.load_module(path, timeout)
        except Exception as e:  # noqa: BLE001 - raised again when the load request comes
            got = e
        self.early = (path, timeout, got)

    def load(self, path: str, timeout: float):
        """load_module's (module, skipped, notes), from the early import when it was this one."""
        early, self.early = self.early, None
        if early is None or early[:2] != (path, timeout):
            if early is not None:
                raise UserFailure(ErrorKind.INTERNAL, "the worker imported another file than "
                                  "the one the checker asked for")
            return self.load_module(path, timeout)
        if isinstance(early[2], Exception):
            raise early[2]
        return early[2]

    # ------------------------------------------------------------------ user frames

    def _orig(self, filename: str) -> str:
        real = os.path.realpath(filename)
        if real.startswith(self.workdir + os.sep):
            return os.path.join(self.origdir, os.path.relpath(real, self.workdir))
        return filename

    def _is_user(self, filename: str) -> bool:
        return os.path.realpath(filename).startswith(self.workdir + os.sep)

    def failure_from(self, exc: BaseException, where: str) -> UserFailure:
        from bpttcheck.adapters.base import NotImplementedByUser
        from bpttcheck.errors import InterfaceError
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if self._is_user(f.filename)]
        line = None
        if frames:
            f = frames[-1]
            line = source_line(self._orig(f.filename), f.lineno or 0, f.line or "")
        tb = "".join(
            f'  File "{self._orig(f.filename)}", line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}\n'
            for f in frames)
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (NotImplementedByUser, NotImplementedError)):
            return UserFailure(ErrorKind.NOT_IMPLEMENTED, f"{where}: {exc or 'NotImplementedError'}", line, tb)
        if isinstance(exc, InterfaceError):
            return UserFailure(ErrorKind.INTERFACE, f"{where}: {exc}", line, tb)
        if isinstance(exc, SystemExit):
            return UserFailure(ErrorKind.EXIT, f"{where} called sys.exit({exc.code!r}); bpttcheck needs the "
                               "function to return. Remove the exit or put it under "
                               "`if __name__ == \"__main__\":`", line, tb)
        if isinstance(exc, MemoryError):
            return UserFailure(ErrorKind.MEMORY, f"{where} ran out of memory (MemoryError)", line, tb)
        if isinstance(exc, SyntaxError):
            line = source_line(self._orig(exc.filename or ""), exc.lineno or 0, exc.text or "")
            py2 = _python2_file(exc.filename, exc.lineno)
            if py2:  # a module the user's code imports (their own file is read by loader.py)
                return UserFailure(ErrorKind.SYNTAX, f"{os.path.basename(exc.filename or '')}, "
                                   f"which your code imports, is Python 2 code ({py2[2]} at "
                                   f"line {py2[0]}): bpttcheck runs Python 3. Convert it with "
                                   f"2to3 (`2to3 -w {os.path.basename(exc.filename or '')}`)",
                                   line)
            return UserFailure(ErrorKind.SYNTAX, f"syntax error in {line.split(': ', 1)[0]}: "
                               f"{exc.msg}", line)
        if isinstance(exc, ImportError) and where.startswith("importing"):
            return UserFailure(ErrorKind.IMPORT, f"{where} failed: {text}", line, tb)
        if isinstance(exc, (NameError, AttributeError)):
            text += loader.python2_hint(getattr(exc, "name", None) or "")
        return UserFailure(ErrorKind.EXCEPTION, f"{where} raised {text}", line, tb)

    def stub_line(self) -> str | None:
        """Where the unfinished exercise is: in the entry function the adapter called, the
        first line of an exercise blank (`# YOUR CODE HERE`, `= None`, `pass`,
        NotImplementedError), else its `def` line. A notebook's cell has its own name."""
        fn = getattr(getattr(self.adapter, "module", None), getattr(self.adapter, "entry", ""),
                     None)
        code = getattr(fn, "__code__", None)
        if code is None or not self._is_user(code.co_filename):
            return None
        lines = linecache.getlines(code.co_filename)
        first = code.co_firstlineno
        body = range(first, min(len(lines), first + 200))
        n = next((i for i in body if STUB_MARK.search(lines[i - 1])), first)
        return source_line(self._orig(code.co_filename), n, lines[n - 1] if lines else "")

    def guarded(self, where: str, timeout: float, fn, *args):
        """Run user code; on a hang the parent kills us, and this dump names the user's line."""
        faulthandler.dump_traceback_later(max(timeout - 0.5, 0.1), exit=False, file=self.tb_file)
        try:
            return fn(*args)
        except PluginError:
            raise  # a broken plugin reached from the adapter: not the user's code
        except BaseException as e:  # noqa: BLE001 - user code may raise anything, SystemExit too
            raise self.failure_from(e, where) from None
        finally:
            faulthandler.cancel_dump_traceback_later()

    # ------------------------------------------------------------------ loading

    def load_module(self, path: str, timeout: float):
        """Import the user's file as `python FILE` would, run from the file's folder:
        ``sys.argv`` is [the file], the file's folder and the staged root are on ``sys.path``,
        and a file inside a package is imported as ``pkg.module``. A notebook runs cell by
        cell. Returns (module, statements left out, notes on what else was set aside)."""
        here = os.path.dirname(path)
        os.chdir(here)
        sys.argv = [path]
        name, import_root = loader.package_of(path, self.workdir)
        for p in reversed(list(dict.fromkeys([here, import_root, self.workdir]))):
            if p in sys.path:
                sys.path.remove(p)
            sys.path.insert(0, p)
        with open(path, "rb") as f:
            raw = f.read()
        notebook = path.endswith(".ipynb")
        try:
            if notebook:
                chunks, notes = loader.notebook_chunks(path, raw)
            else:
                chunks, notes = loader.module_chunks(path, loader.decode(path, raw)), []
        except loader.SourceError as e:
            line = source_line(self._orig(path), e.line, e.text) if e.line else None
            raise UserFailure(ErrorKind.SYNTAX, e.message, line) from None
        except SyntaxError as e:
            raise self.failure_from(e, f"importing {os.path.basename(path)}") from None
        mod = self._new_module(name, path, timeout)
        mod.__bpttcheck_source__ = "\n".join(c.source for c in chunks)  # type: ignore[attr-defined]
        skipped = [(f"{c.label}, " if notebook else "") + s for c in chunks for s in c.skipped]
        for c in chunks:
            if not notebook:
                code = compile(c.tree, path, "exec")
                self._run(f"importing {os.path.basename(path)}", timeout, code, mod, skipped)
                continue
            for stmt in c.tree.body:  # a statement that fails is set aside, as in Jupyter
                code = compile(ast.Module([stmt], []), c.filename, "exec")
                try:
                    self._run(f"{c.label} of {os.path.basename(path)}", timeout, code, mod, [])
                except UserFailure as f:
                    if f.kind not in SET_ASIDE:
                        raise
                    notes.append(f"{c.label}, line {stmt.lineno} raised "
                                 f"{f.message.split(' raised ', 1)[-1]}; not run")
        notes.sort(key=lambda n: int(n.split(',')[0].split(':')[0].split()[-1]))  # by cell
        return mod, skipped, notes

    def _new_module(self, name: str, path: str, timeout: float) -> types.ModuleType:
        """An empty module for the user's file, registered in sys.modules; a module inside a
        package gets its parent packages imported first (their __init__.py run, as Python
        would) so its relative imports work."""
        parts = name.split(".")  # alice..py is a file, not a package path
        package = name.rpartition(".")[0] if all(p.isidentifier() for p in parts) else ""
        if package:
            import importlib
            self.guarded(f"importing the package {package}", timeout,
                         importlib.import_module, package)
        elif not name.isidentifier() or name in sys.modules:  # model.py beside copy.py, ...
            name = f"_bpttcheck_user_{abs(hash(name))}"
        mod = types.ModuleType(name)
        mod.__file__ = path
        mod.__package__ = package
        sys.modules[name] = mod
        if package:
            setattr(sys.modules[package], name.rpartition(".")[2], mod)
        return mod

    def _run(self, where: str, timeout: float, code, mod, skipped: list[str]) -> None:
        try:
            self.guarded(where, timeout, exec, code, mod.__dict__)
        except UserFailure as f:
            if skipped and "NameError" in f.message:
                f.message += (f". bpttcheck did not run your top-level training loop "
                              f"({skipped[0]}); code after it that uses its variables fails. "
                              "Put that code under `if __name__ == \"__main__\":`")
            raise


def _python2_file(path: str | None, lineno: int | None):
    try:
        with open(path or "", "rb") as f:
            return loader.python2_line(f.read().decode("utf-8", "replace"), lineno)
    except OSError:
        return None


def _load_notes(notes: list[str]) -> list[dict]:
    if not notes:
        return []
    return [{"id": "load.notebook", "title": "Notebook lines and cells set aside",
             "evidence": "; ".join(notes[:12]) + (f"; and {len(notes) - 12} more" if
                                                   len(notes) > 12 else "")}]


def capabilities(adapter) -> dict:
    """What the checker may assume of the adapter's style (hookspecs.py), as plain data."""
    return {"kind": adapter.kind, "language": adapter.language,
            "fixed_sizes": adapter.fixed_sizes, "poisoned_buffers": bool(adapter.poisoned_buffers),
            "entry": adapter.entry}


def _dims_dict(d):
    return None if d is None else {"T": d.T, "X": d.X, "H": d.H, "Y": d.Y}


def serve(w: Worker, rf, wf) -> None:
    import numpy as np

    from bpttcheck import inspection
    from bpttcheck.archmeta import Dims
    from bpttcheck.layout import Layout
    from bpttcheck.sandbox import protocol

    while True:
        try:
            hdr, arrs = protocol.receive(rf)
        except EOFError:
            return
        op, timeout = hdr["op"], float(hdr.get("timeout", 10.0))
        out_arrays: dict = {}
        progress = _progress(wf, hdr.get("id"))
        try:
            if op == "load":
                if hdr["path"].endswith(".so"):
                    mod, skipped, notes = None, [], []  # a C library: the adapter loads it
                else:
                    mod, skipped, notes = w.load(hdr["path"], timeout)
                options = {}
                declared = getattr(mod, "BPTTCHECK", None)
                if isinstance(declared, dict):
                    options.update(declared)
                options.update(hdr.get("options") or {})
                cls = _choose_adapter(w, mod, hdr["path"], hdr.get("style"), timeout)
                with _plugin_blamed(cls):
                    w.adapter = w.guarded("reading the module", timeout, cls, mod, hdr["path"],
                                          options)
                    w.adapter.guard = w.guarded  # adapters that call several functions guard each
                    desc = w.guarded("describing the module", timeout, w.adapter.describe)
                reply = {"ok": True, "adapter": cls.name, "arch": desc["arch"],
                         "capabilities": capabilities(w.adapter),
                         "dims": _dims_dict(desc.get("dims")),
                         "layouts": [lay.to_dict() for lay in desc["layouts"]],
                         "skipped": skipped, "notes": _load_notes(notes) + w.adapter.notes,
                         "extra": desc.get("extra", {}),
                         "model": _model_facts(desc.get("model"), options),
                         "options": {k: v for k, v in options.items()
                                     if isinstance(v, (str, int, float, bool))}}
            elif op == "inspect":  # `bpttcheck init`: what the module defines, nothing run
                mod, skipped, _ = w.load_module(hdr["path"], timeout)
                found = w.guarded("inspecting your module", timeout, inspection.inspect_module,
                                  mod)
                reply = {"ok": True, "found": found, "skipped": skipped}
            elif op in ("call", "losses"):
                layout = Layout.from_dict(hdr["layout"])
                P = protocol.unpack_params("P", arrs)
                xs = [int(v) for v in arrs["xs"]]
                ys = [int(v) for v in arrs["ys"]]
                state = tuple(arrs[f"state{i}"] for i in range(hdr["nstate"]))
                d = hdr["dims"]
                w.adapter.prepare(Dims(**d))
                if op == "call":
                    w.evaluations += 1
                    measure = _call_measure(w) if hdr.get("measure") else None
                    call = measure.run if measure else _direct
                    loss, grads, last, changed = w.guarded(
                        "your gradient function", timeout, call, w.adapter.call, P, xs, ys,
                        state, layout, True)
                    for k, v in grads.items():
                        out_arrays[f"G.{k}"] = np.asarray(v, dtype=np.float64)
                    for i, s in enumerate(last):
                        if s is not None:
                            out_arrays[f"S{i}"] = np.asarray(s, dtype=np.float64)
                    reply = {"ok": True, "loss": loss, "modified": changed,
                             "dtype": w.adapter.grad_dtype}
                    if measure:
                        reply["measured"] = measure.summary()
                else:
                    dirs = {}
                    losses = []
                    for j, s in hdr["offsets"]:
                        if j not in dirs:
                            dirs[j] = protocol.unpack_params(f"D{j}", arrs)
                        Q = {k: P[k] + s * dirs[j][k] for k in P}
                        w.evaluations += 1
                        loss, *_ = w.guarded("your loss function", timeout, w.adapter.call, Q, xs,
                                             ys, state, layout, False)
                        losses.append(loss)
                        progress()
                    for g, i, s in hdr.get("entries", []):  # one entry of one group moved by s
                        Q = dict(P)
                        Q[g] = P[g].copy()
                        Q[g].flat[i] += s
                        w.evaluations += 1
                        loss, *_ = w.guarded("your loss function", timeout, w.adapter.call, Q, xs,
                                             ys, state, layout, False)
                        losses.append(loss)
                        progress()
                    out_arrays["losses"] = np.asarray(losses, dtype=np.float64)
                    reply = {"ok": True}
            elif op in ("layer_run", "layer_project"):
                reply, out_arrays = _layer_op(w, op, hdr, arrs, timeout, progress)
            elif op == "trace":
                reply, out_arrays = _trace_op(w, hdr, arrs, timeout)
            elif op == "layer_trace":
                reply, out_arrays = _layer_trace_op(w, hdr, arrs, timeout)
            elif op == "line_values":
                reply, out_arrays = _line_values_op(w, hdr, arrs, timeout)
            elif op == "layer_line_values":
                reply, out_arrays = _layer_line_values_op(w, hdr, arrs, timeout)
            elif op == "layer_writes":
                reply, out_arrays = _layer_writes_op(w, hdr, arrs, timeout)
            else:
                reply = {"ok": False, "kind": ErrorKind.INTERNAL, "message": f"unknown op {op}"}
        except UserFailure as f:
            if f.kind == ErrorKind.NOT_IMPLEMENTED and not f.line:
                f.line = w.stub_line()
            mismatch = getattr(w.adapter, "arch_mismatch", None)
            if mismatch and f.kind == ErrorKind.EXCEPTION and op != "load":
                f.message += (f". Note: the arch was declared as {mismatch[0]!r}, but your "
                              f"parameter names look like {mismatch[1]!r}: is the declared arch "
                              f"(--arch or the spec's assignment.arch) right?")
            reply = {"ok": False, "kind": f.kind, "message": f.message, "line": f.line,
                     "traceback": f.tb}
        except PluginError as e:  # an installed plugin is broken: bpttcheck's side, not the user's
            reply = {"ok": False, "kind": ErrorKind.PLUGIN, "message": e.message,
                     "plugin": [e.group, e.name, e.value, e.problem]}
        reply["evaluations"] = w.evaluations
        reply["blocked"] = guard.attempts()
        reply["id"] = hdr.get("id")  # which request this answers (session.py checks it)
        # a 250 MB exception message is kept as its first MiB and a count of the rest
        protocol.send(wf, protocol.cap_strings(reply), out_arrays)


def _trace_op(w: Worker, hdr: dict, arrs: dict, timeout: float):
    """One call of the user's gradient function with its lines recorded (tracer.py): the
    records as (file, line, name, step) and their values as arrays R0, R1, ..."""
    import numpy as np

    from bpttcheck.archmeta import Dims
    from bpttcheck.layout import Layout
    from bpttcheck.sandbox import protocol
    from bpttcheck.sandbox.tracer import run_traced

    layout = Layout.from_dict(hdr["layout"])
    P = protocol.unpack_params("P", arrs)
    xs, ys = [int(v) for v in arrs["xs"]], [int(v) for v in arrs["ys"]]
    state = tuple(arrs[f"state{i}"] for i in range(hdr["nstate"]))
    w.adapter.prepare(Dims(**hdr["dims"]))
    w.evaluations += 1
    _, rec = w.guarded("your gradient function", timeout, run_traced, w.adapter.call,
                       w._is_user, w._orig, P, xs, ys, state, layout, True)
    out = {f"R{i}": np.asarray(r.value, dtype=np.float64) for i, r in enumerate(rec.records)}
    reply = {"ok": True, "truncated": int(rec.truncated),
             "records": [[r.file, r.line, r.name, r.step] for r in rec.records]}
    return reply, out


def _line_values_op(w: Worker, hdr: dict, arrs: dict, timeout: float):
    """One call of the user's gradient function that stops once at a line and runs rewrites
    of it in its place (tracer.LineProbe): the value each gives the line's variable, as
    arrays V<i> for the rewrites that ran."""

    from bpttcheck.archmeta import Dims
    from bpttcheck.layout import Layout
    from bpttcheck.sandbox import protocol
    from bpttcheck.sandbox.tracer import Where, run_probed

    layout = Layout.from_dict(hdr["layout"])
    P = protocol.unpack_params("P", arrs)
    xs, ys = [int(v) for v in arrs["xs"]], [int(v) for v in arrs["ys"]]
    state = tuple(arrs[f"state{i}"] for i in range(hdr["nstate"]))
    where = Where(*hdr["where"])
    w.adapter.prepare(Dims(**hdr["dims"]))
    w.evaluations += 1
    _, values = w.guarded("your gradient function", timeout, run_probed, w.adapter.call,
                          w._is_user, w._orig, where, list(hdr["statements"]), P, xs, ys,
                          state, layout, True)
    return _values_reply(values)


def _layer_line_values_op(w: Worker, hdr: dict, arrs: dict, timeout: float):
    """Layer style: one unit's forward and backward, stopping once at a line to run
    rewrites of it in its place."""
    from bpttcheck.layer_api import BY_NAME
    from bpttcheck.sandbox.tracer import Where, run_probed

    u = BY_NAME[hdr["unit"]]
    args = [arrs[f"A{i}"] for i in range(len(u.inputs))]
    ups = [arrs[f"U{i}"] for i in range(len(u.outputs))]
    w.adapter.timeout = timeout
    w.evaluations += 1
    _, values = run_probed(w.adapter.run_unit, w._is_user, w._orig, Where(*hdr["where"]),
                           list(hdr["statements"]), u, args, ups)
    return _values_reply(values)


def _layer_writes_op(w: Worker, hdr: dict, arrs: dict, timeout: float):
    """Layer style: one unit's forward and backward again, with the arrays it modified
    watched, for the line that writes into each (sandbox/writes.py)."""
    from bpttcheck.layer_api import BY_NAME
    from bpttcheck.sandbox.writes import find_writes

    u = BY_NAME[hdr["unit"]]
    args = [arrs[f"A{i}"] for i in range(len(u.inputs))]
    ups = [arrs[f"U{i}"] for i in range(len(u.outputs))]
    if not _takes_spy(w.adapter.run_unit):  # a plugin's unit adapter: no lines, no error
        return {"ok": True, "writes": []}, {}
    w.adapter.timeout = timeout
    w.evaluations += 1
    found = find_writes(w.adapter.run_unit, w._is_user, w._orig,
                        {k for k in hdr["keys"] if isinstance(k, str)}, u, args, ups)
    return {"ok": True, "writes": [[x.key, x.file, x.line, x.text, x.function, x.name, x.step]
                                   for x in found]}, {}


def _takes_spy(run_unit) -> bool:
    import inspect
    try:
        return "spy" in inspect.signature(run_unit).parameters
    except (TypeError, ValueError):
        return False


def _values_reply(values: list):
    import numpy as np
    out = {f"V{i}": np.asarray(v, dtype=np.float64) for i, v in enumerate(values)
           if v is not None}
    return {"ok": True, "values": [i for i, v in enumerate(values) if v is not None]}, out


def _layer_trace_op(w: Worker, hdr: dict, arrs: dict, timeout: float):
    """Layer style: one unit's forward and backward with the user's lines recorded."""
    import numpy as np

    from bpttcheck.layer_api import BY_NAME
    from bpttcheck.sandbox.tracer import run_traced

    u = BY_NAME[hdr["unit"]]
    args = [arrs[f"A{i}"] for i in range(len(u.inputs))]
    ups = [arrs[f"U{i}"] for i in range(len(u.outputs))]
    w.adapter.timeout = timeout
    w.evaluations += 1
    _, rec = run_traced(w.adapter.run_unit, w._is_user, w._orig, u, args, ups)
    out = {f"R{i}": np.asarray(r.value, dtype=np.float64) for i, r in enumerate(rec.records)}
    return {"ok": True, "truncated": int(rec.truncated),
            "records": [[r.file, r.line, r.name, r.step] for r in rec.records]}, out


def _direct(fn, *args):
    return fn(*args)


def _call_measure(w: Worker):
    """A measurement of one call (calltrace.py: lines, calls, complex arrays) for the "call"
    request's flag "measure" (the spec's forbid_numerical_gradients, check/numgrad.py)."""
    from bpttcheck.sandbox.calltrace import CallTrace
    return CallTrace(w._is_user, lambda f: os.path.basename(w._orig(f)))


def _model_facts(found: dict | None, options: dict) -> dict:
    """What the adapter found out about the model (parameters it lacks, a fixed zero initial
    state, output size = vocabulary), with what BPTTCHECK or the spec declares on top:
    {"absent": [canonical names], "state": "zeros", "same_xy": bool}. Plain data."""
    facts = dict(found or {})
    if isinstance(options.get("absent"), (list, tuple)):
        facts["absent"] = sorted({*facts.get("absent", ()), *map(str, options["absent"])})
    if options.get("state") == "zeros" or options.get("initial_state") == "zeros":
        facts["state"] = "zeros"
    if "same_xy" in options:
        facts["same_xy"] = bool(options["same_xy"])
    return {"absent": [str(k) for k in facts.get("absent", ())],
            "state": "zeros" if facts.get("state") == "zeros" else None,
            "same_xy": bool(facts.get("same_xy"))}


@contextlib.contextmanager
def _plugin_blamed(cls):
    """A third-party adapter that raises while reading or describing the module, with none of
    the user's code on the way (no user line), has a bug of its own: a PluginError."""
    try:
        yield
    except UserFailure as f:
        if cls.__module__.startswith("bpttcheck.") or f.line or f.kind != ErrorKind.EXCEPTION:
            raise
        from bpttcheck.plugins import origin
        name, ref = origin(cls)
        raise PluginError("bpttcheck.adapters", name, ref, f"failed on this file: "
                          f"{f.message}") from None


def _choose_adapter(w: Worker, mod, path: str, style: str | None, timeout: float):
    """The adapter class for the loaded module (None for a C library): the one ``style``
    names, or the highest-priority one that detects it. A broken plugin raises PluginError
    (from loading the registry or from its detect()); the user's module is not blamed."""
    from bpttcheck.plugins import adapters, detect

    found = adapters()

    def fits(c) -> bool:
        if c.__module__.startswith("bpttcheck."):  # only the user's module can make it raise
            return bool(w.guarded("inspecting your module", timeout, detect, c, mod, path))
        return detect(c, mod, path)

    if style and style != "auto":
        if style not in found:
            raise UserFailure(ErrorKind.INTERFACE, f"unknown style {style!r}; known: "
                              + ", ".join(found))
        cls = found[style]
        if mod is not None and not fits(cls):
            seen = next((c.name for c in found.values() if fits(c)), None)
            raise UserFailure(ErrorKind.INTERFACE, f"--style {style} (or the spec's style) "
                              f"does not fit this file: it has none of that style's "
                              f"entry points" + (f"; it looks like the {seen} style, "
                              f"so leave --style out" if seen else ""))
        return cls
    cls = next((c for c in found.values() if fits(c)), None)
    if cls is None and mod is not None:  # say what the file does define, and the nearest style
        from bpttcheck import inspection
        seen = w.guarded("inspecting your module", timeout, inspection.inspect_module, mod)
        raise UserFailure(ErrorKind.INTERFACE, inspection.message(seen, os.path.basename(path)))
    if cls is None:
        raise UserFailure(ErrorKind.INTERFACE, "found none of the entry points bpttcheck "
                          "knows: lossFun(inputs, targets, hprev) (Karpathy style), "
                          "loss_and_grads(params, inputs, targets, state), "
                          "forward(...) with backward(...), a class with bptt(x, y) (WildML), "
                          "or rnn_forward/rnn_backward. Define one of them.")
    return cls


def _progress(wf, rid):
    """What a batch calls after each call of the user's code it finishes: a progress message
    to the checker, which then gives the next call its own per-call limit (session._await)."""
    from bpttcheck.sandbox import protocol
    done = [0]

    def report() -> None:
        done[0] += 1
        protocol.send(wf, {"id": rid, "progress": done[0]})
    return report


def _layer_op(w: Worker, op: str, hdr: dict, arrs: dict, timeout: float, progress):
    """Layer style: run one forward/backward unit, or project its forward on upstream
    gradients at moved inputs (for finite differences)."""
    import numpy as np

    from bpttcheck.layer_api import BY_NAME

    u = BY_NAME[hdr["unit"]]
    args = [arrs[f"A{i}"] for i in range(len(u.inputs))]
    ups = [arrs[f"U{i}"] for i in range(len(u.outputs))]
    w.adapter.timeout = timeout
    if op == "layer_run":
        w.evaluations += 1
        status, message, line, outs, grads, changed = w.adapter.run_unit(u, args, ups)
        out = {f"O{i}": np.asarray(o, dtype=np.float64) for i, o in enumerate(outs)}
        out.update({f"G{i}": np.asarray(g, dtype=np.float64) for i, g in enumerate(grads)})
        return {"ok": True, "status": status, "message": message, "line": line,
                "modified": changed, "dtype": w.adapter.grad_dtype}, out
    ndirs = hdr["ndirs"]
    dirs = [[arrs[f"D{j}_{i}"] for i in range(len(u.inputs))] for j in range(ndirs)]
    w.evaluations += len(hdr["offsets"])
    vals = []
    for o in hdr["offsets"]:  # one at a time: each call gets its own limit (progress)
        vals += w.adapter.project(u, args, ups, dirs, [tuple(o)])
        progress()
    return {"ok": True}, {"values": np.asarray(vals, dtype=np.float64)}


def _preload() -> None:
    """bpttcheck's own imports, done before the guard is armed: what serve() and the adapters
    need is then loaded, and the guard can gate the package's attributes. Never the reference
    models: the adapters know the architectures through archmeta, which has no run()."""
    import numpy  # noqa: F401

    from bpttcheck import archmeta, hookspecs, inspection, layout  # noqa: F401 - for serve()
    from bpttcheck.adapters import base  # noqa: F401
    from bpttcheck.plugins import adapters
    from bpttcheck.sandbox import calltrace, protocol  # noqa: F401
    with contextlib.suppress(PluginError):  # a broken plugin: serve() reports it on "load"
        adapters()


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[0]), int(argv[1])
    workdir, origdir, tb_path = argv[2], argv[3], argv[4]
    report_fd = int(argv[5]) if len(argv) > 5 else None  # the refusal channel (guard.py)
    # the channel's number stays out of what user code reads first (sys.argv is the user's
    # file once it loads; sys.orig_argv would still show it)
    sys.argv = sys.argv[:1]
    sys.orig_argv = [sys.executable]
    os.chdir(workdir)
    # the user's folders join sys.path only when their module loads, after bpttcheck's own
    # imports: a copy.py or random.py beside the model cannot replace what numpy imports
    rf = os.fdopen(fd_in, "rb")
    wf = os.fdopen(fd_out, "wb")
    sys.stdin = open(os.devnull)
    faulthandler.enable(file=open(tb_path + ".crash", "w"))
    _preload()
    guard.install(workdir, report_fd)  # from here on: no processes, no network, no reference (guard.py)
    w = Worker(workdir, origdir, tb_path)
    if len(argv) > 7:  # load_early (session.WorkerSession): the file and the load timeout
        w.load_early(argv[6], float(argv[7]))
    serve(w, rf, wf)
    os._exit(0)  # skip atexit hooks the user's module may have registered
