"""A forward that is the standard model, perturbed: a small constant added inside a
nonlinearity, a softmax or a log (``sigmoid(x + 1e-12)``, ``np.log(p + 1e-8)``), a probability
clipped away from 0. Such code is right: its gradients are the derivative of the loss it
computes. But that loss, its states and its gradients differ from the reference's by more
than float64 round-off, so judged at float64's tolerance the forward checks and every group
fail, by 1e-11, and no bug explains it.

The perturbation is measured, not assumed: ``forward_gap``, the largest relative difference
between the user's forward (the loss, the returned last states) and the reference's at the
same case. It is taken as a perturbation of the standard model when the code computes in
float64, the gap is at most float32's unit round-off (``LIMIT``), and either

- the gap is more than float64 round-off allows (the forward checks fail at the dtype's
  tolerance), or
- the gap is within it, but the gradients differ from the reference by more than round-off
  and no more than the gap explains (a gradient reacts more to a perturbation than the loss
  does: a forward off by 1.5e-13 leaves gradients off by 7e-13, over float64's 1.9e-13).

Every comparison with the reference then follows the measure:

- a forward whose gap the checks see is accepted up to ``LIMIT`` (a spec's
  ``model = "standard"`` keeps the dtype's tolerance: the epsilon is a forward the assignment
  does not allow);
- the gradients are judged against the reference with ``oracle_rtol``'s round-off model, the
  measured gap taking the place of the arithmetic's unit round-off (a forward off by a relative
  ``unit`` in its values reaches the gradients the way round-off of that size does);
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
from collections.abc import Callable

import numpy as np

from bpttcheck.check.findings import Observation
from bpttcheck.check.numerics import arithmetic_dtype, eps_of, needed_rtol, oracle_rtol
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


def visible(o: Observation, unit: float) -> bool:
    """Whether the forward checks see the perturbation at the dtype's tolerance."""
    return unit > loss_rtol(o.dtype, o.case)


def rule(dtype: str, gap: float, forward_tol: float, gradient_gap: float,
         rtol_for: Callable[[float], float]) -> float:
    """The module's rule, for any style: the forward's ``gap`` (and the gradients',
    ``gradient_gap``, both in compare's terms), the forward checks' tolerance, and the
    gradients' tolerance for a unit error (``rtol_for(0.0)``: the dtype's) -> the perturbation
    to allow for, 0.0 for none."""
    if arithmetic_dtype(dtype) != np.float64:
        return 0.0  # float32 arithmetic already has tolerances this wide
    if not gap <= LIMIT:
        return 0.0
    if gap > forward_tol:
        return gap
    if gap <= eps_of(dtype):
        return 0.0  # nothing measured: round-off's unit stands
    return gap if rtol_for(0.0) < gradient_gap <= rtol_for(gap) else 0.0


def measure(o: Observation) -> float:
    """The forward's perturbation, to be allowed for (0.0: none): see the module's rules."""
    return rule(o.dtype, forward_gap(o), loss_rtol(o.dtype, o.case), _gradient_gap(o),
                lambda unit: grad_rtol(o, unit))


def _gradient_gap(o: Observation) -> float:
    """The smallest rtol at which every group would pass against the reference."""
    if any(k not in o.grads for k in o.ref.grads):
        return math.inf
    return max((needed_rtol(o.grads[k], o.ref.grads[k], o.ref.magnitude[k])
                for k in o.ref.grads), default=0.0)


def largest_gap(users, refs) -> float:
    """The smallest rtol at which every array of ``users`` would pass against ``refs``."""
    return max((needed_rtol(u, r) for u, r in zip(users, refs, strict=True)), default=0.0)


def grad_rtol(o: Observation, unit: float) -> float:
    """The gradients' tolerance for a forward perturbed by ``unit``."""
    d = o.case.dims
    return oracle_rtol(o.dtype, d.T, d.H + d.X + d.Y, unit)


def note(o: Observation, unit: float, arch_name: str, strict: bool, spec_grad: bool) -> str:
    """The model.perturbed note of sequence code."""
    said = "the loss" if all(s is None for s in o.state) else "the loss and the last state"
    return describe(f"your forward differs from the standard {arch_name}'s by {unit:.2g} "
                    f"(relative, the largest over {said}; your loss {o.loss:.15g}, the standard "
                    f"model's {o.ref.loss:.15g})", unit, visible(o, unit), strict,
                    grad_rtol(o, 0.0), grad_rtol(o, unit), _gradient_gap(o), spec_grad)


def describe(measured: str, unit: float, seen: bool, strict: bool, plain: float,
             widened: float, gradient_gap: float, spec_grad: bool) -> str:
    """The model.perturbed note: what was measured, the tolerances it gave, and why."""
    text = measured + ". "
    if seen:
        text += (f"That is more than float64 round-off allows ({plain:.1e}) and less than a "
                 f"float32 computation of the same model would ({LIMIT:.1e}): a small constant "
                 f"added inside a nonlinearity, a softmax or a log (x + 1e-12, log(p + 1e-8)), "
                 f"or a clipped probability, does this; it is no bug. ")
        text += ("The assignment demands the standard model (model = \"standard\"), so the "
                 "forward checks keep float64's tolerance and fail: remove the constant. "
                 if strict else
                 f"Your forward was accepted as the standard model within {LIMIT:.1e}. ")
    else:
        text += (f"That is within float64 round-off of it ({plain:.1e}), but your gradients "
                 f"differ from the standard model's by {gradient_gap:.2g}, more than round-off "
                 f"and within the tolerance a forward off by {unit:.2g} earns: a small "
                 f"constant inside a nonlinearity (x + 1e-12) does this; it is no bug. ")
    text += (f"Your gradients were checked against the standard model's with the tolerance "
             f"widened by the measured difference: grad_rtol {widened:.1e} (float64's "
             f"round-off model with {unit:.2g} in place of float64's unit round-off) instead "
             f"of {plain:.1e}")
    if spec_grad:
        text += ", except where the spec's [tolerances] grad_rtol replaces it"
    return text + "; finite differences of your own loss check them as well."


def unmeasured(o: Observation) -> str | None:
    """Why each group is judged against finite differences of the user's own loss instead,
    when the forward cannot be measured well enough (None otherwise): no last state is
    returned, the loss matches the reference to float64 precision (a sum over time steps can
    hide a perturbation 1000 x its own gap), and the gradients differ from the reference by
    more than round-off but no more than a perturbation up to ``LIMIT`` can make them, far less
    than a bug does. Nothing measured can widen the reference's tolerance then."""
    if arithmetic_dtype(o.dtype) != np.float64 or all(s is not None for s in o.state):
        return None
    if forward_gap(o) > loss_rtol(o.dtype, o.case):
        return None  # the forward itself differs: the forward checks say so
    plain, widest = grad_rtol(o, 0.0), grad_rtol(o, LIMIT)
    worst = _gradient_gap(o)
    if not plain < worst <= widest:
        return None
    return (f"your gradients differ from the standard model's by up to {worst:.2g} (relative): "
            f"more than float64 round-off allows ({plain:.1e}), no more than a forward "
            f"perturbed by up to {LIMIT:.1e} (an epsilon inside a nonlinearity, "
            f"sigmoid(x + 1e-12)) can make them ({widest:.1e}), and far less than a bug does. "
            f"Your loss equals the standard model's to float64 precision and your function "
            f"returns no last state, so a perturbation of your forward could not be measured: "
            f"each group was judged against finite differences of your own loss instead. "
            f"Return the last state to have your forward measured and your gradients checked "
            f"against the standard model")
