"""Layer style (CONTRACT §2.2b): the batched step and sequence functions of `rnn_layers.py`.

Runs in the worker. Each unit is a forward/backward pair; the cache the forward returns is
handed to the backward untouched and never leaves this process. A function that is still a
stub (returns None, raises NotImplementedError) or raises is reported per unit, so one
unfinished function does not hide the verdict of the others."""
from __future__ import annotations

import numpy as np

from bpttcheck.adapters.base import NotImplementedByUser, PythonAdapter, as_float_array
from bpttcheck.errors import ErrorKind, InterfaceError
from bpttcheck.layer_api import BY_NAME, FUNCTIONS, UNITS, Unit


class LayersAdapter(PythonAdapter):
    name = "layers"
    priority = 30
    kind = "units"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is not None and any(callable(getattr(module, f, None)) for f in FUNCTIONS)

    def describe(self) -> dict:
        units, partial = [], []
        for u in UNITS:
            have = [callable(getattr(self.module, f, None)) for f in (u.forward, u.backward)]
            if all(have):
                units.append(u.name)
            elif any(have):
                partial.append(u.forward if have[0] else u.backward)
        if not units:
            raise InterfaceError("the file defines " + ", ".join(partial) + " but not its "
                                 "forward/backward partner; define both functions of a pair")
        fams = sorted({BY_NAME[n].family for n in units}, key=["rnn", "lstm"].index)
        return {"arch": "+".join(fams), "layouts": [], "dims": None,
                "extra": {"units": units, "lonely": partial}}

    # ------------------------------------------------------------------ calls

    guard = None  # the worker's guarded(where, timeout, fn, *args), set after loading
    timeout = 10.0

    def _call(self, fn_name: str, *args):
        try:
            return self.guard(f"your {fn_name}", self.timeout, getattr(self.module, fn_name), *args)
        except Exception as e:
            kind = getattr(e, "kind", None)
            if kind in (ErrorKind.EXCEPTION, ErrorKind.NOT_IMPLEMENTED, ErrorKind.INTERFACE):
                raise _Failed(kind, e.message, e.line) from None
            raise

    def _forward(self, u: Unit, args: list[np.ndarray]):
        out = self._call(u.forward, *args)
        if out is None:
            raise _Stub(f"{u.forward} returned None")
        n = len(u.outputs)
        if not isinstance(out, tuple) or len(out) != n + 1:
            raise InterfaceError(f"{u.forward} should return ({', '.join(u.outputs)}, cache), got "
                                 + (f"a tuple of {len(out)}" if isinstance(out, tuple)
                                    else type(out).__name__))
        arrays = [as_float_array(o, f"{u.forward}'s {name}") for o, name in zip(out, u.outputs)]
        return arrays, out[n]

    def run_unit(self, u: Unit, args: list[np.ndarray], ups: list[np.ndarray]):
        """(status, message, line, outputs, grads, modified) of forward then backward."""
        given = [a.copy() for a in args]
        self._note_dtype(args)
        try:
            outs, cache = self._forward(u, args)
        except InterfaceError as e:
            return _status(e), str(e), None, [], [], []
        except _Failed as f:
            return f.status, f.message, f.line, [], [], []
        try:
            res = self._call(u.backward, *[d.copy() for d in ups], cache)
            if res is None or (isinstance(res, tuple) and all(r is None for r in res)):
                raise _Stub(f"{u.backward} returned " + ("None" if res is None else "only None"))
            if not isinstance(res, tuple) or len(res) != len(u.grads):
                raise InterfaceError(f"{u.backward} should return ({', '.join(u.grads)}), got "
                                     + (f"a tuple of {len(res)}" if isinstance(res, tuple)
                                        else type(res).__name__))
            grads = [as_float_array(g, f"{u.backward}'s {name}") for g, name in zip(res, u.grads)]
        except InterfaceError as e:
            return _status(e), str(e), None, outs, [], []
        except _Failed as f:
            return f.status, f.message, f.line, outs, [], []
        self._note_dtype(grads)
        changed = [n for n, a, g in zip(u.inputs, args, given)
                   if a.shape != g.shape or not np.array_equal(a, g, equal_nan=True)]
        return "ok", "", None, outs, grads, changed

    def project(self, u: Unit, args, ups, dirs: list[list[np.ndarray]], offsets):
        """sum(dout * out) of the forward at args + s * dirs[j] for each (j, s)."""
        vals = []
        for j, s in offsets:
            moved = [a + s * d for a, d in zip(args, dirs[j])]
            try:
                outs, _ = self._forward(u, moved)
                vals.append(float(sum(np.sum(d * o) for d, o in zip(ups, outs))))
            except (_Failed, InterfaceError, ValueError):
                vals.append(float("nan"))  # fails only away from the probe point: FD says so
        return vals


def _status(e: InterfaceError) -> str:
    return ErrorKind.NOT_IMPLEMENTED if isinstance(e, NotImplementedByUser) else ErrorKind.INTERFACE


class _Failed(Exception):
    def __init__(self, status: str, message: str, line: str | None = None):
        super().__init__(message)
        self.status, self.message, self.line = status, message, line


class _Stub(_Failed):
    def __init__(self, message: str):
        super().__init__(ErrorKind.NOT_IMPLEMENTED, message + ": is it still a stub?")
