"""WildML tutorial style (the ``RNNNumpy`` class of "Recurrent Neural Networks Tutorial, Part
2" and its copies): a class built as ``RNNNumpy(word_dim, hidden_dim=100, bptt_truncate=4)``
with attributes ``U (H, X)``, ``V (X, H)``, ``W (H, H)``, ``bptt(x, y)`` returning the gradients
in the order its ``return`` names them (``[dLdU, dLdV, dLdW]``), and
``calculate_total_loss([x], [y])`` for the summed loss. Methods may be attached after the class
(``RNNNumpy.bptt = bptt``), as the tutorial's notebook does.

The model has no biases, always starts from a zero state (``s[-1]`` is a row of zeros) and
predicts over its input vocabulary, which describe() declares (check/model.py). The object is
built with the case's sizes and the user's own ``bptt_truncate`` default: the code is judged
as it is."""
from __future__ import annotations

import ast
import inspect

import numpy as np

from bpttcheck.adapters.base import (
    PythonAdapter,
    as_float_array,
    as_loss,
    modified,
    snapshot,
)
from bpttcheck.archmeta import meta, without
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout

# the tutorial's attribute for each canonical group (U: input, W: recurrent, V: output)
ATTRS = {"Wxh": "U", "Whh": "W", "Why": "V"}
ABSENT = ("bh", "by")


def _model_class(module):
    """The class of the module with a bptt method and a way to get the loss, if any."""
    for obj in vars(module).values():
        if (inspect.isclass(obj) and getattr(obj, "__module__", None) == module.__name__
                and callable(getattr(obj, "bptt", None))
                and any(callable(getattr(obj, m, None)) for m in
                        ("calculate_total_loss", "calculate_loss", "forward_propagation"))):
            return obj
    return None


class WildMLAdapter(PythonAdapter):
    name = "wildml"
    priority = 12
    entry = "bptt"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is not None and _model_class(module) is not None

    def __init__(self, module, path, options):
        super().__init__(module, path, options)
        self.cls = _model_class(module)
        self.arch_name = "rnn"
        self.arch = without(meta("rnn"), ABSENT)
        self.order = self._return_order()
        self._objects: dict[tuple[int, int], object] = {}

    def _return_order(self) -> list[str]:
        """Canonical names in the order bptt's return statement lists the gradients."""
        src = getattr(self.module, "__bpttcheck_source__", "") or ""
        try:
            tree = ast.parse(src)
        except SyntaxError:
            tree = None
        fns = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
               and n.name == "bptt"] if tree else []
        by_attr = {a: c for c, a in ATTRS.items()}
        for fn in fns:
            for ret in (n for n in ast.walk(fn) if isinstance(n, ast.Return)):
                if not isinstance(ret.value, (ast.Tuple, ast.List)):
                    continue
                order = [by_attr.get(_attr_of(e) or "") for e in ret.value.elts]
                found = [c for c in order if c]
                if len(order) == 3 and len(set(found)) == 3:
                    return found
        return ["Wxh", "Why", "Whh"]  # the tutorial's [dLdU, dLdV, dLdW]

    def describe(self) -> dict:
        names = dict(ATTRS)
        if [ATTRS[c] for c in self.order] != ["U", "V", "W"]:
            self.notes.append({"id": "layout.inferred", "title": "Return order read from bptt",
                               "evidence": "bptt returns the gradients of "
                               + ", ".join(ATTRS[c] for c in self.order)})
        return {"arch": "rnn", "dims": None, "layouts": [Layout(names=names)],
                "model": {"absent": list(ABSENT), "state": "zeros", "same_xy": True}}

    def _object(self, X: int, H: int):
        """An instance for these sizes, built by the user's constructor (word_dim, hidden_dim)
        with every other argument at the user's default."""
        key = (X, H)
        if key not in self._objects:
            try:
                self._objects[key] = self.cls(X, H)
            except TypeError as e:
                raise InterfaceError(
                    f"{self.cls.__name__}(word_dim, hidden_dim) could not be built: {e}; "
                    f"bpttcheck builds it with the vocabulary and hidden sizes") from None
        return self._objects[key]

    def call(self, P, xs, ys, state, layout: Layout, want_grads: bool):
        H, X = P["Wxh"].shape
        obj = self._object(X, H)
        for canon, attr in ATTRS.items():
            setattr(obj, attr, np.array(P[canon], dtype=np.float64))
        xs_l, ys_l = list(xs), list(ys)
        user = {attr: getattr(obj, attr) for attr in ATTRS.values()}
        before = snapshot({**user, "x": xs_l, "y": ys_l})
        loss = self._loss(obj, xs_l, ys_l)
        grads, last = None, (None,)
        if want_grads:
            last = (self._last_state(obj, xs_l, H),)  # before bptt, which may change U, V, W
            out = obj.bptt(xs_l, ys_l)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                got = f"{len(out)} values" if isinstance(out, (tuple, list)) else type(out).__name__
                raise InterfaceError(f"bptt returned {got}; expected three gradients, "
                                     + ", ".join("dLd" + ATTRS[c] for c in self.order))
            by_name = {ATTRS[c]: as_float_array(g, "dLd" + ATTRS[c]) for c, g in zip(self.order, out, strict=False)}
            self._note_dtype(by_name.values())
            shapes = self.arch.shapes(self._dims)
            grads = layout.grads_from_user(self.arch, by_name, shapes, H)
        changes = modified(before, {**{a: getattr(obj, a) for a in user}, "x": xs_l, "y": ys_l})
        return loss, grads, last, changes

    def _loss(self, obj, xs, ys) -> float:
        if callable(getattr(obj, "calculate_total_loss", None)):
            return as_loss(obj.calculate_total_loss([xs], [ys]), "calculate_total_loss")
        if callable(getattr(obj, "calculate_loss", None)):  # per word: times the word count
            return as_loss(obj.calculate_loss([xs], [ys]), "calculate_loss") * len(ys)
        raise InterfaceError(f"{self.cls.__name__} has bptt but neither calculate_total_loss "
                             f"nor calculate_loss: bpttcheck needs one to read your loss")

    def _last_state(self, obj, xs, H: int):
        """s[T-1] from forward_propagation's [o, s] (s[-1] is the zero start), if it has one."""
        fp = getattr(obj, "forward_propagation", None)
        if not callable(fp):
            return None
        out = fp(xs)
        if isinstance(out, (tuple, list)) and len(out) >= 2:
            s = np.asarray(out[1])
            if s.ndim == 2 and s.shape[1] == H and s.shape[0] >= len(xs):
                return s[len(xs) - 1].astype(np.float64)
        return None


def _attr_of(node) -> str | None:
    """'U' for dLdU, dU, self.dU, grad_U: the tutorial attribute a returned name is for."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Name):
        name = node.id
    else:
        return None
    for prefix in ("dLd", "dL_d", "grad_", "d_", "d"):
        if name.startswith(prefix) and name[len(prefix):].upper() in ATTRS.values():
            return name[len(prefix):].upper()
    return None
