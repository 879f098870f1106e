"""The plugin interface, as code.

bpttcheck finds plugins through two entry-point groups; the built-in adapters and
architectures are registered there exactly as a third party's would be (see pyproject.toml):

``bpttcheck.adapters``
    A class that turns one style of user code into the common interface: a
    :class:`SequenceAdapter` (the whole sequence's loss and gradients in one call) or a
    :class:`UnitAdapter` (forward/backward pairs of the layer style). It runs inside the worker
    process, next to the user's code. Its capability attributes (:class:`Capabilities`) tell
    the engine and the diagnosis what they may assume of the style. Adapters for non-Python
    code (C shared libraries) follow the same interface with ``module`` = None and ``path`` the
    file; ``detect`` then looks at the path. bpttcheck.adapters.base has the shared bases
    (``Adapter``; ``PythonAdapter`` and ``CAdapter`` below it).

``bpttcheck.architectures``
    An :class:`Arch` (e.g. :class:`bpttcheck.oracle.common.Arch`): parameter names in
    canonical order (also the order of the C ABI's pointer arrays), state names, shapes from
    Dims, and the float64 reference ``run(P, xs, ys, state, bugs=frozenset(),
    reduction="sum") -> Trace``. Its ``name`` is the entry point's name, which is what
    ``--arch`` and a spec's ``assignment.arch`` accept.

Both are checked when loaded (plugins.py): a plugin that does not fit is a plugin error
naming its entry point, not the user's fault. This module imports nothing heavy: the worker
loads it before the user's code."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Protocol

from bpttcheck.archmeta import Dims
from bpttcheck.layout import Layout

Kind = Literal["sequence", "units"]
Language = Literal["python", "c"]
FixedSizes = Literal["none", "XHY", "TXHY"]

# the values a capability may take (the Literals above, for the check at load time)
CAPABILITY_VALUES: dict[str, tuple[str, ...]] = {
    "kind": ("sequence", "units"), "language": ("python", "c"),
    "fixed_sizes": ("none", "XHY", "TXHY")}


class Capabilities(Protocol):
    """Class attributes every adapter declares; the worker sends them in its load reply."""

    name: ClassVar[str]  # shown in reports, accepted by --style
    priority: ClassVar[int]  # higher wins when several detect() the same module
    kind: ClassVar[Kind]  # "sequence": SequenceAdapter; "units": UnitAdapter (layer style)
    language: ClassVar[Language]  # the user's language: decides the fix snippets shown
    fixed_sizes: ClassVar[FixedSizes]  # sizes the user's code fixes: none, X/H/Y (T free), all
    poisoned_buffers: ClassVar[bool]  # gradients land in buffers pre-filled with POISON
    entry: ClassVar[str]  # what the user calls their entry point, for messages


class SequenceAdapter(Capabilities, Protocol):
    """One style of whole-sequence code (Karpathy, functional, split, C)."""

    notes: list[dict]  # findings to report ({"id", "title", "evidence"})
    grad_dtype: str  # "float64" or "float32": what the user computes in

    @classmethod
    def detect(cls, module: Any, path: str) -> bool:
        """Whether ``module`` (None for a shared library) at ``path`` is in this style."""

    def __init__(self, module: Any, path: str, options: dict) -> None:
        """``options``: the spec's and the module's ``BPTTCHECK`` settings (arch, names, ...)."""

    def prepare(self, dims: Dims) -> None:
        """The sizes of the case about to run."""

    def describe(self) -> dict:
        """{"arch": str, "dims": Dims | None (sizes the code fixes), "layouts": [Layout, ...]
        candidates, most likely first, optionally "extra": {...} and "model": {"absent":
        [canonical names the model lacks], "state": "zeros" (h0 fixed at zero), "same_xy":
        bool (output size = vocabulary)}, which the checker honours (check/model.py)}."""

    def call(self, P: dict, xs: list[int], ys: list[int], state: tuple, layout: Layout,
             want_grads: bool) -> tuple[float, dict | None, tuple, list[str]]:
        """(loss, {canonical name: float64 array} or None, last state as a tuple of (H,)
        arrays or Nones, [names the call changed in place])."""


class UnitAdapter(Capabilities, Protocol):
    """The layer style: forward/backward pairs (bpttcheck.layer_api.Unit) checked one by one."""

    notes: list[dict]
    grad_dtype: str

    @classmethod
    def detect(cls, module: Any, path: str) -> bool: ...

    def __init__(self, module: Any, path: str, options: dict) -> None: ...

    def describe(self) -> dict:
        """{"arch": families joined by "+", "dims": None, "layouts": [],
        "extra": {"units": [unit names], "lonely": [functions without their partner],
        "names": {unit: {"forward", "backward", "grads": {canonical: user name},
        "blocks": {canonical: [user name of each gate block, i, f, o, g]}}} (optional: the
        names reports use, for styles whose names differ from the layer API's)}}."""

    def run_unit(self, unit: Any, args: list, ups: list) -> tuple:
        """(status, message, line, outputs, grads, modified) of forward then backward.
        ``modified``: the arrays handed to the user's code that it changed, as a list of
        names, or (built-in adapters) of {"function", "argument", "role": "input" |
        "parameter" | "upstream" | "cache", "change": largest change or None}. An adapter
        whose run_unit also takes ``spy`` (a callable given {"role:argument": array} as each
        array is handed over) gets the line that writes into it (sandbox/writes.py)."""

    def project(self, unit: Any, args: list, ups: list, dirs: list[list], offsets) -> list[float]:
        """sum(dout * out) of the forward at args + s * dirs[j], for each (j, s) in offsets."""


class Arch(Protocol):
    """An architecture (the ``bpttcheck.architectures`` group)."""

    name: str
    param_names: tuple[str, ...]
    state_names: tuple[str, ...]
    shapes: Callable[[Dims], dict[str, tuple[int, ...]]]
    run: Callable[..., Any]


METHODS = {"sequence": ("detect", "prepare", "describe", "call"),
           "units": ("detect", "describe", "run_unit", "project")}
_PROBE_DIMS = Dims(T=3, X=2, H=3, Y=7)


def adapter_problems(cls: Any) -> list[str]:
    """What keeps ``cls`` from being an adapter (empty if nothing)."""
    if not inspect.isclass(cls):
        return [f"it is a {type(cls).__name__}, not a class"]
    out = []
    for attr, typ in (("name", str), ("priority", int), ("poisoned_buffers", bool),
                      ("entry", str)):
        value = getattr(cls, attr, None)
        if not isinstance(value, typ):
            out.append(f"{attr} should be a {typ.__name__}, not {value!r}")
    for attr, allowed in CAPABILITY_VALUES.items():
        if getattr(cls, attr, None) not in allowed:
            out.append(f"{attr} should be one of {', '.join(allowed)}, "
                       f"not {getattr(cls, attr, None)!r}")
    for method in METHODS.get(str(getattr(cls, "kind", "sequence")), METHODS["sequence"]):
        if not callable(getattr(cls, method, None)):
            out.append(f"it has no method {method}()")
    return out


def arch_problems(arch: Any, name: str) -> list[str]:
    """What keeps ``arch`` (registered as ``name``) from being an architecture."""
    out = []
    if getattr(arch, "name", None) != name:
        out.append(f"its name is {getattr(arch, 'name', None)!r}, not the entry point's {name!r}")
    for attr in ("param_names", "state_names"):
        names = getattr(arch, attr, None)
        if not (isinstance(names, tuple) and names and all(isinstance(n, str) for n in names)):
            out.append(f"{attr} should be a non-empty tuple of strings, not {names!r}")
    for attr in ("shapes", "run"):
        if not callable(getattr(arch, attr, None)):
            out.append(f"it has no {attr}() function")
    if out:
        return out
    try:
        shapes = arch.shapes(_PROBE_DIMS)
    except Exception as e:  # noqa: BLE001 - a plugin's bug, whatever it is
        return [f"shapes({_PROBE_DIMS}) raised {type(e).__name__}: {e}"]
    if not isinstance(shapes, dict) or set(shapes) != set(arch.param_names):
        return [f"shapes() should give a shape for each of {', '.join(arch.param_names)}"]
    return out
