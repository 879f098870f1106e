"""Assignment specs (CONTRACT 2.4): TOML, validated by pydantic, errors that name the field."""
from __future__ import annotations

import math
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bpttcheck.check.cases import DEFAULT_DIMS
from bpttcheck.errors import SpecError
from bpttcheck.sandbox.limits import Limits as WorkerLimits


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sizes(_Strict):
    """The probe case's sizes; each size left out is the checker's default (DEFAULT_DIMS)."""

    T: int = Field(DEFAULT_DIMS.T, ge=1, le=1000)
    X: int = Field(DEFAULT_DIMS.X, ge=1, le=100000)
    H: int = Field(DEFAULT_DIMS.H, ge=1, le=100000)
    Y: int = Field(DEFAULT_DIMS.Y, ge=1, le=100000)


class LayoutSpec(_Strict):
    concat: Literal["hx", "xh"] | None = None
    column_vectors: bool | None = None
    transposed: bool = False
    stacked: bool = False
    gate_order: str | None = None
    stacked_names: tuple[str, str] = ("W", "b")
    split: bool = False  # per gate Wh<g> (H, H) and Wx<g> (H, X)


class Limits(_Strict):
    timeout: float | None = Field(None, gt=0, le=3600)  # None: 10 s a call, 20 s to import
    memory_mb: int = Field(WorkerLimits.memory_mb, ge=64)
    # refuse to check anything where the OS sandbox (bwrap) is not available (exit 4)
    require_sandbox: bool = False


class CGlobals(_Strict):
    """The globals style of C (seed 000): which symbols play which role."""

    forward: str = "forward"
    backward: str = "backward"
    loss: str = "loss"
    inputs: str = "inputs"
    targets: str = "targets"
    h: str = "h"  # float h[T+1][H], h[0] the initial state
    params: dict[str, str] = {}  # canonical name -> global (default: the canonical name)
    grads: dict[str, str] = {}  # canonical name -> global (default: "d" + canonical)
    sizes_from: dict[Literal["T", "X", "H", "Y"], str] = {"T": "T_S", "X": "X_S", "H": "H_S",
                                                          "Y": "Y_S"}
    dtype: Literal["float32", "float64"] = "float32"


class Assignment(_Strict):
    arch: str | None = None  # rnn, lstm, gru or an installed plugin's architecture
    style: str | None = None
    seed: int = 0
    title: str = ""
    file: str | None = None  # `grade`: the file to check in each student's folder
    # "standard": a forward that is not the textbook cell fails forward.loss; "any" (the
    # default): a known variant is checked as that model, any other model by finite
    # differences of its own loss
    model: Literal["any", "standard"] = "any"

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v):
        from bpttcheck.plugins import architecture_names, unknown_arch
        if v is not None and v not in architecture_names():
            raise ValueError(unknown_arch(v))
        return v


class Spec(_Strict):
    assignment: Assignment = Assignment()
    sizes: Sizes | None = None
    layout: LayoutSpec = LayoutSpec()
    names: dict[str, str] = {}
    returns: list[str] | None = None  # Karpathy style: what lossFun returns, in order
    points: dict[str, float] = {}
    # severity of a check or a finding: "probe.large-logits" / "softmax.unstable" /
    # "bptt.truncated" / "behaviour.repeat" ... -> "fail" | "warning" (check/severity.py)
    checks: dict[str, Literal["fail", "warning"]] = {}
    limits: Limits = Limits()
    c_globals: CGlobals | None = None

    @field_validator("points")
    @classmethod
    def _non_negative(cls, v):
        for k, p in v.items():
            if p < 0:
                raise ValueError(f"points for {k!r} must not be negative")
            problem = _unknown_check(k)
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, v):
        from bpttcheck.check.severity import known_key
        for k in v:
            problem = known_key(k)
            if problem:
                raise ValueError(problem)
        return v

    def adapter_options(self) -> dict:
        o: dict = {}
        lay = self.layout
        if lay.concat:
            o["concat"] = lay.concat
        if lay.column_vectors is not None:
            o["column_vectors"] = lay.column_vectors
        if lay.transposed:
            o["transposed"] = True
        if lay.split:
            o["split"] = True
        if self.returns:
            o["returns"] = list(self.returns)
        if lay.stacked:
            o.update(stacked=True, gate_order=lay.gate_order, stacked_names=list(lay.stacked_names))
        if self.names:
            o["names"] = dict(self.names)
        if self.c_globals:
            o["c_globals"] = self.c_globals.model_dump()
        return o


# check families (the part of a check's name before the first dot) that can carry points
FAMILIES = ("forward", "grad", "fd", "behaviour", "probe", "layout", "implemented", "runs")


def _unknown_check(key: str) -> str | None:
    """Why a [points] key names no check, or None. Keys: "default", "<family>.*", or a check's
    full name; a gradient check's group must be a known parameter or layer-style group."""
    from bpttcheck.archmeta import META
    from bpttcheck.layer_api import UNITS
    if key == "default":
        return None
    family, _, rest = key.partition(".")
    if family not in FAMILIES or not rest:
        return (f"points key {key!r} names no check: use \"default\", a family such as "
                f"\"grad.*\" (families: {', '.join(FAMILIES)}) or a check's full name such as "
                f"\"grad.Whh\"")
    if family in ("grad", "fd") and rest not in ("*", "all"):
        groups = {n for m in META.values() for n in m.param_names}
        groups |= {f"{u.name}.{g}" for u in UNITS for g in u.grads}
        if rest not in groups:
            return (f"points key {key!r}: {rest!r} is not a parameter group (RNN: Wxh, Whh, Why, "
                    f"bh, by; LSTM: Wf, Wi, Wg, Wo, bf, bi, bg, bo, Wy, by; layer style: "
                    f"rnn_step.dx, lstm.dWh, ...)")
    return None


# what the checker keeps of one set of parameters at once, besides the per-step contributions:
# the parameters, the reference's and the user's gradients, finite-difference directions, the
# gradients of the planted bugs diagnosis compares (a generous count: measured peaks stay below)
COPIES = 24
WORKER_COPIES = 8  # the worker: parameters, gradients, the user's own temporaries


def memory_estimate(sizes: Sizes, arch: str | None) -> tuple[int, int, str]:
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


def load_spec(path: str) -> Spec:
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
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise SpecError(f"spec {path} is invalid:\n" + "\n".join(lines)) from None
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
