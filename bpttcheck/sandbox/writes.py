"""Where the user's code writes into an array it was given (runs in the worker).

The layer check already knows *that* a function changed an array it received (an upstream
gradient such as ``dh``, an input, an entry of the cache): the adapter compares copies taken
before the call with the arrays afterwards. To say *where*, the unit is run once more with
the arrays that changed watched by identity: after every line of the user's own files
(``sys.settrace``, frames of those files only) each watched array not yet caught is compared
with its copy, and the first line after which it differs is the line that wrote into it,
whatever name it was written through (``dh``, a slice of it, a step function's argument).

Asked only for a function already seen to modify its arguments, on the small probe case:
the comparisons are of a few small arrays per line."""
from __future__ import annotations

import contextlib
import linecache
from dataclasses import dataclass

import numpy as np

from bpttcheck.sandbox.tracer import call_traced, step_of


@dataclass
class Write:
    key: str  # "role:label", as the adapter's spy names the array
    file: str  # the user's name of the file
    line: int
    text: str  # the line's source
    function: str  # the function the line is in
    name: str | None  # the local variable the array was written through, when one holds it
    step: int | None  # the loop step, when the frame (or its user caller) has a counter


class WriteWatch:
    """A spy for UnitsAdapter.run_unit and a tracer: the first writing line of each of the
    arrays whose keys are ``wanted``."""

    def __init__(self, is_user, shown, wanted: set[str]) -> None:
        self.is_user, self.shown, self.wanted = is_user, shown, wanted
        self.watched: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.found: dict[str, Write] = {}
        self.last: dict[int, int] = {}  # frame -> the line it ran last

    def __call__(self, arrays: dict[str, np.ndarray]) -> None:
        for k, a in arrays.items():
            if k in self.wanted and k not in self.found and isinstance(a, np.ndarray):
                self.watched[k] = (a, a.copy())

    def global_trace(self, frame, event, arg):
        if event == "call" and self.watched and self.is_user(frame.f_code.co_filename):
            self.last[id(frame)] = frame.f_lineno
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if event in ("line", "return"):
            with contextlib.suppress(Exception):  # an odd array must not break the user's call
                self._check(frame, self.last.get(id(frame), frame.f_lineno))
            self.last[id(frame)] = frame.f_lineno
            if event == "return":
                self.last.pop(id(frame), None)
        return self.local_trace

    def _check(self, frame, line: int) -> None:
        for k, (a, before) in list(self.watched.items()):
            if a.shape == before.shape and np.array_equal(a, before, equal_nan=True):
                continue
            file = frame.f_code.co_filename
            self.found[k] = Write(k, self.shown(file), line,
                                  linecache.getline(file, line).strip(), frame.f_code.co_name,
                                  _name_in(frame, a), step_of(frame, self.is_user, depth=3))
            del self.watched[k]


def _name_in(frame, a: np.ndarray) -> str | None:
    """The local name the frame holds the array under: the array itself first, else a view of
    it (``dh_t = dh[:, t]``)."""
    names = list(frame.f_locals.items())
    same = next((n for n, v in names if v is a), None)
    if same is not None:
        return same
    return next((n for n, v in names if isinstance(v, np.ndarray) and v.base is not None
                 and np.may_share_memory(v, a)), None)


def find_writes(run_unit, is_user, shown, wanted: set[str], *args) -> list[Write]:
    """run_unit(*args, spy=...) under the watch: the first write into each wanted array."""
    watch = WriteWatch(is_user, shown, wanted)
    call_traced(watch.global_trace, run_unit, *args, spy=watch)
    return list(watch.found.values())
