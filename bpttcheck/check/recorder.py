"""Writing results into the report, shared by the sequence and the layer checker: notes, checks
with the time the work behind them took, and one way to turn a comparison or a directional
check into a group's result and its message."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import cast

import numpy as np

from bpttcheck.check.numerics import Comparison, DirectionalCheck
from bpttcheck.result import CheckResult, FDResult, GroupResult, Note, Report, Status


class Recorder:
    def __init__(self, report: Report):
        self.report = report

    def note(self, id: str, title: str, evidence: str) -> None:
        if not any(n.id == id and n.title == title for n in self.report.notes):
            self.report.notes.append(Note(id=id, title=title, evidence=evidence))

    def add(self, name: str, ok: bool, message: str) -> CheckResult:
        c = CheckResult(name=name, status="pass" if ok else "fail", message=message)
        self.report.checks.append(c)
        return c

    def not_run(self, expected: list[str], why: str) -> None:
        """After an error that stopped the check: each expected check that did not run is
        listed with status "not-run", so that no report shows the checks that passed before
        the error as if they were all (nothing is added when no check ran)."""
        if not self.report.checks:
            return
        ran = {c.name for c in self.report.checks}
        for name in expected:
            if name not in ran:
                self.report.checks.append(CheckResult(
                    name=name, status="not-run", message=f"not run: {why}"))

    def failed_checks(self) -> list[str]:
        return [c.name for c in self.report.checks if c.status == "fail"]

    @contextmanager
    def timed(self, key: str):
        """Adds the block's wall time to report.timings[key]."""
        t = time.perf_counter()
        try:
            yield
        finally:
            timings = self.report.timings
            timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - t, 4)

    @contextmanager
    def shared(self):
        """The checks added in the block share its wall time equally: one call of the user's
        code and the comparisons of its results produce several checks at once."""
        t, first = time.perf_counter(), len(self.report.checks)
        try:
            yield
        finally:
            made = self.report.checks[first:]
            elapsed = time.perf_counter() - t
            for c in made:
                c.seconds = round(elapsed / len(made), 6)


def group_result(name: str, user_name: str, cmp: Comparison, what: str,
                 clipped_at: float | None = None) -> tuple[GroupResult, str]:
    """A group's result against the reference and the message of its grad.* check."""
    g = GroupResult(
        name=name, user_name=user_name, status="pass" if cmp.passed else "fail",
        max_abs_error=cmp.max_abs_error, max_rel_error=cmp.max_rel_error,
        worst_index=list(cmp.worst_index), worst_user=cmp.worst_user, worst_ref=cmp.worst_ref,
        tolerance=cmp.tolerance, scale=cmp.scale, n_bad=cmp.n_bad, n=cmp.n,
        clipped_at=clipped_at)
    idx = ",".join(map(str, cmp.worst_index))
    message = (f"{what}: max abs error {cmp.max_abs_error:.2e}, max rel error "
               f"{cmp.max_rel_error:.2e}; worst [{idx}] yours {cmp.worst_user:.6g} vs "
               f"reference {cmp.worst_ref:.6g} (tolerance {cmp.tolerance:.1e}); "
               f"{cmp.n_bad} of {cmp.n} entries out of tolerance"
               + ("" if cmp.finite else "; contains NaN or inf"))
    return g, message


def fd_result(dc: DirectionalCheck, what: str, source: str = "your own loss",
              status: str | None = None, detail: bool = True) -> tuple[FDResult, str]:
    """A group's finite-difference result and the message of its fd.* check; ``detail`` adds
    the noise and the Taylor remainder rates."""
    # a status that is none of Status is refused when FDResult is made (datamodel.py)
    fd = FDResult(status=cast(Status, status or ("pass" if dc.passed else "fail")), analytic=dc.analytic,
                  numeric=dc.numeric, error=dc.error, tolerance=dc.tolerance, noise=dc.noise,
                  taylor_rates=[None if np.isnan(x) else x for x in dc.taylor_rates],
                  rate_verdict=dc.rate_verdict, step=dc.step)
    message = (f"{what}: your directional derivative {dc.analytic:.10g}, finite differences of "
               f"{source} {dc.numeric:.10g} (|diff| {dc.error:.2e}, tolerance "
               f"{dc.tolerance:.1e}")
    if detail:
        rates = ", ".join("noise" if np.isnan(x) else f"{x:.2f}" for x in dc.taylor_rates)
        message += (f", noise {dc.noise:.1e}); Taylor remainder rates {rates} "
                    f"(2 = consistent, 1 = not)")
    else:
        message += ")"
    return fd, message


def spec_tolerance(rec: Recorder, tolerances: dict[str, float], key: str, default: float,
                   dtype: str) -> float:
    """The tolerance ``key`` to judge with: the spec's when it sets one (said in a note, with
    the default it replaces), else ``default``, derived from the code's precision."""
    if key not in tolerances:
        return default
    value = tolerances[key]
    rec.note("tolerances.spec", f"{key} set by the assignment",
             f"{key} = {value:.1e} from the spec's [tolerances], in place of {default:.1e}, the "
             f"tolerance bpttcheck derives from your code's precision ({dtype})")
    return value
