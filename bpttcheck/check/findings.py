"""What the checks measured, as plain data: the only thing diagnosis reads besides the probe.
Dataclasses, not report models: reports render results, these are the checker's own notes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bpttcheck.check.cases import Case
from bpttcheck.check.numerics import DirectionalCheck
from bpttcheck.layout import Layout
from bpttcheck.oracle.common import Trace


@dataclass
class Observation:
    """What one call of the user's code returned, next to the reference at the same point."""

    case: Case
    layout: Layout
    loss: float
    grads: dict[str, np.ndarray]
    state: tuple
    info: dict
    ref: Trace
    reduction: str

    @property
    def dtype(self) -> str:
        return self.info.get("dtype", "float64")


@dataclass
class Findings:
    """The sequence checks' results on the first case (and the probes that followed it)."""

    observation: Observation
    dtype: str = "float64"
    failed_checks: list[str] = field(default_factory=list)  # names, in the order they ran
    failing_groups: list[str] = field(default_factory=list)
    # the layout search: (declared order, the order the loss matches) when they differ
    gate_order_mismatch: tuple[str, str] | None = None
    large_logit_evidence: str | None = None  # why the large-logit probe failed, if it did
    second_call: tuple[float, dict[str, np.ndarray]] | None = None  # (loss, grads)
    # the user's forward is no standard model (nor a known variant or forward bug): how it
    # differs; the gradients are then judged by finite differences of the user's own loss
    nonstandard: str | None = None
    fd_checks: dict[str, DirectionalCheck] = field(default_factory=dict)  # per group
    # the user's forward is the standard model perturbed (an epsilon inside a nonlinearity,
    # check/perturbation.py): the measured relative perturbation, which widens every
    # comparison with the reference (0.0: none); ``strict``: a spec demands the standard model,
    # so the forward checks keep the dtype's tolerance
    perturbation: float = 0.0
    perturbation_strict: bool = False
    # ``nonstandard`` is set although the forward matched: a perturbation of the forward too
    # small for what it returns to measure (perturbation.unmeasured); the forward is judged
    forward_standard: bool = False
    # truncated BPTT recognised (checks._recognise_truncation): its depth, the groups it changes
    truncated: int | None = None
    truncated_groups: list[str] = field(default_factory=list)
    # clipping accepted (checks.check_groups): the second case, where no gradient is clipped,
    # and the user's results there; the finite differences are taken on it
    unclipped: Observation | None = None
    # a spec's [tolerances] ("loss_rtol", "grad_rtol", "fd_rtol"): replace the dtype's in the
    # checks that decide the verdict (recognising layouts, reductions and bugs keeps the dtype's)
    tolerances: dict[str, float] = field(default_factory=dict)
    # gradients computed numerically (check/numgrad.py, forbid_numerical_gradients): what was
    # measured
    numerical: str | None = None
    # ... and the failing groups it explains (off by finite differences' error, not a bug's)
    numerical_groups: list[str] = field(default_factory=list)

    def failed(self, check: str) -> bool:
        return check in self.failed_checks

    @property
    def loss_failed(self) -> bool:
        return self.failed("forward.loss")

    @property
    def first_call_clean(self) -> bool:
        """Every group and every forward check of the first call matched the reference."""
        return not self.failing_groups and not any(
            c.startswith("forward.") for c in self.failed_checks)
