"""The result of a check as plain data (pydantic models): what the JSON report contains and
what every other report renders. CONTRACT §5 fixes the core fields."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

Status = Literal["pass", "fail", "skip"]


class FDResult(BaseModel):
    status: Status
    analytic: float
    numeric: float
    error: float
    tolerance: float
    noise: float
    taylor_rates: list[Optional[float]]
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
    fd: Optional[FDResult] = None
    clipped_at: Optional[float] = None


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
    line: Optional[str] = None
    output: str = ""


class Flow(BaseModel):
    """|dL/dh[t]| per step, user (when the user's code exposes it) and reference."""

    reference: list[float]
    loss_steps: list[float]


class Report(BaseModel):
    verdict: Literal["pass", "fail", "error"]
    arch: Optional[str] = None
    path: str
    style: Optional[str] = None
    groups: list[GroupResult] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    error: Optional[ErrorInfo] = None
    evaluations: int = 0
    seed: int = 0
    sizes: Optional[dict[str, int]] = None
    dtype: Optional[str] = None
    reduction: Optional[str] = None
    layout: Optional[str] = None
    tolerances: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    loss: Optional[dict[str, float]] = None
    flow: Optional[Flow] = None
    version: str = ""

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 3}[self.verdict]
