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
    modified,
    n_positional,
    snapshot,
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

    def _backward(self, u: Unit, ups, state) -> list[np.ndarray]:
        """The gradients in u.grads order, canonical layout; ``ups`` is what _upstream made."""
        raise NotImplementedError

    def _upstream(self, u: Unit, ups: list[np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
        """(what _backward needs, {user's label: upstream gradient array handed to the user's
        code}): a style that converts the upstream gradients (another layout, float32) does it
        here, so the arrays watched for in-place writes are the ones the user's code gets."""
        return ups, dict(zip(u.upstream, ups, strict=False))

    def _cache(self, u: Unit, state) -> dict[str, np.ndarray]:
        """{label: array} the forward left for the backward (its cache) that the backward may
        not write into; none where the state is the user's own object (a layer class)."""
        return {}

    def _is_parameter(self, label: str) -> bool:
        """Whether a watched forward input is a parameter (Wx, Wh, b), not x or a state."""
        return label in ("Wx", "Wh", "b")

    def _function_names(self, u: Unit) -> tuple[str, str]:
        nm = self.names().get(u.name) or {}
        return nm.get("forward", u.forward), nm.get("backward", u.backward)

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

    def run_unit(self, u: Unit, args: list[np.ndarray], ups: list[np.ndarray],
                 spy: Callable[[dict[str, np.ndarray]], None] | None = None):
        """(status, message, line, outputs, grads, modified) of forward then backward.

        ``modified`` lists every array handed to the user's code that it changed in place:
        {"function", "argument", "role" ("input", "parameter", "upstream" or "cache"),
        "change" (the largest change of an entry, None where it is no number)}, and
        "through": "cache" for a forward's input the backward changed. ``spy``, when
        given, sees each array as it is handed over, keyed "role:label" (sandbox/writes.py
        uses it to find the line that writes into one)."""
        prepared, watched = self._watch(u, args)
        fwd, bwd = self._function_names(u)
        roles = {k: "parameter" if self._is_parameter(k) else "input" for k in watched}
        given = snapshot(watched)
        if spy is not None:
            spy({f"{roles[k]}:{k}": a for k, a in watched.items()})
        self._note_dtype(list(watched.values()))
        try:
            outs, state = self._forward(u, prepared)
        except InterfaceError as e:
            return _status(e), str(e), None, [], [], []
        except _Failed as f:
            return f.status, f.message, f.line, [], [], []
        outs = [np.array(o, copy=True) for o in outs]  # the cache may hold them: see below
        by_forward = modified(given, watched)
        inputs = list(watched.values())
        up_prepared, up_watched = self._upstream(u, [d.copy() for d in ups])
        cache = {k: a for k, a in self._cache(u, state).items()
                 if not any(np.may_share_memory(a, x) for x in inputs)}  # those are inputs
        up_given, cache_given = snapshot(up_watched), snapshot(cache)
        if spy is not None:
            spy({**{f"upstream:{k}": a for k, a in up_watched.items()},
                 **{f"cache:{k}": a for k, a in cache.items()}})
        try:
            grads = self._backward(u, up_prepared, state)
        except InterfaceError as e:
            return _status(e), str(e), None, outs, [], []
        except _Failed as f:
            return f.status, f.message, f.line, outs, [], []
        self._note_dtype(grads)
        changed = [_change(fwd, k, roles[k], v) for k, v in by_forward.items()]
        changed += [{**_change(bwd, k, roles[k], v), "through": "cache"}  # the forward's,
                    for k, v in modified(given, watched).items()     # reached from the cache
                    if k not in by_forward]
        changed += [_change(bwd, k, "upstream", v)
                    for k, v in modified(up_given, up_watched).items()]
        changed += [_change(bwd, k, "cache", v) for k, v in modified(cache_given, cache).items()]
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

    _parameters: frozenset[str] = frozenset()  # the user's names of Wx, Wh, b

    def _watch(self, u, args):
        labels = _labels(getattr(self.module, u.forward), u.inputs)
        self._parameters = frozenset(m for m, c in zip(labels, u.inputs, strict=False)
                                     if c in ("Wx", "Wh", "b"))
        return args, dict(zip(labels, args, strict=False))

    def _is_parameter(self, label: str) -> bool:
        return label in self._parameters

    def _upstream(self, u, ups):
        fn = getattr(self.module, u.backward)
        return ups, dict(zip(_labels(fn, u.upstream), ups, strict=False))

    def _cache(self, u, cache):
        fn = getattr(self.module, u.backward)
        return arrays_in(cache, _labels(fn, (*u.upstream, "cache"))[-1])

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


def _labels(fn, canonical: tuple[str, ...]) -> list[str]:
    """The user's names of a function's positional arguments, the layer API's where the
    signature cannot be read or has fewer."""
    mine = [n for n, p in _param_names(fn).items()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [mine[i] if i < len(mine) else c for i, c in enumerate(canonical)]


MAX_CACHE_ARRAYS = 512  # a cache is a few arrays per step: more is no cache of a probe case
MAX_CACHE_BYTES = 32 << 20


def arrays_in(obj, label: str, depth: int = 3) -> dict[str, np.ndarray]:
    """The numpy arrays inside a cache (nested tuples, lists and dicts of them), each under
    the expression that reaches it (``cache[2][1]``, ``cache['x']``); an array reached twice
    keeps its first label."""
    out: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    size = [0]

    def walk(x, name: str, d: int) -> None:
        if len(out) >= MAX_CACHE_ARRAYS:
            return
        if isinstance(x, np.ndarray):
            if id(x) not in seen and x.dtype != object and size[0] + x.nbytes <= MAX_CACHE_BYTES:
                seen.add(id(x))
                size[0] += x.nbytes
                out[name] = x
        elif d > 0 and isinstance(x, (tuple, list)) and len(x) <= MAX_CACHE_ARRAYS:
            for i, v in enumerate(x):
                walk(v, f"{name}[{i}]", d - 1)
        elif d > 0 and isinstance(x, dict) and len(x) <= MAX_CACHE_ARRAYS:
            for k, v in list(x.items()):
                if isinstance(k, (str, int)):
                    walk(v, f"{name}[{k!r}]", d - 1)

    walk(obj, label, depth)
    return out


def _change(function: str, argument: str, role: str, change: float | None) -> dict:
    return {"function": function, "argument": argument, "role": role, "change": change}


def _status(e: InterfaceError) -> str:
    return ErrorKind.NOT_IMPLEMENTED if isinstance(e, NotImplementedByUser) else ErrorKind.INTERFACE


class _Failed(Exception):
    def __init__(self, status: str, message: str, line: str | None = None):
        super().__init__(message)
        self.status, self.message, self.line = status, message, line


class _Stub(_Failed):
    def __init__(self, message: str):
        super().__init__(ErrorKind.NOT_IMPLEMENTED, message + ": is it still a stub?")
