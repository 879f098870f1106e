"""What adapters share: the base classes (Adapter; PythonAdapter and CAdapter below it), and
reading user return values into float64 arrays with messages that say what was expected."""
from __future__ import annotations

import ctypes
import inspect
import os
import re
from typing import Any

import numpy as np

from bpttcheck.archmeta import Dims
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout


class NotImplementedByUser(InterfaceError):
    """The entry point exists but is a stub (returns None, raises NotImplementedError)."""


def as_float_array(obj: Any, label: str) -> np.ndarray:
    if obj is None:
        raise NotImplementedByUser(f"{label} is None: is the function still a stub?")
    if isinstance(obj, (dict, list, tuple, str, bytes)) and not isinstance(obj, np.ndarray):
        if isinstance(obj, (list, tuple)):
            try:
                return np.asarray(obj, dtype=np.float64)
            except (TypeError, ValueError):
                pass
        raise InterfaceError(f"{label} should be a numpy array, got {type(obj).__name__}")
    try:
        a = np.asarray(obj)
        if a.dtype == object or not np.issubdtype(a.dtype, np.number):
            raise TypeError
    except (TypeError, ValueError):
        raise InterfaceError(
            f"{label} should be a numpy array of numbers, got {type(obj).__name__}") from None
    if np.iscomplexobj(a):
        raise InterfaceError(f"{label} is complex ({a.dtype}); gradients of a real loss are real: "
                             f"drop the complex arithmetic (or return .real if it is exact)")
    return a


def as_loss(obj: Any, label: str = "loss") -> float:
    a = as_float_array(obj, label)
    if a.size != 1:
        raise InterfaceError(f"{label} should be a single number, got an array of shape {a.shape}")
    return float(a.reshape(()))


def n_positional(fn) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return -1
    return sum(1 for p in sig.parameters.values()
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


class Adapter:
    """What every adapter shares (hookspecs.SequenceAdapter): the capability defaults, the
    notes, and the dtype the user computes in."""

    name = "adapter"
    priority = 0
    # capabilities (hookspecs.Capabilities): what the engine and the diagnosis may assume
    kind = "sequence"  # whole-sequence loss and gradients; "units" for layer-style pairs
    language = "python"
    fixed_sizes = "none"  # "none", "XHY" (T free) or "TXHY": sizes the user's code fixes
    poisoned_buffers = False  # gradients are written into buffers pre-filled with POISON
    entry = "your function"  # what the user calls their entry point, for messages

    def __init__(self, module, path: str, options: dict):
        self.module = module
        self.path = path
        self.options = options
        self.notes: list[dict] = []
        self.grad_dtype = "float64"
        self.arch_mismatch: tuple[str, str] | None = None  # (declared, what the names suggest)

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return False

    def prepare(self, dims: Dims) -> None:
        """Called before each call with the case's sizes."""
        self._dims, self._H = dims, dims.H

    def describe(self) -> dict:
        """{"arch": str, "dims": Dims|None (fixed sizes), "layouts": [Layout...],
        "notes": [...]} — layouts are candidates, most likely first."""
        raise NotImplementedError

    def call(self, P, xs, ys, state, layout: Layout, want_grads: bool):
        raise NotImplementedError


class PythonAdapter(Adapter):
    """Base of the built-in Python adapters."""

    name = "python"

    def _note_dtype(self, arrays) -> None:
        dts = {np.dtype(a.dtype) for a in arrays if isinstance(a, np.ndarray)}
        if dts and all(d == np.float32 for d in dts):
            self.grad_dtype = "float32"
        elif dts and all(np.issubdtype(d, np.floating) for d in dts):
            self.grad_dtype = "float64" if np.dtype(np.float64) in dts else str(max(dts))


POISON = -31337.0  # exact in float32; far from any gradient of a probe case


class CAdapter(Adapter):
    """Base of the C adapters: a shared library loaded through ctypes (``module`` is None),
    called in float32 or float64, with output buffers pre-filled with POISON so a function
    that adds into gradients it never zeroed is caught."""

    name = "c-library"
    language = "c"
    poisoned_buffers = True

    def __init__(self, module, path: str, options: dict):
        super().__init__(module, path, options)
        self.lib = load_library(path)

    def use_dtype(self, dtype) -> None:
        """Compute in ``dtype`` (np.float32 or np.float64) from now on."""
        self.dt = np.dtype(dtype).type
        self.ct = ctypes.c_float if self.dt == np.float32 else ctypes.c_double
        self.grad_dtype = "float32" if self.dt == np.float32 else "float64"

    def poisoned(self, shape) -> np.ndarray:
        return np.full(shape, POISON, dtype=self.dt)

    def pointer(self, a: np.ndarray):
        return a.ctypes.data_as(ctypes.POINTER(self.ct))


def load_library(path: str):
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        missing = re.search(r"undefined symbol: (\w+)", str(e))
        if missing:  # a project of several .c files, checked one file at a time
            raise InterfaceError(
                f"your C code uses `{missing.group(1)}`, which this file does not define: it is "
                "probably in another .c file of your project. bpttcheck compiles one file; build "
                "the whole project as one library and check that instead: "
                "`cc -O2 -shared -fPIC $(bpttcheck include) *.c -o model.so -lm`, then "
                "`bpttcheck run model.so`") from None
        raise InterfaceError(f"cannot load {os.path.basename(path)}: {e}") from None


def dims_from_shapes(arch: str, shapes: dict[str, tuple]) -> Dims | None:
    """Sizes implied by canonical-named arrays of a module (Karpathy globals)."""
    try:
        if arch == "rnn":
            H, X = shapes["Wxh"]
            return Dims(T=0, X=X, H=H, Y=shapes["Why"][0])
        Wy = shapes["Wy"]
        H = Wy[1]
        wname = "Wf" if arch == "lstm" else "Wz"
        return Dims(T=0, X=shapes[wname][1] - H, H=H, Y=Wy[0])
    except (KeyError, IndexError, ValueError):
        return None


def snapshot(named: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.copy() if isinstance(v, np.ndarray) else list(v) if isinstance(v, list) else v)
            for k, v in named.items()}


def modified(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    """Names whose value the user's call changed in place -> the largest change of an entry
    (None where it is no number: a new shape, a list, NaN). A dict, so code that only wants
    the names (``', '.join(changed)``, ``not changed``) reads it as it read the list."""
    out: dict[str, float | None] = {}
    for k, b in before.items():
        a = after[k]
        if isinstance(b, np.ndarray):
            if a.shape != b.shape:
                out[k] = None
            elif not np.array_equal(a, b, equal_nan=True):
                with np.errstate(all="ignore"):
                    big = float(np.nanmax(np.abs(np.asarray(a, dtype=np.float64) - b)))
                out[k] = big if np.isfinite(big) else None
        elif a != b:
            out[k] = None
    return out


def module_strings(module) -> set[str]:
    """String constants in the module's source: where parameter names like "W_f" are spelled."""
    import ast
    src = getattr(module, "__bpttcheck_source__", None)
    if src is None:
        return set()
    return {n.value for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) < 40}
