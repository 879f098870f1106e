"""The result of a check as plain data (pydantic models): what the JSON report contains and
what every other report renders. CONTRACT §5 fixes the core fields."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# "warn": the check found something worth fixing that is no error of the gradient (a softmax
# that overflows on large logits): the verdict stays pass (check/severity.py)
# "not-run": the check was planned but the run stopped (an error, a timeout) before it; only
# checks carry it, next to the error that stopped them
Status = Literal["pass", "fail", "skip", "warn", "not-run"]


class FDResult(BaseModel):
    status: Status
    analytic: float
    numeric: float
    error: float
    tolerance: float
    noise: float
    taylor_rates: list[float | None]
    rate_verdict: str
    step: float


class GroupResult(BaseModel):
    name: str  # canonical name
    user_name: str  # what the user calls it
    status: Status
    max_abs_error: float
    max_rel_error: float
    worst_index: list[int]
    worst_user: float
    worst_ref: float
    tolerance: float
    scale: float
    n_bad: int
    n: int
    fd: FDResult | None = None
    clipped_at: float | None = None


class CheckResult(BaseModel):
    name: str  # unique: "forward.loss", "grad.Whh", "fd.Whh", "behaviour.repeat", ...
    status: Status
    message: str
    seconds: float = 0.0


class Diagnosis(BaseModel):
    id: str
    confidence: float
    groups: list[str]
    title: str
    evidence: str
    fix: str
    exact: bool = False


class Note(BaseModel):
    id: str
    title: str
    evidence: str


class ErrorInfo(BaseModel):
    kind: str
    message: str
    line: str | None = None
    output: str = ""


class Flow(BaseModel):
    """Gradient flow through time, one entry per step t = 0..T-1.

    ``reference`` is |dL/dh[t]| of the reference (the total gradient reaching the hidden state
    after step t). ``user_preact``/``reference_preact`` are |dL/da[t]|, the gradient at step t's
    pre-activations, read from the column of the input-weight gradient that belongs to step t's
    input token on a probe where each step's token is distinct; a step whose token repeats
    gives None. ``loss_steps`` is the reference loss of each step."""

    reference: list[float]
    loss_steps: list[float]
    user_preact: list[float | None] = Field(default_factory=list)
    reference_preact: list[float | None] = Field(default_factory=list)


class Heatmap(BaseModel):
    """One parameter group as a matrix in the canonical layout (CONTRACT §1): rows and columns
    keep their meaning (row i = hidden unit i, column j = input token j, ...). A bias is one row.
    ``diff`` = user - reference; ``fd_minus_user`` = Richardson-extrapolated central differences
    of the user's own loss minus the user's gradient (None when the model was too big to
    difference entry by entry). ``tolerance`` is the group's absolute tolerance at its worst
    entry and ``fd_tolerance`` the measured accuracy of the differences, for the colour scales."""

    group: str
    user_name: str
    row_axis: str  # "hidden unit", "output token", ...
    col_axis: str  # "input token", "hidden unit", "[h; x] (h first)", ...
    row_labels: list[str]
    col_labels: list[str]
    diff: list[list[float]]
    fd_minus_user: list[list[float]] | None = None
    tolerance: float
    fd_step: float | None = None
    fd_tolerance: float | None = None  # what the entry-wise differences themselves carry


class Report(BaseModel):
    verdict: Literal["pass", "fail", "error"]
    arch: str | None = None
    path: str
    style: str | None = None
    groups: list[GroupResult] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    # findings of checks whose severity is "warning" (check/severity.py): the diagnoses' shape,
    # the verdict unaffected
    warnings: list[Diagnosis] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    error: ErrorInfo | None = None
    evaluations: int = 0
    seed: int | None = 0  # None when the seed is hidden (BPTTCHECK_SECRET): see case_tag
    case_tag: str | None = None  # names a hidden case without revealing its seed
    sizes: dict[str, int] | None = None
    dtype: str | None = None
    reduction: str | None = None
    layout: str | None = None
    tolerances: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    loss: dict[str, float] | None = None
    flow: Flow | None = None
    parts: dict[str, str] = Field(default_factory=dict)  # layer style: verdict per family (rnn, lstm)
    heatmaps: list[Heatmap] = Field(default_factory=list)  # only when a report needs them (--html)
    version: str = ""

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 3}[self.verdict]
