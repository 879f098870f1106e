"""What one call of the user's code did, measured in the worker (the spec key
``forbid_numerical_gradients``, check/numgrad.py): how many lines of the user's files ran, how
often each of the user's functions was called, and whether a complex-valued array was in
play (complex-step differentiation: ``Im f(p + ih) / h``, exact to rounding, the one numerical
gradient that the dormant-unit probe cannot tell from a hand-written backward).

``sys.settrace`` with a local tracer only for frames in the user's files: numpy's C code and
bpttcheck's own frames cost nothing. Frames are looked at on every call and return, and
on every ``SAMPLE``-th line: a complex copy of the parameters lives for a whole forward pass,
so sampling misses none, and a slow but correct backward is not slowed by a scan per line.
A tracer the user's code removes or replaces is reported (``tampered``): the measurement no
longer holds. A profile hook sees the attempt itself (the C call of ``sys.settrace`` or
``sys.setprofile`` from the user's code), so code that switches the trace off and back on
is reported too."""
from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

SAMPLE = 64  # scan one line event in SAMPLE (and every call and return)
MAX_SCANNED = 200_000  # after this many scans, only count: a long call stays affordable
# line events followed in all (each costs a few microseconds): past it a frame's lines are no
# longer traced, calls and returns still are, so a slow correct backward is slowed by at most
# a few seconds
LINE_BUDGET = 1_000_000
NESTED = 64  # elements of a list, tuple or dict looked into (one level deep)
_HOOKS = (sys.settrace, sys.setprofile)  # what switches the measurement off


def _complex(v: Any) -> bool:
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    return kind == "c" or isinstance(v, complex)


def _holds_complex(values) -> bool:
    for v in values:
        if _complex(v):
            return True
        if isinstance(v, (list, tuple)):
            inner = v[:NESTED]
        elif isinstance(v, dict):
            inner = [x for _, x in zip(range(NESTED), v.values(), strict=False)]
        else:
            continue
        if any(_complex(x) for x in inner):
            return True
    return False


class CallTrace:
    """Counts and scans while active; ``summary()`` is plain data for the reply."""

    def __init__(self, is_user: Callable[[str], bool], where: Callable[[str], str]):
        self._is_user, self._where = is_user, where
        self._user_files: dict[str, bool] = {}
        self.lines = 0
        self.calls: Counter[str] = Counter()
        self.scans = 0
        self.complex_at: str | None = None
        self.tampered = False
        # one bound method each: sys.gettrace() and sys.getprofile() are compared with them
        self._tracer, self._watch = self._global, self._profile

    def _user(self, filename: str) -> bool:
        known = self._user_files.get(filename)
        if known is None:
            # "<string>" (a dataclass's __init__, exec'd text) resolves inside the user's folder
            known = self._user_files[filename] = (not filename.startswith("<")
                                                  and self._is_user(filename))
        return known

    def _scan(self, frame) -> None:
        if self.complex_at is not None or self.scans >= MAX_SCANNED:
            return
        self.scans += 1
        if _holds_complex(frame.f_locals.values()) or _holds_complex(frame.f_globals.values()):
            self.complex_at = f"{self._where(frame.f_code.co_filename)}, line {frame.f_lineno}"

    def _global(self, frame, event, arg):
        if event != "call" or not self._user(frame.f_code.co_filename):
            return None
        self.calls[frame.f_code.co_name] += 1
        self._scan(frame)
        if self.lines >= LINE_BUDGET:
            frame.f_trace_lines = False
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines += 1
            if self.lines >= LINE_BUDGET:
                frame.f_trace_lines = False  # no more line events here; returns still come
            if self.lines % SAMPLE == 0:
                self._scan(frame)
        elif event == "return":
            self._scan(frame)
        return self._local

    def _profile(self, frame, event, arg):
        if event == "c_call" and any(arg is f for f in _HOOKS) and self._user(
                frame.f_code.co_filename):
            self.tampered = True

    def run(self, fn: Callable, *args):
        """``fn(*args)`` traced; threads the call starts are traced too."""
        previous = sys.gettrace(), sys.getprofile()
        threading.settrace(self._tracer)
        sys.setprofile(self._watch)
        sys.settrace(self._tracer)
        try:
            return fn(*args)
        finally:
            if sys.gettrace() is not self._tracer or sys.getprofile() is not self._watch:
                self.tampered = True
            sys.settrace(previous[0])
            sys.setprofile(previous[1])
            threading.settrace(None)  # type: ignore[arg-type]

    def summary(self) -> dict:
        top = self.calls.most_common(8)
        # "lines" stops at LINE_BUDGET: the call ran at least that many
        return {"lines": self.lines, "calls": [[name, n] for name, n in top],
                "complex": self.complex_at, "tampered": self.tampered}
