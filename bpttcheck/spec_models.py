"""Assignment specs (CONTRACT 2.4) as pydantic models: the full validation, with errors that name
the field. spec.load_spec reads a spec of only the common keys with plain values without them
(importing pydantic and building these models is about a third of a one-shot `bpttcheck run`'s
checker CPU); everything else comes here."""
from __future__ import annotations

import contextlib
import difflib
from typing import Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bpttcheck import scoring
from bpttcheck.check.cases import DEFAULT_DIMS
from bpttcheck.errors import InterfaceError, SpecError
from bpttcheck.layout import Layout, gate_order
from bpttcheck.sandbox.limits import Limits as WorkerLimits


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


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
    # gradients computed by finite differences or the complex step of the submission's own
    # loss fail behaviour.numerical-gradients (check/numgrad.py); off: not measured at all
    forbid_numerical_gradients: bool = False

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v):
        from bpttcheck.plugins import architecture_names, unknown_arch
        if v is not None and v not in architecture_names():
            raise ValueError(unknown_arch(v))
        return v


class Feedback(_Strict):
    """What a student is shown (bpttcheck/feedback.py applies it to every report)."""

    # Gradescope's visibility of results.json and of each test
    visibility: Literal["visible", "hidden", "after_due_date", "after_published"] = "visible"
    # strict: TOML has booleans; "no" or 0 is a mistake to point out, not to guess at
    show_fix: bool = Field(True, strict=True)  # false: diagnoses' and warnings' fixes left out
    show_evidence: bool = Field(True, strict=True)  # false: their evidence (id, title stay)


class Tolerances(_Strict):
    """Relative tolerances that replace the ones derived from the code's dtype (each left out
    keeps its dtype's default; the report prints the value used and says it came from here)."""

    # forward.loss, forward.last_<state> (and whether the loss is the standard model's)
    loss_rtol: float | None = Field(None, gt=0, lt=1, strict=True)
    grad_rtol: float | None = Field(None, gt=0, lt=1, strict=True)  # grad.<group>, entrywise
    fd_rtol: float | None = Field(None, gt=0, lt=1, strict=True)  # fd.*: share of the terms


class Spec(_Strict):
    assignment: Assignment = Assignment()
    feedback: Feedback = Feedback()
    tolerances: Tolerances = Tolerances()
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
    def _non_negative(cls, v, info: ValidationInfo):
        for k, p in v.items():
            if p < 0:
                raise ValueError(f"points for {k!r} must not be negative")
        # keys in the student's names become check names (README, "Points")
        a = info.data.get("assignment") or Assignment()
        return scoring.canonical_points(v, a.arch, a.style, _layout_of(info.data, a.arch))

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
        from bpttcheck.spec import adapter_options
        return adapter_options(self)


def _layout_of(data: dict, arch: str | None) -> Layout:
    """The layout a spec declares (its names, stacked arrays, split halves), for the keys
    that use the student's names; a gate order that is no permutation is left for the
    adapter to report."""
    lay, names = data.get("layout") or LayoutSpec(), data.get("names") or {}
    stacked = None
    if lay.stacked and lay.gate_order:
        with contextlib.suppress(InterfaceError):
            stacked = gate_order(arch or ("gru" if len(lay.gate_order) == 3 else "lstm"),
                                 lay.gate_order)
    return Layout(names=dict(names), stacked=stacked, stacked_names=tuple(lay.stacked_names),
                  split=lay.split, transposed=lay.transposed)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class whose key ``loc[-1]`` is (Spec for a top-level key), or None."""
    model: type[BaseModel] = Spec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        inner = [a for a in (get_args(field.annotation) or (field.annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return None
        model = inner[0]
    return model


def _unknown_key(loc: tuple) -> str:
    """An unknown key's message: the valid keys where it stands, and the closest one."""
    model = _model_at(loc)
    if model is None:
        return "unknown key"
    valid = list(model.model_fields)
    where = "at the top level" if len(loc) == 1 else f"in [{'.'.join(map(str, loc[:-1]))}]"
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    return (f"unknown key {str(loc[-1])!r}; valid keys {where}: {', '.join(valid)}"
            + (f" (did you mean {close[0]!r}?)" if close else ""))


def validate(data: dict, path: str) -> Spec:
    """The spec read from ``path`` (its TOML as ``data``), or SpecError naming every field
    that is wrong."""
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = _unknown_key(err["loc"]) if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {loc}: {msg}")
        raise SpecError(f"spec {path} is invalid:\n" + "\n".join(lines)) from None
