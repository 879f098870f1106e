"""The narrow window diagnosis looks through: the reference with bugs planted, the user's code
at a case, whether a loss matches, and what the adapter can do. Diagnosis gets a Probe and the
Findings, never the checker or the worker session."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from bpttcheck.check.cases import Case
from bpttcheck.check.findings import Observation
from bpttcheck.check.numerics import arithmetic_dtype, oracle_rtol
from bpttcheck.layout import Layout
from bpttcheck.oracle.common import Arch, Trace


class Probe(Protocol):
    arch: Arch
    caps: dict  # the adapter's capabilities: kind, language, fixed_sizes, poisoned_buffers, entry

    def reference(self, case: Case, dtype: str, reduction: str = "sum",
                  bugs: frozenset[str] = frozenset(), taps: dict | None = None) -> Trace: ...

    def observe(self, case: Case, layout: Layout) -> Observation: ...

    def loss_matches(self, user: float, ref: float, dtype: str, case: Case) -> bool: ...

    def trace(self, case: Case, layout: Layout) -> tuple[list, list, bool]: ...

    def line_values(self, case: Case, layout: Layout, where: tuple,
                    statements: list[str]) -> dict[int, np.ndarray]: ...


class Calls(Protocol):
    """What a probe needs of the worker: one call of the user's code (and one with the user's
    lines recorded by the worker's tracer)."""

    def call(self, case: Case, layout: Layout) -> tuple: ...

    def trace(self, case: Case, layout: Layout) -> tuple[list, list, bool]: ...

    def line_values(self, case: Case, layout: Layout, where: tuple,
                    statements: list[str]) -> dict: ...


def reference(arch: Arch, case: Case, dtype: str, reduction: str = "sum",
              bugs: frozenset[str] = frozenset(), rounding: frozenset[str] = frozenset(),
              taps: dict | None = None) -> Trace:
    """The float64 reference at the case as a user computing in ``dtype`` sees it (and, for
    float64 code that rounds its parameters or state to float32 first, ``rounding``).
    ``taps`` receives its intermediate quantities (oracle ``run``)."""
    if arithmetic_dtype(dtype) == np.float32:
        c = case.rounded(np.float32)
    else:
        c = case.rounded(np.float32, rounding) if rounding else case
    more = {} if taps is None or not _takes_taps(arch.run) else {"taps": taps}
    return arch.run(c.params, c.xs, c.ys, c.state, bugs=bugs, reduction=reduction, **more)


def _takes_taps(run) -> bool:
    """Whether a model's run() records its intermediates (the built-in ones do; a plugin's
    may not: its traces then give the locator its gradients only)."""
    import inspect
    try:
        ps = inspect.signature(run).parameters
    except (TypeError, ValueError):
        return False
    return "taps" in ps or any(p.kind is p.VAR_KEYWORD for p in ps.values())


def representable(grads: dict, dtype: str) -> bool:
    """Whether every finite gradient value is one the dtype the worker reported (its last
    part: "float64/float32" returns float32) can hold: the reported dtype sets the tolerance,
    so it must be what the arrays are."""
    kind = dtype.split("/")[-1]
    if kind not in ("float32", "float16"):
        return True
    low = np.dtype(kind)
    for g in grads.values():
        a = np.asarray(g, dtype=np.float64)
        a = a[np.isfinite(a)]
        with np.errstate(over="ignore"):
            if not np.array_equal(a, a.astype(low).astype(np.float64)):
                return False
    return True


def loss_rtol(dtype: str, case: Case, unit: float = 0.0) -> float:
    """The loss's tolerance; ``unit``: the forward's measured perturbation
    (check/perturbation.py), if any."""
    d = case.dims
    return oracle_rtol(dtype, d.T, d.H + d.X + d.Y, unit)


def loss_matches(user: float, ref: float, dtype: str, case: Case, unit: float = 0.0) -> bool:
    return bool(np.isfinite(user)) and abs(user - ref) <= loss_rtol(dtype, case, unit) * max(
        abs(ref), 1.0)


# references a probe keeps: each holds its gradients and their magnitudes (and, once
# diagnosis asked for them, its per-step contributions, T x the parameters: Karpathy-size
# LSTM about 15 MB), so at most this many and this many bytes
KEPT_REFERENCES = 16
KEPT_BYTES = 256 << 20


class UserProbe:
    """A Probe over the user's code, as loaded in a worker. ``variant`` is the legitimate
    variant of the cell the user's forward was found to be (oracle ``Arch.variants``): every
    reference from then on is that model's, bugs planted on top of it."""

    def __init__(self, calls: Calls, arch: Arch, caps: dict):
        self.calls, self.arch, self.caps = calls, arch, caps
        self.variant: frozenset[str] = frozenset()
        # the precision the code was found to compute in, when it is not the dtype of what it
        # returns (check/precision.py): the judged dtype, and what it rounds to float32 first
        self.precision: str | None = None
        self.rounding: frozenset[str] = frozenset()
        # the forward's measured perturbation (check/perturbation.py: an epsilon inside a
        # nonlinearity), 0.0 if none: every loss is matched within the tolerance it gives
        self.perturbation = 0.0
        # (case id, dtype, reduction, bugs, rounding) -> (case, trace, its size in bytes)
        self._kept: dict = {}

    def reference(self, case: Case, dtype: str, reduction: str = "sum",
                  bugs: frozenset[str] = frozenset(), taps: dict | None = None) -> Trace:
        """The reference at ``case``; the last few are kept (finding the layout judges each
        candidate against the same reference, and diagnosis asks again for what the checks
        computed). A Trace is never changed after it is made: the same one can be shared.
        ``taps`` (the locator's intermediates) are recorded by a run of their own."""
        planted = frozenset(bugs) | self.variant
        if taps is not None:
            return reference(self.arch, case, dtype, reduction, planted, self.rounding, taps)
        key = (id(case), dtype, reduction, planted, self.rounding)
        kept = self._kept.pop(key, None)
        if kept is None or kept[0] is not case:
            tr = reference(self.arch, case, dtype, reduction, planted, self.rounding)
            kept = (case, tr, tr.nbytes())
        self._kept[key] = kept  # most recent last
        while len(self._kept) > 1 and (len(self._kept) > KEPT_REFERENCES or sum(
                k[2] for k in self._kept.values()) > KEPT_BYTES):
            self._kept.pop(next(iter(self._kept)))
        return kept[1]

    def trace(self, case: Case, layout: Layout) -> tuple[list, list, bool]:
        return self.calls.trace(case, layout)

    def line_values(self, case: Case, layout: Layout, where: tuple,
                    statements: list[str]) -> dict[int, np.ndarray]:
        """What the line at ``where`` = (file, line, step, name) would give ``name`` if it
        were each of ``statements`` (check/rewrite.py), by the statement's index."""
        return self.calls.line_values(case, layout, where, statements)

    def loss_matches(self, user: float, ref: float, dtype: str, case: Case) -> bool:
        return loss_matches(user, ref, dtype, case, self.perturbation)

    def observe(self, case: Case, layout: Layout) -> Observation:
        """Call the user's code and judge what it returned (``judge``)."""
        return self.judge(case, layout, self.calls.call(case, layout))

    def judge(self, case: Case, layout: Layout, result: tuple) -> Observation:
        """What one call returned, next to the reference: the reduction (sum or mean over
        time) is read off the loss, or, when the loss matches neither, off which one the
        gradients are closer to."""
        loss, grads, state, info = result
        if self.precision:  # judged at the precision found, whatever the arrays' dtype
            info = {**info, "dtype": self.precision}
        elif not representable(grads, info.get("dtype", "float64")):
            # the worker said float32 (or float16), but the values are not that dtype's: a
            # claim the arrays contradict (user code can reach the worker's objects) is not
            # believed; the values are judged at float64
            info = {**info, "dtype": "float64"}
        dtype = info.get("dtype", "float64")
        ref_sum = self.reference(case, dtype)
        reduction = "sum"
        T = case.dims.T
        if not self.loss_matches(loss, ref_sum.loss, dtype, case) and self.loss_matches(
                loss, ref_sum.loss / T, dtype, case):
            reduction = "mean"
        elif not self.loss_matches(loss, ref_sum.loss, dtype, case):
            names = [k for k in self.arch.param_names if k in grads]
            u = np.concatenate([grads[k].ravel() for k in names] or [np.zeros(1)])
            s = np.concatenate([ref_sum.grads[k].ravel() for k in names] or [np.zeros(1)])
            if np.linalg.norm(u - s / T) < np.linalg.norm(u - s):
                reduction = "mean"
        ref = ref_sum if reduction == "sum" else self.reference(case, dtype, "mean")
        return Observation(case, layout, loss, grads, state, info, ref, reduction)
