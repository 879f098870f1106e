"""Recording what the user's code computes, line by line (runs in the worker).

One call of the user's gradient function runs under ``sys.settrace``, seeing only frames of
the user's own files. Whenever such a frame moves to a new line, the numeric arrays it can
reach by name (its locals, the items of its local lists and dicts such as ``hs[t]``, and the
attributes of ``self``) are compared with what they held at its previous line; every array
that is new or changed is recorded against that previous line, with the loop step ``t`` when
the frame has one. The checker matches the records against the reference's intermediate
quantities (check/locate.py) to find the first line that leaves the right path.

Only small probe cases are traced, within a budget of records and bytes: tracing is for
locating a bug already found, never for judging it."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

import numpy as np

MAX_RECORDS = 6000
MAX_BYTES = 24 << 20
MAX_ARRAY = 20_000  # entries: larger arrays are no probe-case intermediates
STEP_NAMES = ("t", "step", "i", "k", "j", "idx")  # the loop counter, by the names people use


@dataclass
class Record:
    file: str
    line: int
    name: str
    step: int | None
    value: np.ndarray


@dataclass
class Recording:
    records: list[Record] = field(default_factory=list)
    nbytes: int = 0
    truncated: bool = False


def _arrays(frame) -> dict[str, np.ndarray]:
    """The numeric arrays a frame reaches by a name a person would write."""
    out: dict[str, np.ndarray] = {}
    for name, v in list(frame.f_locals.items()):
        _add(out, name, v)
        if isinstance(v, dict) and len(v) <= 512:
            for k, x in list(v.items()):
                if isinstance(k, (int, str)):
                    _add(out, f"{name}[{k!r}]" if isinstance(k, str) else f"{name}[{k}]", x)
        elif isinstance(v, list) and len(v) <= 512:
            for i, x in enumerate(v):
                _add(out, f"{name}[{i}]", x)
        elif name == "self":
            for k, x in list(getattr(v, "__dict__", {}).items()):
                _add(out, f"self.{k}", x)
                if isinstance(x, dict) and len(x) <= 64:
                    for kk, xx in list(x.items()):
                        if isinstance(kk, str):
                            _add(out, f"self.{k}[{kk!r}]", xx)
    return out


def _add(out: dict, name: str, v) -> None:
    if isinstance(v, np.ndarray) and v.dtype.kind == "f" and 1 < v.size <= MAX_ARRAY:
        out[name] = v


def step_of(frame, is_user=None, depth: int = 4) -> int | None:
    """The loop step a frame is at: its own counter, else (a step function called from the
    loop, ``cell.backward(dh, cache)``) the nearest user caller's, ``depth`` frames up."""
    for _ in range(depth):
        for n in STEP_NAMES:
            v = frame.f_locals.get(n)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                return int(v)
        frame = frame.f_back
        if frame is None or is_user is None or not is_user(frame.f_code.co_filename):
            return None
    return None


class Tracer:
    def __init__(self, is_user, shown) -> None:
        self.is_user, self.shown = is_user, shown  # shown: the user's name of a staged file
        self.rec = Recording()
        self.seen: dict[int, tuple[int, int | None, dict[str, tuple[int, bytes]]]] = {}

    def _snapshot(self, frame) -> dict[str, tuple[int, bytes]]:
        return {k: (id(a), a.tobytes()) for k, a in _arrays(frame).items()}

    def _changes(self, frame) -> None:
        """Record what changed since the frame's previous line, against that line."""
        prev = self.seen.get(id(frame))
        now = _arrays(frame)
        snap = {k: (id(a), a.tobytes()) for k, a in now.items()}
        if prev is not None:
            line, step, before = prev
            for k, a in now.items():
                if before.get(k) != snap[k]:
                    self._record(frame, line, k, step, a)
        self.seen[id(frame)] = (frame.f_lineno, step_of(frame, self.is_user), snap)

    def _record(self, frame, line: int, name: str, step, a: np.ndarray) -> None:
        r = self.rec
        if len(r.records) >= MAX_RECORDS or r.nbytes + a.nbytes > MAX_BYTES:
            r.truncated = True
            sys.settrace(None)
            return
        r.records.append(Record(self.shown(frame.f_code.co_filename), line, name, step,
                                np.array(a, dtype=np.float64)))
        r.nbytes += a.nbytes

    def global_trace(self, frame, event, arg):
        if event == "call" and self.is_user(frame.f_code.co_filename):
            with contextlib.suppress(Exception):
                self._arguments(frame)
            self.seen[id(frame)] = (frame.f_lineno, step_of(frame, self.is_user),
                                   self._snapshot(frame))
            return self.local_trace
        return None

    def _arguments(self, frame) -> None:
        """The arrays a user function is called with, recorded against the caller's line
        under the callee's names: passing ``da_prevt`` where ``da[:, :, t] + da_prevt`` was
        meant is an assignment that goes wrong at the call."""
        caller = frame.f_back
        if caller is None or not self.is_user(caller.f_code.co_filename):
            return
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        step = step_of(caller, self.is_user)
        for name in names:
            v = frame.f_locals.get(name)
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and 1 < v.size <= MAX_ARRAY:
                self._record(caller, caller.f_lineno, name, step, v)

    def local_trace(self, frame, event, arg):
        if event in ("line", "return"):
            with contextlib.suppress(Exception):  # an odd local must not break the user's call
                self._changes(frame)
            if event == "return":
                self.seen.pop(id(frame), None)
        return self.local_trace


def call_traced(global_trace, fn, *args, **kwargs):
    """fn(*args, **kwargs) with ``global_trace`` as the trace function, the previous one put
    back."""
    old = sys.gettrace()
    sys.settrace(global_trace)
    try:
        return fn(*args, **kwargs)
    finally:
        sys.settrace(old)


def run_traced(fn, is_user, shown, *args):
    """fn(*args) with the user's lines recorded: (what fn returned, the Recording)."""
    t = Tracer(is_user, shown)
    return call_traced(t.global_trace, fn, *args), t.rec


# ---------------------------------------------------------------------------- rewrites

MAX_STATEMENTS = 3000
PROBE_SECONDS = 3.0  # for evaluating the statements, whatever their number


@dataclass
class Where:
    file: str  # the user's name of the file (as records name it)
    line: int
    step: int | None
    name: str  # the variable the line writes, as records name it: dh, hs[3], self.dW, g['Whh']


def _root(name: str) -> str:
    return name.split("[", 1)[0].split(".", 1)[0]


def _fresh(v):
    """A copy of what a statement may write into: an array, a list or dict of them, an object
    whose attributes are (``self``)."""
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, dict):
        return {k: _fresh_item(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_fresh_item(x) for x in v]
    if hasattr(v, "__dict__") and not isinstance(v, type):
        import copy
        c = copy.copy(v)
        for k, x in list(vars(c).items()):
            setattr(c, k, _fresh_item(x) if not isinstance(x, (dict, list)) else _fresh(x))
        return c
    return v


def _fresh_item(x):
    return x.copy() if isinstance(x, np.ndarray) else x


class LineProbe:
    """Stops once at one line of the user's code, at one loop step, and runs each of a list of
    statements (rewrites of that line) in place of it, on a copy of what it writes: the value
    the line's variable would then hold, for each."""

    def __init__(self, is_user, shown, where: Where, statements: list[str]) -> None:
        self.is_user, self.shown, self.where = is_user, shown, where
        self.statements = statements[:MAX_STATEMENTS]
        self.values: list[np.ndarray | None] = [None] * len(self.statements)
        self.done = False

    def global_trace(self, frame, event, arg):
        if self.done or event != "call" or not self.is_user(frame.f_code.co_filename):
            return None
        if self.shown(frame.f_code.co_filename) != self.where.file:
            return None
        return self.local_trace

    def local_trace(self, frame, event, arg):
        w = self.where
        if (not self.done and event == "line" and frame.f_lineno == w.line
                and step_of(frame, self.is_user) == w.step):
            self.done = True
            with contextlib.suppress(Exception):
                self._run_all(frame)
            sys.settrace(None)  # the rest of the call runs untraced
            return None
        return None if self.done else self.local_trace

    def _run_all(self, frame) -> None:
        import time
        import warnings
        t0 = time.perf_counter()
        g, loc = frame.f_globals, dict(frame.f_locals)
        root = _root(self.where.name)
        nbytes = 0
        for i, text in enumerate(self.statements):
            if time.perf_counter() - t0 > PROBE_SECONDS or nbytes > MAX_BYTES:
                break
            ns = dict(loc)
            if root in ns:
                ns[root] = _fresh(ns[root])
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    exec(compile(text, "<rewrite>", "exec"), g, ns)
                    v = eval(self.where.name, g, ns)
            except Exception:  # noqa: BLE001 - a rewrite that does not run is no rewrite
                continue
            if isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and 0 < v.size <= MAX_ARRAY:
                self.values[i] = np.array(v, dtype=np.float64)
                nbytes += v.size * 8


def run_probed(fn, is_user, shown, where: Where, statements: list[str], *args):
    """fn(*args), stopping once at ``where`` to run ``statements`` in place of its line: what
    fn returned, and the value of ``where.name`` after each statement (None: it did not run)."""
    p = LineProbe(is_user, shown, where, statements)
    return call_traced(p.global_trace, fn, *args), p.values
