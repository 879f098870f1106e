"""Assignment specs (CONTRACT 2.4): TOML, validated by pydantic (spec_models.py), errors that name
the field.

A spec of only the common keys with plain values — the probe's sizes, the limits, the
assignment's facts, the feedback switches, the tolerances, each as TOML writes it and within
its range — is read here without pydantic: importing it and building the spec's models is about
a third of the checker's CPU time in a one-shot `bpttcheck run` (benchmarks/RESULTS.md). Such a
spec reads to the same values pydantic gives it (tests/test_spec_plain.py holds the two equal);
anything else, an error included, is validated by pydantic, which names what is wrong."""
from __future__ import annotations

import copy
import math
import tomllib
from typing import Any

from bpttcheck import scoring
from bpttcheck.check.cases import DEFAULT_DIMS
from bpttcheck.errors import SpecError
from bpttcheck.feedback import VISIBILITIES
from bpttcheck.layout import Layout
from bpttcheck.sandbox.limits import Limits as WorkerLimits

# the models themselves (Spec, Sizes, Limits, ...) are spec_models', found here as before
_MODELS = ("Spec", "Sizes", "LayoutSpec", "Limits", "CGlobals", "Assignment", "Feedback",
           "Tolerances")


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from bpttcheck import spec_models
        return getattr(spec_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ the plain reading

def _is_int(lo: float, hi: float = math.inf):
    return lambda v: type(v) is int and lo <= v <= hi


def _is_str(v) -> bool:
    return type(v) is str


def _is_bool(v) -> bool:
    return type(v) is bool


def _is_rtol(v) -> bool:  # Tolerances: a float (strict) strictly between 0 and 1
    return type(v) is float and 0 < v < 1


def _is_timeout(v) -> bool:  # Limits.timeout: a number, 0 < t <= 3600
    return type(v) in (int, float) and 0 < v <= 3600


# table -> key -> the test a TOML value must pass to be read here as it is (a timeout given
# as an int becomes a float, as pydantic makes it); the ranges are spec_models' constraints
PLAIN: dict[str, dict[str, Any]] = {
    "sizes": {"T": _is_int(1, 1000), "X": _is_int(1, 100000), "H": _is_int(1, 100000),
              "Y": _is_int(1, 100000)},
    "limits": {"timeout": _is_timeout, "memory_mb": _is_int(64), "require_sandbox": _is_bool},
    "assignment": {"arch": _is_str, "style": _is_str, "seed": _is_int(-math.inf),
                   "title": _is_str, "file": _is_str,
                   "model": lambda v: v in ("any", "standard") and type(v) is str,
                   "forbid_numerical_gradients": _is_bool},
    "feedback": {"visibility": lambda v: type(v) is str and v in VISIBILITIES,
                 "show_fix": _is_bool, "show_evidence": _is_bool},
    "tolerances": {"loss_rtol": _is_rtol, "grad_rtol": _is_rtol, "fd_rtol": _is_rtol},
}

# Spec().model_dump(): what a spec that leaves everything out reads to
DEFAULTS: dict[str, Any] = {
    "assignment": {"arch": None, "style": None, "seed": 0, "title": "", "file": None,
                   "model": "any", "forbid_numerical_gradients": False},
    "feedback": {"visibility": "visible", "show_fix": True, "show_evidence": True},
    "tolerances": {"loss_rtol": None, "grad_rtol": None, "fd_rtol": None},
    "sizes": None,
    "layout": {"concat": None, "column_vectors": None, "transposed": False, "stacked": False,
               "gate_order": None, "stacked_names": ("W", "b"), "split": False},
    "names": {}, "returns": None, "points": {}, "checks": {},
    "limits": {"timeout": None, "memory_mb": WorkerLimits.memory_mb, "require_sandbox": False},
    "c_globals": None,
}
SIZES_DEFAULTS = {"T": DEFAULT_DIMS.T, "X": DEFAULT_DIMS.X, "H": DEFAULT_DIMS.H,
                  "Y": DEFAULT_DIMS.Y}


class PlainTable:
    """A table of a spec read without pydantic: its keys as attributes, like the model's."""

    def __init__(self, values: dict):
        self.__dict__.update({k: PlainTable(v) if isinstance(v, dict) and k not in
                              ("names", "points", "checks") else v for k, v in values.items()})

    def model_dump(self) -> dict:
        return {k: v.model_dump() if isinstance(v, PlainTable) else copy.deepcopy(v)
                for k, v in self.__dict__.items()}

    def __repr__(self) -> str:
        return f"PlainTable({self.model_dump()!r})"


class PlainSpec(PlainTable):
    def adapter_options(self) -> dict:
        return adapter_options(self)


def read_plain(data: dict) -> PlainSpec | None:
    """The spec ``data`` (parsed TOML) as pydantic would validate it, when every table and key
    in it is one of PLAIN's with a value that passes its test; None otherwise."""
    out = copy.deepcopy(DEFAULTS)
    for table, values in data.items():
        tests = PLAIN.get(table)
        if tests is None or not isinstance(values, dict):
            return None
        if table == "sizes":
            out["sizes"] = dict(SIZES_DEFAULTS)
        for key, v in values.items():
            test = tests.get(key)
            if test is None or not test(v):
                return None
            out[table][key] = float(v) if key == "timeout" else v
    arch = out["assignment"]["arch"]
    if arch is not None:  # Assignment._known_arch: an installed architecture
        from bpttcheck.plugins import architecture_names
        if arch not in architecture_names():
            return None
    return PlainSpec(out)


# ------------------------------------------------------------------ shared by both readings

def adapter_options(spec) -> dict:
    """The adapter options a spec declares (its layout, names, returns, C globals)."""
    o: dict = {}
    lay = spec.layout
    if lay.concat:
        o["concat"] = lay.concat
    if lay.column_vectors is not None:
        o["column_vectors"] = lay.column_vectors
    if lay.transposed:
        o["transposed"] = True
    if lay.split:
        o["split"] = True
    if spec.returns:
        o["returns"] = list(spec.returns)
    if lay.stacked:
        o.update(stacked=True, gate_order=lay.gate_order, stacked_names=list(lay.stacked_names))
    if spec.names:
        o["names"] = dict(spec.names)
    if spec.c_globals:
        o["c_globals"] = spec.c_globals.model_dump()
    return o


def _unknown_check(key: str) -> str | None:
    """Why a key names no check of any architecture or style, or None (for [checks] keys,
    check/severity.py)."""
    try:
        scoring.canonical_points({key: 0.0}, None, None, Layout())
    except ValueError as e:
        return str(e)
    return None


# what the checker keeps of one set of parameters at once, besides the per-step contributions:
# the parameters, the reference's and the user's gradients, finite-difference directions, the
# gradients of the planted bugs diagnosis compares (a generous count: measured peaks stay below)
COPIES = 24
WORKER_COPIES = 8  # the worker: parameters, gradients, the user's own temporaries


def memory_estimate(sizes, arch: str | None) -> tuple[int, int, str]:
    """(bytes the checker needs, bytes the worker needs, how they were counted) for a probe case
    of these sizes: float64 parameters of the architecture (the largest built-in one when it is
    not known: an LSTM), the per-step contributions diagnosis keeps (T x parameters), COPIES
    more full sets, and the activations over T steps."""
    from bpttcheck.archmeta import META, Dims
    d = Dims(T=sizes.T, X=sizes.X, H=sizes.H, Y=sizes.Y)
    metas = [META[arch]] if arch in META else list(META.values())
    counts = {m.name: sum(math.prod(sh) for sh in m.shapes(d).values()) for m in metas}
    name = max(counts, key=lambda k: counts[k])
    n = counts[name]
    acts = 8 * d.T * (8 * d.H + 2 * d.Y + d.X)
    checker = 8 * n * (d.T + COPIES) + 4 * acts
    worker = 8 * n * WORKER_COPIES + 2 * acts
    how = (f"{n:,} parameters of the {name.upper()} x (T = {d.T} per-step contributions kept for "
           f"diagnosis + {COPIES} copies) x 8 bytes, and the activations over T steps")
    return checker, worker, how


def _gib(n: int) -> str:
    return f"{n / (1 << 30):,.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.0f} MiB"


def load_spec(path: str):
    """The spec at ``path``: a spec_models.Spec, or a PlainSpec with the same values when
    read_plain can read it; SpecError saying what is wrong."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise SpecError(f"cannot read spec {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"spec {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise SpecError(f"spec {path} is not UTF-8 text") from None
    except (ValueError, RecursionError) as e:  # huge integers, absurdly deep nesting
        raise SpecError(f"spec {path} could not be read: {type(e).__name__}: "
                        f"{str(e)[:200]}") from None
    spec: Any = read_plain(data)
    if spec is None:
        from bpttcheck.spec_models import validate
        spec = validate(data, path)
    if spec.sizes is not None:
        checker, worker, how = memory_estimate(spec.sizes, spec.assignment.arch)
        limit = spec.limits.memory_mb << 20
        if max(checker, worker) > limit:
            z = spec.sizes
            raise SpecError(
                f"spec {path}: sizes T = {z.T}, X = {z.X}, H = {z.H}, Y = {z.Y} need about "
                f"{_gib(checker)} in the checker and {_gib(worker)} in the worker ({how}), more "
                f"than the memory limit of {spec.limits.memory_mb} MiB (limits.memory_mb): "
                f"a probe case this large checks nothing a small one does not; make the sizes "
                f"smaller")
    if spec.layout.stacked and not spec.layout.gate_order:
        raise SpecError(f"spec {path}: layout.stacked = true needs layout.gate_order "
                        "(e.g. \"ifgo\")")
    return spec
