"""A forward that is the standard model, perturbed: a small constant added inside a
nonlinearity, a softmax or a log (``sigmoid(x + 1e-12)``, ``np.log(p + 1e-8)``), a probability
clipped away from 0. Such code is right: its gradients are the derivative of the loss it
computes. But that loss and its states differ from the reference's by more than float64
round-off, so judged at float64's tolerance every forward check and every group fails, by
1e-11, and no bug explains it.

The perturbation is measured, not assumed: the largest relative difference between the user's
forward (loss, returned last states) and the reference's at the same case. When it is more than
the dtype's round-off and at most float32's unit round-off (``LIMIT``), the forward is taken as
the standard model perturbed, and every comparison with the reference follows the measure:

- the forward checks accept a difference up to ``LIMIT`` (a spec's ``model = "standard"``
  keeps the dtype's tolerance: the epsilon is then a forward the assignment does not allow);
- the gradients are judged against the reference with ``oracle_rtol``'s round-off model, the
  measured perturbation taking the place of the arithmetic's unit round-off (a forward off by
  a relative ``unit`` in its values reaches the gradients the way round-off of that size does);
- diagnosis plants bugs in the same reference with the same widened tolerance, so a bug is
  still named and located.

Why the reference, not finite differences of the user's own loss (``model.nonstandard``): the
reference stays ~1000 x sharper than finite differences (float64: 1e-6 of a directional
derivative's terms) at any perturbation up to ``LIMIT``; it names and locates the bug; and the
finite differences of the user's own loss still run on every group as the assumption-free
check of the same gradients. Above ``LIMIT`` the forward differs from the standard model by
more than float32 arithmetic of it would, so it is no perturbation of it: a model of the user's
own, judged by its own loss. Below it, the widened tolerance is never wider than float32's."""
from __future__ import annotations

import math

import numpy as np

from bpttcheck.check.findings import Observation
from bpttcheck.check.numerics import arithmetic_dtype, needed_rtol, oracle_rtol
from bpttcheck.check.probe import loss_rtol

LIMIT = float(np.finfo(np.float32).eps)  # the largest relative perturbation of the forward


def forward_gap(o: Observation) -> float:
    """How far the user's forward is from the reference's, in the terms of the forward checks:
    the smallest rtol at which forward.loss and every forward.last_<state> would pass."""
    if not np.isfinite(o.loss):
        return math.inf
    gap = abs(o.loss - o.ref.loss) / max(abs(o.ref.loss), 1.0)
    for user, ref in zip(o.state, o.ref.state, strict=False):
        if user is not None:
            gap = max(gap, needed_rtol(user, ref))
    return gap


def measure(o: Observation) -> float:
    """The perturbation of the forward (0.0: none to allow for): its gap when the code computes
    in float64, the gap is more than float64 round-off (the forward checks fail at the dtype's
    tolerance) and at most ``LIMIT``. Float32 arithmetic already has tolerances this wide."""
    if arithmetic_dtype(o.dtype) != np.float64:
        return 0.0
    gap = forward_gap(o)
    if gap <= loss_rtol(o.dtype, o.case) or gap > LIMIT:
        return 0.0
    return gap


def grad_rtol(o: Observation, unit: float) -> float:
    """The gradients' tolerance for a forward perturbed by ``unit``."""
    d = o.case.dims
    return oracle_rtol(o.dtype, d.T, d.H + d.X + d.Y, unit)


def note(o: Observation, unit: float, arch_name: str, strict: bool, spec_grad: bool) -> str:
    """The model.perturbed note: the measure, the tolerances it gave, and why."""
    d = o.case.dims
    plain = oracle_rtol(o.dtype, d.T, d.H + d.X + d.Y)
    widened = grad_rtol(o, unit)
    said = ("the loss" if all(s is None for s in o.state)
            else "the loss and the last state")
    text = (f"your forward differs from the standard {arch_name}'s by {unit:.2g} (relative, "
            f"the largest over {said}; your loss {o.loss:.15g}, the standard model's "
            f"{o.ref.loss:.15g}): more than float64 round-off allows ({plain:.1e}), less than "
            f"a float32 computation of the same model would ({LIMIT:.1e}). A small constant "
            f"added inside a nonlinearity, a softmax or a log (x + 1e-12, log(p + 1e-8)), or a "
            f"clipped probability, does this; it is no bug. ")
    if strict:
        text += ("The assignment demands the standard model (model = \"standard\"), so the "
                 "forward checks keep float64's tolerance and fail: remove the constant. ")
    else:
        text += (f"Your forward was accepted as the standard model within {LIMIT:.1e}. ")
    text += (f"Your gradients were checked against the standard model's with the tolerance "
             f"widened by the same measure: grad_rtol {widened:.1e} (float64's round-off model "
             f"with {unit:.2g} in place of float64's unit round-off) instead of {plain:.1e}")
    if spec_grad:
        text += ", except where the spec's [tolerances] grad_rtol replaces it"
    return text + "; finite differences of your own loss check them too."
