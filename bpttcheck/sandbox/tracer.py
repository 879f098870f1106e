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


def _step(frame, is_user=None) -> int | None:
    """The loop step a frame is at: its own counter, else (a step function called from the
    loop, ``cell.backward(dh, cache)``) the nearest user caller's."""
    for _ in range(4):
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
        self.seen[id(frame)] = (frame.f_lineno, _step(frame, self.is_user), snap)

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
            self.seen[id(frame)] = (frame.f_lineno, _step(frame, self.is_user),
                                   self._snapshot(frame))
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if event in ("line", "return"):
            with contextlib.suppress(Exception):  # an odd local must not break the user's call
                self._changes(frame)
            if event == "return":
                self.seen.pop(id(frame), None)
        return self.local_trace


def run_traced(fn, is_user, shown, *args):
    """fn(*args) with the user's lines recorded: (what fn returned, the Recording)."""
    t = Tracer(is_user, shown)
    old = sys.gettrace()
    sys.settrace(t.global_trace)
    try:
        result = fn(*args)
    finally:
        sys.settrace(old)
    return result, t.rec
