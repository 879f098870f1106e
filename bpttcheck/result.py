"""The result of a check as plain data (dataclasses that convert their fields as pydantic
models did: datamodel.py): what the JSON report contains and what every other report renders.
CONTRACT §5 fixes the core fields."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from bpttcheck.datamodel import Model as _Model

# "warn": the check found something worth fixing that is no error of the gradient (a softmax
# that overflows on large logits): the verdict stays pass (check/severity.py)
# "not-run": the check was planned but the run stopped (an error, a timeout) before it; only
# checks carry it, next to the error that stopped them
Status = Literal["pass", "fail", "skip", "warn", "not-run"]


@dataclass(kw_only=True)
class FDResult(_Model):
    status: Status
    analytic: float
    numeric: float
    error: float
    tolerance: float
    noise: float
    taylor_rates: list[float | None]
    rate_verdict: str
    step: float


@dataclass(kw_only=True)
class GroupResult(_Model):
    name: str  # canonical name
    # what the user calls it: Layout.group_name ("W_f", "W rows 4:8 (forget gate)") or the
    # unit style's own name; every report shows this, none derives it again
    user_name: str
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


@dataclass(kw_only=True)
class CheckResult(_Model):
    name: str  # unique: "forward.loss", "grad.Whh", "fd.Whh", "behaviour.repeat", ...
    status: Status
    message: str
    seconds: float = 0.0
    # a failure that is a warning unless a spec says otherwise (check/severity.py): an array
    # of the caller's written in place that the gradients do not depend on
    _warns: bool = field(default=False, init=False, repr=False)


@dataclass(kw_only=True)
class Location(_Model):
    """Where the user's code goes wrong (check/locate.py): the file, line and loop step of the
    first assignment that leaves the reference's path, its source, and the reference quantity
    it stands for. C code gets the quantity only (no line is guessed)."""
    file: str | None = None
    line: int | None = None
    step: int | None = None
    name: str | None = None  # the user's variable written on that line
    source: str | None = None
    quantity: str | None = None
    expected: str | None = None
    differs_by: float | None = None
    # for a repair (repair.py), not part of the report: the lines that write the located
    # variable in that step, and the user's own expression for each reference quantity
    _lines: tuple[int, ...] = field(default=(), init=False, repr=False)
    _key: str = field(default="", init=False, repr=False)  # the reference quantity's name (locate.py's label)
    _hints: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    # rewrites of the line whose value at the located step is the reference's (locate.py):
    # (statement, why[, named: the value is the quantity the line is named for])
    _rewrites: list[tuple] = field(default_factory=list, init=False, repr=False)

    def text(self) -> str:
        """One sentence for a student: the line, the step, what the reference has there."""
        where = []
        if self.line is not None:
            where.append(f"{os.path.basename(self.file or '')} line {self.line}")
        if self.step is not None:
            where.append(f"t = {self.step}")
        head = ", ".join(where)
        if self.line is None:  # C: no line is traced; the quantity the bug changes first
            return (f"the first quantity your code gets wrong is {self.quantity}; the reference "
                    f"has {self.expected} (C code is not traced line by line: look for where "
                    f"your code computes it)")
        out = f"{head}: `{self.source}`" if self.source else head
        if self.quantity:
            out += (" — " if out else "") + f"this computes {self.quantity}"
            if self.expected:
                out += f"; the reference has {self.expected} here"
            if self.differs_by is not None:
                out += f"; your value differs from it by up to {self.differs_by:.3g}"
        return out


@dataclass(kw_only=True)
class Repair(_Model):
    """A rewrite of the located line(s) (repair.py), checked on a copy of the user's code:
    ``verified`` when the copy passes every check; otherwise the rewrite was seen to give the
    line the reference's value, and ``still_failing`` lists what a second bug still breaks
    (``next_line``: where the locator then points)."""
    file: str
    lines: list[int]
    before: list[str]
    after: list[str]
    verified: bool
    checks: int
    still_failing: list[str] = field(default_factory=list)
    why: str = ""
    next_line: int | None = None

    def snippet(self) -> str:
        """The change as a fix snippet in the user's own code, and what it was seen to do."""
        name = os.path.basename(self.file)
        rows = []
        for n, b, a in zip(self.lines, self.before, self.after, strict=True):
            rows += [f"{name}:{n}", f"-   {b.strip()}", f"+   {a.strip()}"]
        if self.verified:
            said = (f"# with this change your code passes all {self.checks} checks (verified "
                    f"on a copy of your code)")
        else:
            n = len(self.still_failing)
            said = (f"# with this change the line computes what the reference does there, but "
                    f"{n} of {self.checks} checks still fail ({', '.join(self.still_failing[:6])}"
                    f"{', ...' if n > 6 else ''}): a second bug"
                    + (f", first seen at {name} line {self.next_line}" if self.next_line
                       else "") + " (checked on a copy of your code)")
        return "\n".join([*rows, said])


@dataclass(kw_only=True)
class Diagnosis(_Model):
    id: str
    confidence: float
    groups: list[str]
    title: str
    evidence: str
    fix: str
    exact: bool = False
    location: Location | None = None
    repair: Repair | None = None
    # the mutant (catalogue ids with variants) that reproduced the user's output, for the
    # locator; not part of the report
    _planted: tuple[str, ...] = field(default=(), init=False, repr=False)


@dataclass(kw_only=True)
class Note(_Model):
    id: str
    title: str
    evidence: str


@dataclass(kw_only=True)
class ErrorInfo(_Model):
    kind: str
    message: str
    line: str | None = None
    output: str = ""


@dataclass(kw_only=True)
class Flow(_Model):
    """Gradient flow through time, one entry per step t = 0..T-1.

    ``reference`` is |dL/dh[t]| of the reference (the total gradient reaching the hidden state
    after step t). ``user_preact``/``reference_preact`` are |dL/da[t]|, the gradient at step t's
    pre-activations, read from the column of the input-weight gradient that belongs to step t's
    input token on a probe where each step's token is distinct; a step whose token repeats
    gives None. ``loss_steps`` is the reference loss of each step."""

    reference: list[float]
    loss_steps: list[float]
    user_preact: list[float | None] = field(default_factory=list)
    reference_preact: list[float | None] = field(default_factory=list)


@dataclass(kw_only=True)
class Heatmap(_Model):
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


@dataclass(kw_only=True)
class CheckScore(_Model):
    """What one scored check earned. ``status`` "not-run": the check is part of the assignment
    but did not run on this code (it failed to load, timed out before it, returned no state)."""

    name: str
    status: Status
    earned: float
    possible: float


@dataclass(kw_only=True)
class Score(_Model):
    """The score of a run (bpttcheck/scoring.py): ``possible`` is the assignment's maximum, the
    same for every submission; ``checks`` lists every check that carries points, in report
    order, the ones that did not run included. ``note`` says how the maximum was decided when
    the assignment does not fix it (no architecture known, or a class's maximum)."""

    earned: float
    possible: float
    percent: float
    checks: list[CheckScore] = field(default_factory=list)
    note: str = ""


@dataclass(kw_only=True)
class Report(_Model):
    verdict: Literal["pass", "fail", "error"]
    arch: str | None = None
    path: str
    style: str | None = None
    groups: list[GroupResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    # findings of checks whose severity is "warning" (check/severity.py): the diagnoses' shape,
    # the verdict unaffected
    warnings: list[Diagnosis] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    error: ErrorInfo | None = None
    evaluations: int = 0
    seed: int | None = 0  # None when the seed is hidden (BPTTCHECK_SECRET): see case_tag
    case_tag: str | None = None  # names a hidden case without revealing its seed
    sizes: dict[str, int] | None = None
    dtype: str | None = None
    reduction: str | None = None
    layout: str | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    loss: dict[str, float] | None = None
    flow: Flow | None = None
    parts: dict[str, str] = field(default_factory=dict)  # layer style: verdict per family (rnn, lstm)
    heatmaps: list[Heatmap] = field(default_factory=list)  # only when a report needs them (--html)
    score: Score | None = None  # `run` and `grade` fill it in (scoring.attach)
    version: str = ""
    # the assignment's feedback controls (spec [assignment] title, [feedback]; feedback.py)
    title: str = ""
    withheld: list[str] = field(default_factory=list)  # "fix", "evidence": left out by the spec

    def shown(self, group: str) -> str:
        """A group (a canonical name, as diagnoses list them) as the user knows it: its
        GroupResult's user_name when that differs, else the name itself."""
        for g in self.groups:
            if g.name == group:
                return g.user_name
        return group

    def groups_shown(self, d: Diagnosis) -> str:
        """A diagnosis' groups as the user knows them, for a report's text."""
        return ", ".join(self.shown(g) for g in d.groups)

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 3}[self.verdict]
