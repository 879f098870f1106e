"""Layer style (CONTRACT §2.2b): the batched step and sequence functions of `rnn_layers.py`,
and the base every unit-style adapter shares (UnitsAdapter).

Runs in the worker. Each unit is a forward/backward pair; the cache the forward returns is
handed to the backward untouched and never leaves this process. A function that is still a
stub (returns None, raises NotImplementedError) or raises is reported per unit, so one
unfinished function does not hide the verdict of the others.

Other course APIs (dlai.py, dlfs2.py) map onto the same canonical units: they convert the
canonical arrays (layer_api.Unit) into their own layout on the way in and back on the way
out, so one reference and one diagnosis judge them all. Only the three hooks below differ."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bpttcheck.adapters.base import (
    NotImplementedByUser,
    PythonAdapter,
    as_float_array,
    n_positional,
)
from bpttcheck.errors import ErrorKind, InterfaceError
from bpttcheck.layer_api import BY_NAME, FUNCTIONS, LAYER_API, Unit

FAMILIES = ["rnn", "lstm", "gru"]


class UnitsAdapter(PythonAdapter):
    """run_unit/project for any unit style; subclasses say which units exist (``found``),
    what the user calls things (``names``) and how to call the user's code (``_watch``,
    ``_forward``, ``_backward``), all in canonical arrays."""

    kind = "units"

    def found(self) -> tuple[list[str], list[str]]:
        """(canonical units the module defines completely, its functions without a partner)."""
        raise NotImplementedError

    def names(self) -> dict[str, dict]:
        """unit -> {"forward", "backward", "grads": {canonical: user name},
        "blocks": {canonical: [user name per gate block, in i, f, o, g order]}}; a unit left
        out is shown under the layer API's names."""
        return {}

    def describe(self) -> dict:
        units, partial = self.found()
        if not units:
            raise InterfaceError("the file defines " + ", ".join(partial) + " but not its "
                                 "forward/backward partner; define both functions of a pair")
        fams = sorted({BY_NAME[n].family for n in units}, key=FAMILIES.index)
        return {"arch": "+".join(fams), "layouts": [], "dims": None,
                "extra": {"units": units, "lonely": partial, "names": self.names()}}

    # ------------------------------------------------------------------ hooks

    def _watch(self, u: Unit, args: list[np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
        """(what _forward needs, {user's label: array handed to the user's code}): the arrays
        whose in-place modification is reported."""
        raise NotImplementedError

    def _forward(self, u: Unit, prepared) -> tuple[list[np.ndarray], Any]:
        """(canonical outputs, whatever _backward needs: the cache, the layer object)."""
        raise NotImplementedError

    def _backward(self, u: Unit, ups: list[np.ndarray], state) -> list[np.ndarray]:
        """The gradients in u.grads order, canonical layout."""
        raise NotImplementedError

    # ------------------------------------------------------------------ calls

    guard: Callable[..., Any]  # the worker's guarded(where, timeout, fn, *args), set at load
    timeout = 10.0

    def _call(self, label: str, fn, *args):
        try:
            return self.guard(f"your {label}", self.timeout, fn, *args)
        except Exception as e:
            kind = getattr(e, "kind", None)
            if kind in (ErrorKind.EXCEPTION, ErrorKind.NOT_IMPLEMENTED, ErrorKind.INTERFACE):
                raise _Failed(kind, str(e), getattr(e, "line", None)) from None
            raise

    def run_unit(self, u: Unit, args: list[np.ndarray], ups: list[np.ndarray]):
        """(status, message, line, outputs, grads, modified) of forward then backward."""
        prepared, watched = self._watch(u, args)
        given = {k: np.array(a, copy=True) for k, a in watched.items()}
        self._note_dtype(list(watched.values()))
        try:
            outs, state = self._forward(u, prepared)
        except InterfaceError as e:
            return _status(e), str(e), None, [], [], []
        except _Failed as f:
            return f.status, f.message, f.line, [], [], []
        try:
            grads = self._backward(u, [d.copy() for d in ups], state)
        except InterfaceError as e:
            return _status(e), str(e), None, outs, [], []
        except _Failed as f:
            return f.status, f.message, f.line, outs, [], []
        self._note_dtype(grads)
        changed = [k for k, g in given.items() if watched[k].shape != g.shape
                   or not np.array_equal(watched[k], g, equal_nan=True)]
        return "ok", "", None, outs, [np.asarray(g) for g in grads], changed

    def project(self, u: Unit, args, ups, dirs: list[list[np.ndarray]], offsets):
        """sum(dout * out) of the forward at args + s * dirs[j] for each (j, s)."""
        vals = []
        for j, s in offsets:
            moved = [a + s * d for a, d in zip(args, dirs[j], strict=False)]
            try:
                outs, _ = self._forward(u, self._watch(u, moved)[0])
                vals.append(float(sum(np.sum(d * o) for d, o in zip(ups, outs, strict=False))))
            except (_Failed, InterfaceError, ValueError):
                vals.append(float("nan"))  # fails only away from the probe point: FD says so
        return vals


class LayersAdapter(UnitsAdapter):
    name = "layers"
    priority = 30

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is not None and any(_fits(module, f) for f in FUNCTIONS)

    def found(self):
        units, partial = [], []
        for u in LAYER_API:
            have = [_fits(self.module, f) for f in (u.forward, u.backward)]
            if all(have):
                units.append(u.name)
            elif any(have):
                partial.append(u.forward if have[0] else u.backward)
        return units, partial

    def _watch(self, u, args):
        return args, dict(zip(u.inputs, args, strict=False))

    def _forward(self, u: Unit, args: list[np.ndarray]):
        out = self._call(u.forward, getattr(self.module, u.forward), *args)
        if out is None:
            raise _Stub(f"{u.forward} returned None")
        n = len(u.outputs)
        if not isinstance(out, tuple) or len(out) != n + 1:
            raise InterfaceError(f"{u.forward} should return ({', '.join(u.outputs)}, cache), got "
                                 + (f"a tuple of {len(out)}" if isinstance(out, tuple)
                                    else type(out).__name__))
        arrays = [as_float_array(o, f"{u.forward}'s {name}") for o, name in zip(out, u.outputs, strict=False)]
        return arrays, out[n]

    def _backward(self, u, ups, cache):
        res = self._call(u.backward, getattr(self.module, u.backward), *ups, cache)
        if res is None or (isinstance(res, tuple) and all(r is None for r in res)):
            raise _Stub(f"{u.backward} returned " + ("None" if res is None else "only None"))
        if not isinstance(res, tuple) or len(res) != len(u.grads):
            raise InterfaceError(f"{u.backward} should return ({', '.join(u.grads)}), got "
                                 + (f"a tuple of {len(res)}" if isinstance(res, tuple)
                                    else type(res).__name__))
        return [as_float_array(g, f"{u.backward}'s {name}") for g, name in zip(res, u.grads, strict=False)]


def _fits(module, fn_name: str) -> bool:
    """A function of the layer API with the API's number of positional arguments: the
    deeplearning.ai course reuses the names rnn_forward/rnn_backward with other signatures
    (rnn_forward(x, a0, parameters), rnn_forward(X, Y, a0, parameters, vocab_size))."""
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        return False
    want = next(len(u.inputs) if f == u.forward else len(u.outputs) + 1
                for u in LAYER_API for f in (u.forward, u.backward) if f == fn_name)
    n = n_positional(fn)
    if n < 0:  # no signature to read (a builtin, a C function): trust the name
        return True
    params = list(_param_names(fn))
    return n == want and params[:2] != ["X", "Y"]


def _param_names(fn):
    import inspect
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def _status(e: InterfaceError) -> str:
    return ErrorKind.NOT_IMPLEMENTED if isinstance(e, NotImplementedByUser) else ErrorKind.INTERFACE


class _Failed(Exception):
    def __init__(self, status: str, message: str, line: str | None = None):
        super().__init__(message)
        self.status, self.message, self.line = status, message, line


class _Stub(_Failed):
    def __init__(self, message: str):
        super().__init__(ErrorKind.NOT_IMPLEMENTED, message + ": is it still a stub?")
