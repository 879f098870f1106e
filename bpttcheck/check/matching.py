"""Matching the user's output against the reference with bugs planted, on the first case and
on further ones (other seeds, other sizes where sizes are free)."""
from __future__ import annotations

import contextlib

import numpy as np

from bpttcheck.check import catalogue
from bpttcheck.check.cases import make_case
from bpttcheck.check.findings import Findings, Observation
from bpttcheck.check.numerics import MATCH_SLACK, compare, oracle_rtol
from bpttcheck.check.probe import Probe
from bpttcheck.errors import UserCodeError
from bpttcheck.oracle.common import Dims
from bpttcheck.result import Diagnosis

EXTRA_CASES = 2  # cases beyond the first on which an exact match is confirmed
# (arch, variant, bug) -> (it leaves the loss as it is, the groups it leaves as they are)
_STRUCTURE: dict = {}


def same_values(u: np.ndarray, m: np.ndarray, rtol: float) -> tuple[bool, float]:
    """Equal within rtol, with NaN/inf required at the same places (a buggy softmax can make
    both the user's and the mutant's values non-finite). Returns (match, max abs difference)."""
    fu, fm = np.isfinite(u), np.isfinite(m)
    if not np.array_equal(fu, fm):
        return False, float("inf")
    if not fu.any():
        return True, 0.0
    c = compare(u[fu], m[fm], rtol)
    return c.passed, c.max_abs_error


def same_and_diff(u: np.ndarray, m: np.ndarray, rtol: float) -> tuple[bool, float]:
    """same_values(u, m, rtol), computing only its two results: the bound of numerics.compare
    on the finite entries and the largest absolute difference there."""
    u = np.asarray(u, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if u.shape != m.shape:
        return same_values(u, m, rtol)
    fu, fm = np.isfinite(u), np.isfinite(m)
    if not np.array_equal(fu, fm):
        return False, float("inf")
    if not fu.all():
        u, m = u[fu], m[fm]
    if u.size == 0:
        return True, 0.0
    size = np.abs(m)
    with np.errstate(over="ignore", invalid="ignore"):
        err = np.abs(u - m)
    return (bool(np.all(err <= rtol * (size + float(np.max(size))))),
            float(np.max(np.where(np.isfinite(err), err, np.inf))))


def same(u: np.ndarray, m: np.ndarray, rtol: float) -> bool:
    """same_values(u, m, rtol)[0], without the rest of the comparison: the bound of
    numerics.compare (|u - m| <= rtol (|m| + max |m|)) on the finite entries, nothing else."""
    u = np.asarray(u, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if u.shape != m.shape:
        return same_values(u, m, rtol)[0]
    fu, fm = np.isfinite(u), np.isfinite(m)
    if not np.array_equal(fu, fm):
        return False
    if not fu.all():
        u, m = u[fu], m[fm]
    if u.size == 0:
        return True
    size = np.abs(m)
    return bool(np.all(np.abs(u - m) <= rtol * (size + float(np.max(size)))))


class Matcher:
    def __init__(self, probe: Probe, f: Findings, unit: float | None = None):
        self.probe, self.f, self.o = probe, f, f.observation
        self.arch = probe.arch
        self.dtype = f.dtype
        d = self.o.case.dims
        # a perturbed forward (check/perturbation.py) widens matching as it widens the checks;
        # ``unit``, a perturbation assumed, not measured, in its place
        self.unit = f.perturbation if unit is None else unit
        self.rtol = MATCH_SLACK * oracle_rtol(self.dtype, d.T, d.H + d.X + d.Y, self.unit)
        self.names = list(self.arch.param_names)
        self.failing = list(f.failing_groups)
        # a loss that failed only because a spec demands the standard model is no bug's loss
        self.loss_bad = f.loss_failed and not f.perturbation
        self.extra: list[Observation] | None = None
        self._plain: dict = {}  # reduction -> the reference without bugs at the first case

    def shown(self, group: str) -> str:
        """A group as the user knows it (Layout.group_name), for evidence."""
        return self.o.layout.group_name(group, self.o.case.dims.H)

    def trace(self, obs, bugs, reduction=None):
        return self.probe.reference(obs.case, self.dtype, reduction or obs.reduction,
                                    frozenset(bugs))

    def explains(self, obs, bugs) -> tuple[bool, float, list[str]]:
        """Does the reference with ``bugs`` planted reproduce the user's loss and every group,
        under the reduction the loss showed or, when the loss is itself wrong, the other one?"""
        best = self._explains(obs, bugs, obs.reduction)
        if not best[0] and self.loss_bad:
            other = self._explains(obs, bugs, "sum" if obs.reduction == "mean" else "mean")
            if other[0]:
                return other
        return best

    def _explains(self, obs, bugs, reduction) -> tuple[bool, float, list[str]]:
        tr = self.trace(obs, bugs, reduction)
        ok_loss = (np.isnan(obs.loss) and np.isnan(tr.loss)) or self.probe.loss_matches(
            obs.loss, tr.loss, self.dtype, obs.case)
        worst, changed, exact = 0.0, [], ok_loss
        for k in self.names:
            equal, diff = same_and_diff(obs.grads[k], tr.grads[k], self.rtol)
            exact = exact and equal
            worst = max(worst, diff)
            if not same(tr.grads[k], obs.ref.grads[k], self.rtol):
                changed.append(k)
        return exact, worst, changed

    def exact(self, obs, bugs) -> bool:
        """explains(obs, bugs)[0], stopping at the first group that differs."""
        if self._exact(obs, bugs, obs.reduction):
            return True
        return self.loss_bad and self._exact(obs, bugs,
                                             "sum" if obs.reduction == "mean" else "mean")

    def _exact(self, obs, bugs, reduction) -> bool:
        tr = self.trace(obs, bugs, reduction)
        if not ((np.isnan(obs.loss) and np.isnan(tr.loss)) or self.probe.loss_matches(
                obs.loss, tr.loss, self.dtype, obs.case)):
            return False
        return all(same(obs.grads[k], tr.grads[k], self.rtol) for k in self.names)

    def possible(self, bugs) -> bool:
        """False when ``bugs`` cannot explain the first case, known without planting them
        there: under each reduction explains() tries, either the loss cannot match (the loss
        is wrong, the plain reference's is too, and every bug planted leaves the loss bit for
        bit as it is: a mistake of the backward pass), or a group the bugs leave bit for bit
        as it is differs from the plain reference in the user's code."""
        o = self.o
        reductions = [o.reduction] + (["sum" if o.reduction == "mean" else "mean"]
                                      if self.loss_bad else [])
        for r in reductions:
            structure = [self._structure(b, r) for b in bugs]
            plain = self.plain(r)
            if self.loss_bad and all(neutral for neutral, _ in structure) and not (
                    self.probe.loss_matches(o.loss, plain.loss, self.dtype, o.case)):
                continue
            untouched = set(self.names)
            for _, groups in structure:
                untouched &= groups
            if all(same(o.grads[k], plain.grads[k], self.rtol) for k in untouched):
                return True
        return False

    def plain(self, reduction: str):
        """The reference without bugs at the first case (its own for its reduction)."""
        if reduction == self.o.reduction:
            return self.o.ref
        if reduction not in self._plain:
            self._plain[reduction] = self.trace(self.o, [], reduction)
        return self._plain[reduction]

    def _structure(self, bug: str, reduction: str = "sum") -> tuple[bool, set[str]]:
        """(the loss is left as it is, the groups left as they are) by the bug under that
        reduction, bit for bit on two small cases of distinct sizes: what a mistake touches
        follows from where it is in the code, not from the numbers."""
        key = (self.arch.name, tuple(sorted(getattr(self.probe, "variant", ()))), bug,
               reduction)
        if key not in _STRUCTURE:
            neutral, untouched = True, set(self.names)
            for seed in (17, 18):
                case = make_case(self.arch, Dims(T=5, X=3, H=4, Y=3), seed)
                plain = self.probe.reference(case, "float64", reduction)
                planted = self.probe.reference(case, "float64", reduction, frozenset({bug}))
                neutral = neutral and bool(np.array_equal(plain.loss_steps, planted.loss_steps)
                                           and plain.loss == planted.loss)
                untouched = {k for k in untouched
                             if np.array_equal(plain.grads[k], planted.grads[k])}
            _STRUCTURE[key] = (neutral, untouched)
        return _STRUCTURE[key]

    def extra_observations(self):
        """The user's code on further cases: other seeds, other sizes where sizes are free."""
        if self.extra is None:
            self.extra = []
            d = self.o.case.dims
            fixed = self.probe.caps["fixed_sizes"] != "none"
            Ts = (d.T, d.T) if self.probe.caps["fixed_sizes"] == "TXHY" else (5, 7)  # T fixed too
            sizes = [Dims(T=Ts[0], X=d.X, H=d.H, Y=d.Y), Dims(T=Ts[1], X=d.X, H=d.H, Y=d.Y)] if fixed else \
                [Dims(T=5, X=3, H=5, Y=4), Dims(T=7, X=4, H=3, Y=6)]
            for i, dims in enumerate(sizes[:EXTRA_CASES]):
                case = make_case(self.arch, dims, self.o.case.seed + 101 + i)
                with contextlib.suppress(UserCodeError):
                    self.extra.append(self.probe.observe(case, self.o.layout))
        return self.extra

    def confirm(self, bugs) -> tuple[int, int, float]:
        """(cases matched, cases tried, worst difference) over the first and extra cases."""
        n_ok, worst = 1, 0.0
        extra = self.extra_observations()
        for obs in extra:
            exact, diff, _ = self.explains(obs, bugs)
            n_ok += exact
            worst = max(worst, diff)
        return n_ok, 1 + len(extra), worst


def diag(bid: str, conf: float, groups: list[str], evidence: str, exact: bool = False,
         fix: str | None = None) -> Diagnosis:
    bug = catalogue.BY_ID[bid]
    return Diagnosis(id=bid, confidence=round(conf, 3), groups=groups, title=bug.title,
                     evidence=evidence, fix=fix or bug.fix, exact=exact)
