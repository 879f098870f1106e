"""How long the user's code may run: each call within the per-call limit (`--timeout`,
`[limits] timeout`), and the whole check within a budget that follows from how long one call
takes and how many calls the check plans, with a margin.

Plain arithmetic on measured seconds, no processes: session.py measures and enforces, the
checkers plan (and take fewer calls when the plan would be long), and the messages of a
timeout say what was measured."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MARGIN = 4.0  # the check's calls may take this many times what the measured call says
GRACE = 2.0  # seconds past a limit before the worker is killed: its own clock dumps first
# calls that are only extra evidence (per-group finite differences of a model whose groups
# the reference already judges) run while the whole check's calls would take at most this
# many per-call limits: 60 s at the default 10 s a call
EXTRA_EVIDENCE_LIMITS = 6.0


def duration(seconds: float) -> str:
    """A duration as a person reads it: 0.31 s, 2.0 s, 58 s, ~2 min, ~1.5 h."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def round_up(seconds: float) -> int:
    """The first of 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600 s (then whole hours)
    that is at least ``seconds``."""
    for step in (5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if seconds <= step:
            return step
    return int(math.ceil(seconds / 3600) * 3600)


def suggested_limit(seconds: float) -> int:
    """A round per-call limit comfortably above ``seconds`` (3x it, rounded up)."""
    return round_up(3 * seconds)


@dataclass
class CallBudget:
    """The time account of one check. ``measured`` takes the round trip of each single call
    of the user's code; ``plan`` the number of calls the whole check expects (those made
    included). The budget is MARGIN x (a call's time) x (the calls planned) + one per-call
    limit; only time spent waiting for the user's code counts against it."""

    call_timeout: float
    singles: list[float] = field(default_factory=list)  # round trips of single calls
    planned: int = 0  # calls the whole check expects, once it has said so
    made: int = 0  # calls of the user's code the worker finished
    spent: float = 0.0  # seconds spent waiting for the user's code

    @property
    def call_seconds(self) -> float | None:
        """What one call takes: the median of the single calls measured (the first call, then
        the repeat and the large-logits probe), or None before any."""
        import statistics  # here: the early worker's start does not wait for it
        return statistics.median(self.singles) if self.singles else None

    def measured(self, seconds: float) -> None:
        self.singles.append(seconds)

    def plan(self, calls: int) -> None:
        """The whole check expects ``calls`` calls in all (it may say so again, with fewer)."""
        self.planned = calls

    def expected_calls(self, more: int = 0) -> int:
        return max(self.planned, self.made + more)

    def allowance(self, more: int = 0) -> float:
        """Seconds the whole check's calls may take, when ``more`` calls are about to be made
        (a request beyond the plan extends it: the plan sets the message, not a trap)."""
        t = self.call_seconds
        if t is None:
            return math.inf
        return self.call_timeout + MARGIN * t * self.expected_calls(more)

    def remaining(self, more: int = 0) -> float:
        return self.allowance(more) - self.spent

    def spend(self, seconds: float, calls: int) -> None:
        self.spent += seconds
        self.made += calls

    def estimate(self, calls: int) -> float | None:
        t = self.call_seconds
        return None if t is None else t * calls

    def affordable(self, more: int = 0) -> bool:
        """Whether the whole check (the calls planned, and ``more`` that are only extra
        evidence) stays within EXTRA_EVIDENCE_LIMITS per-call limits of calls."""
        est = self.estimate(self.expected_calls() + more)
        return est is None or est <= EXTRA_EVIDENCE_LIMITS * self.call_timeout

    def describe(self) -> str:
        """'one call takes 2.0 s; the check needs 58 calls (~2 min)', or '' before any call."""
        t = self.call_seconds
        if t is None:
            return ""
        n = self.expected_calls()
        return (f"one call takes {duration(t)}; the check needs {n} calls "
                f"({duration(t * n)})")
