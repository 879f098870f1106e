"""The precision the user's code computes in, when it is not the dtype of what it returns.

Real code mixes: float64 parameters with the hidden states kept in a float32 buffer, a float32
cast of ``hprev`` on entry, float32 gradients of a float64 computation. The returned arrays'
dtype then misjudges it: float64 tolerances fail a correct float32 computation, float32
tolerances let a float64 one hide errors a thousand times its round-off. The loss tells them
apart with no further call of the user's code: a float64 computation reproduces the reference
(at the inputs it really used) to float64 precision, a float32 one only to float32 precision.

A hypothesis is only taken when it explains everything: float64 arithmetic on rounded inputs
must reproduce the loss to float64 precision (a coincidence at 1e-12 is out of the question);
float32 arithmetic must explain the loss and every gradient within float32's tolerance (so a
bug larger than float32 round-off cannot hide behind the wider tolerance), and gradients
that are float64-exact are no float32 arithmetic (only their loss is off: a forward bug).
Nor are gradients that agree with the float64 reference far better than float32 can
(``FLOAT32_FLOOR``): float64 code whose forward adds an epsilon (``tanh(x + 1e-12)``) differs
from the reference by 1e-11, float32 arithmetic by 1e-8 and more (check/perturbation.py)."""
from __future__ import annotations

import numpy as np

from bpttcheck.check.findings import Observation
from bpttcheck.check.numerics import arithmetic_dtype, compare, eps_of, needed_rtol, oracle_rtol
from bpttcheck.check.probe import UserProbe, loss_matches

ROUNDINGS = (frozenset({"state"}), frozenset({"params"}), frozenset({"params", "state"}))
# float32 arithmetic leaves some gradient entry off the float64 reference by at least this
# share of its group's scale: a thousandth of float32's unit round-off. Each entry carries
# roundings of up to eps/2 of itself, and a group has dozens of entries (measured on the
# float32 subjects of tests/test_precision.py: 1.5e-8 to 6.7e-8, 100 x above the floor); a
# float64 forward perturbed by an epsilon inside a nonlinearity stays near 1e-12, 100 x below
FLOAT32_FLOOR = eps_of("float32") / 1000

WHAT = {frozenset({"state"}): "your initial state",
        frozenset({"params"}): "your parameters",
        frozenset({"params", "state"}): "your parameters and initial state"}


def infer(probe: UserProbe, obs: Observation, result: tuple) -> tuple[Observation, str] | None:
    """Re-judge ``obs`` (one call's ``result``) at the precision the code computes in, if that
    is not the dtype it returned: (the new observation, the note's evidence), else None.
    Sets ``probe.precision``/``probe.rounding`` so every later reference follows."""
    returned = obs.info.get("dtype", "float64")
    work = arithmetic_dtype(returned)
    if work == np.float32:
        return _float64_stored_narrow(probe, obs, result, returned)
    if loss_matches(obs.loss, obs.ref.loss, returned, obs.case):
        return None  # float64 as returned: nothing to explain
    for parts in ROUNDINGS:  # float64 arithmetic on inputs rounded to float32 first
        probe.rounding = parts
        new = probe.judge(obs.case, obs.layout, result)
        if loss_matches(new.loss, new.ref.loss, returned, new.case):
            return new, (f"your loss {new.loss:.12g} differs from the float64 reference's "
                         f"{obs.ref.loss:.12g}, but equals, to float64 precision, the reference "
                         f"with {WHAT[parts]} rounded to float32: your code rounds "
                         f"{WHAT[parts]} to float32 and computes in float64 from there. It "
                         f"was judged at float64 precision against that reference")
    probe.rounding = frozenset()
    if _exact(probe, obs, returned):
        return None  # float64-exact gradients are no float32 arithmetic: the loss alone is off
    if not _float32_sized(probe, obs):
        return None  # closer to float64 than float32 can be: perturbed, not float32
    probe.precision = "float32"
    new = probe.judge(obs.case, obs.layout, result)
    if _float32_explains(probe, new):
        return new, (f"your code computes in float32 (your {returned} loss {new.loss:.10g} "
                     f"differs from the float64 reference by {abs(obs.loss - obs.ref.loss):.2g}, "
                     f"float32 round-off, and so does every gradient; float32 arrays or casts "
                     f"inside the function, e.g. a float32 state buffer): judged at float32 "
                     f"precision")
    probe.precision = None
    return None


def _exact(probe: UserProbe, o: Observation, dtype: str) -> bool:
    """Every gradient equals the unrounded float64 reference to float64 precision."""
    d = o.case.dims
    rtol = oracle_rtol(dtype, d.T, d.H + d.X + d.Y)
    return all(k in o.grads and compare(o.grads[k], o.ref.grads[k], rtol, magnitude=o.ref.magnitude[k]).passed for k in probe.arch.param_names)


def _float32_sized(probe: UserProbe, o: Observation) -> bool:
    """Some gradient differs from the unrounded float64 reference by as much as float32
    round-off leaves (``FLOAT32_FLOOR``)."""
    return any(k in o.grads and needed_rtol(o.grads[k], o.ref.grads[k], o.ref.magnitude[k])
               >= FLOAT32_FLOOR for k in probe.arch.param_names)


def _float32_explains(probe: UserProbe, o: Observation) -> bool:
    """The loss within float32's tolerance of the float32-rounded reference, and every
    gradient too: nothing is left that float32 arithmetic does not explain."""
    if not loss_matches(o.loss, o.ref.loss, "float32", o.case):
        return False
    d = o.case.dims
    rtol = oracle_rtol("float32", d.T, d.H + d.X + d.Y)
    for k in probe.arch.param_names:
        if k not in o.grads:
            return False
        mag = o.ref.magnitude[k]
        if not compare(o.grads[k], o.ref.grads[k], rtol, magnitude=mag).passed:
            return False
    return True


def _float64_stored_narrow(probe: UserProbe, obs: Observation, result: tuple,
                           returned: str) -> tuple[Observation, str] | None:
    """Gradients returned as float32 by code whose loss is float64-exact (unrounded inputs,
    float64 arithmetic): judged at float64, allowing only the one rounding on the way out.
    Casting float64 results to float32 does not buy float32's tolerances."""
    if probe.precision or not isinstance(obs.loss, float) or returned != "float32":
        # float16 keeps its meaning (float32 arithmetic rounded once to float16, CONTRACT §7):
        # its one rounding alone exceeds what float64's finite-difference check allows
        return None
    exact = probe.reference(obs.case, "float64", obs.reduction)
    if not loss_matches(obs.loss, exact.loss, "float64", obs.case):
        return None
    probe.precision = f"float64/{returned}"
    new = probe.judge(obs.case, obs.layout, result)
    return new, (f"your loss {obs.loss:.15g} equals the float64 reference's to float64 "
                 f"precision, so your code computes in float64; your gradients are returned as "
                 f"{returned} and were judged at float64 precision (plus the one rounding to "
                 f"{returned} on the way out), not at {returned}'s wider tolerances")
