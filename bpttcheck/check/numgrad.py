"""Gradients that no backward pass computed (spec ``[assignment] forbid_numerical_gradients``):
finite differences or the complex step of the user's own forward, returned as if hand-written.

Call cost cannot tell them apart from every correct backward: a backward written entry by entry
(as C would be) runs as many Python lines as finite differences over a vectorised forward, and
finite differences batched into one forward run few lines at all. Two measurements can:

1. **A dormant hidden unit.** Every weight and bias feeding unit ``j`` is scaled by
   ``DORMANT`` (1e-20) and its initial state set to 0, so ``h[j] ~ 1e-20`` at every step. The
   gradients of the weights that read ``h[j]`` (the output layer's column ``j``, the recurrent
   weights' column ``j``) are then ~1e-20, products a backward pass computes to full relative
   precision. Moving such a weight by any step finite differences use changes the loss by far
   less than the loss's own rounding (1e-25 against ~1e-15), so every real-step scheme
   (central, Richardson, batched, float32 or float64) returns 0 or rounding noise there.
2. **Complex arrays in the call** (sandbox/calltrace.py). The complex step, ``Im L(p + ih)/h``,
   is exact to rounding and passes (1); it needs complex copies of the parameters, which no
   real-valued RNN computes with.

Together with the counts the trace takes (lines run, calls per function), that is the finding.
What neither catches is said in docs/CONTRACT.md: a forward-mode AD of the user's own (dual
numbers), real steps of 1e5 and more chosen per entry, C code using C99 complex numbers."""
from __future__ import annotations

import numpy as np

from bpttcheck.check.cases import Case
from bpttcheck.check.findings import Findings, Observation
from bpttcheck.check.probe import UserProbe
from bpttcheck.check.recorder import Recorder
from bpttcheck.oracle.common import Arch

CHECK = "behaviour.numerical-gradients"
DORMANT = 1e-20  # the scale of a dormant unit's incoming weights
TINY = 1e-12  # a gradient entry is dormant below TINY x the model's largest magnitude
# ... but not a product of two dormant factors (~1e-40): float32 code meets those as subnormals
FLOOR = 1e-28
# ... and little cancellation: |reference| >= WELL_POSED x sum_t |contribution|, so that
# a 0 is off by more than AGREE
WELL_POSED = 0.05
AGREE = 1e-2  # relative error allowed there (float32 code computes them to ~1e-6)
NEAR = 1e-6  # a failing group this close to the reference is judged at its dormant entries


def output_weight(arch: Arch, case: Case) -> str:
    """The output layer's weight (Y, H): the last such matrix, as cases.make_case scales it."""
    d = case.dims
    return [k for k, s in arch.shapes(d).items() if s == (d.Y, d.H)][-1]


def dormant_case(arch: Arch, case: Case, unit: int | None = None) -> tuple[Case, int]:
    """``case`` with hidden unit ``unit`` (the last one by default) dormant: row ``unit`` of
    every weight that produces hidden pre-activations scaled by DORMANT / 10, entry ``unit``
    of every hidden bias set to DORMANT, entry ``unit`` of every initial state 0."""
    H = case.dims.H
    j = H - 1 if unit is None else unit
    out = output_weight(arch, case)
    params = {}
    for k, v in case.params.items():
        v = v.copy()
        if k != out and v.ndim == 2 and v.shape[0] == H:
            v[j] *= DORMANT / 10
        elif k != out and v.ndim == 1 and v.shape[0] == H:
            # a positive bias ten times the weights: h[j] keeps one sign, so the sums over
            # time of the entries it feeds do not cancel
            v[j] = DORMANT
        params[k] = v
    state = tuple(np.where(np.arange(H) == j, 0.0, s) for s in case.state)
    return Case(case.arch, case.dims, params, case.xs, case.ys, state, case.seed), j


def dormant_mismatches(o: Observation, names, skip=()) -> tuple[list[tuple], int]:
    """The dormant entries (tiny, well-posed gradients of the reference) where the user's
    gradient is off by more than AGREE of their size: ([(group, index, user, reference)],
    how many dormant entries there were)."""
    bad, n = [], 0
    groups = [k for k in names if k not in skip and k in o.grads and k in o.ref.grads
              and np.shape(o.grads[k]) == o.ref.grads[k].shape]
    mags = {k: o.ref.magnitude[k] for k in groups}
    # tiny against the largest gradient of the whole model (with H = 1 a group is all dormant)
    top = max((float(m.max()) for m in mags.values() if m.size), default=0.0)
    for k in groups:
        ref, user, mag = o.ref.grads[k], np.asarray(o.grads[k], dtype=np.float64), mags[k]
        sel = (mag >= FLOOR * top) & (mag <= TINY * top) & (np.abs(ref) >= WELL_POSED * mag)
        n += int(sel.sum())
        with np.errstate(invalid="ignore"):
            off = sel & ~(np.abs(user - ref) <= AGREE * mag)
        for idx in zip(*np.nonzero(off), strict=True):
            bad.append((k, tuple(int(i) for i in idx), float(user[idx]), float(ref[idx])))
    return bad, n


def near_misses(o: Observation, groups) -> list[str]:
    """The failing groups whose error on the first case is below NEAR of their size: the
    ~1e-10 relative error of float64 finite differences, where a backward bug is off by the
    size of the gradient itself. Their dormant entries are judged too (a bug in them would
    still give ~1e-20 there, products with the dormant state)."""
    out = []
    for k in groups:
        if k not in o.grads or k not in o.ref.grads or np.shape(o.grads[k]) != o.ref.grads[k].shape:
            continue
        scale = float(o.ref.magnitude[k].max(initial=0.0))
        err = np.abs(np.asarray(o.grads[k], dtype=np.float64) - o.ref.grads[k])
        if scale > 0 and bool(np.all(err <= NEAR * scale)):
            out.append(k)
    return out


def _cost(trace: dict, entry: str, nparams: int) -> str:
    """What the trace counted, in a sentence."""
    lines = trace["lines"]
    if not lines and not trace["calls"]:
        return ""
    from bpttcheck.sandbox.calltrace import LINE_BUDGET
    many = "at least " if lines >= LINE_BUDGET else ""
    text = f"one call of {entry} ran {many}{lines:,} lines of your code"
    others = [(name, n) for name, n in trace["calls"] if name != entry]
    if others:
        name, n = others[0]
        text += f" and called {name} {n:,} time{'s' if n != 1 else ''}"
    return text + f" (the model has {nparams:,} parameters)"


def _not_earned(rec: Recorder) -> None:
    """The gradient checks (grad.*, fd.*) judge a backward pass; numerical gradients that pass
    them earn nothing under an assignment that forbids them, so they fail too (their numbers
    stay as measured)."""
    for c in rec.report.checks:
        if c.status == "pass" and c.name.split(".", 1)[0] in ("grad", "fd"):
            c.status = "fail"
            c.message += (f"; not earned: these gradients were computed numerically ({CHECK}), "
                          "which the assignment forbids")


def check_numerical(rec: Recorder, w, probe: UserProbe, f: Findings) -> None:
    """One traced call at a case with a dormant hidden unit: a failed CHECK, the evidence in
    ``f.numerical`` and the gradient checks failed, when the gradients are a numerical
    scheme's. Runs after every other check of the first case."""
    o = f.observation
    case, j = dormant_case(probe.arch, o.case)
    loss, grads, last, info, trace = w.measured_call(case, o.layout)
    entry = probe.caps.get("entry") or "your gradient function"
    nparams = sum(v.size for v in case.params.values())
    cost = _cost(trace, entry, nparams)
    name = o.layout.user_name
    problems = []
    if trace["tampered"]:
        problems.append(f"your code switched off the trace bpttcheck measures the call with "
                        f"(sys.settrace or sys.setprofile) while {entry} ran, so the call "
                        f"could not be measured")
    if trace["complex"]:
        problems.append(f"{entry} computes with complex numbers (a complex array at "
                        f"{trace['complex']}): that is complex-step differentiation, "
                        f"Im L(p + ih) / h, one forward pass per parameter, not a backward pass")
    checked, near = 0, []
    # a call that answers differently when repeated (gradients not reset) has no clean later
    # call to judge: what it returns at the dormant case holds the earlier calls' gradients
    stateful = "behaviour.repeat" in rec.failed_checks()
    if not f.nonstandard and not stateful:  # the dormant entries need the user's model
        judged = probe.judge(case, o.layout, (loss, grads, last, info))
        near = near_misses(o, f.failing_groups)
        skip = (set(f.failing_groups) - set(near)) | set(f.truncated_groups)
        bad, checked = dormant_mismatches(judged, probe.arch.param_names, skip)
        if bad:
            k, idx, u, r = max(bad, key=lambda b: abs(b[2] - b[3]) / max(abs(b[3]), 1e-300))
            where = ",".join(map(str, idx))
            problems.append(
                f"with hidden unit {j} made dormant (its incoming weights and bias about "
                f"{DORMANT:g}, so h[{j}] is about {DORMANT:g} at every step), d{name(k)}"
                f"[{where}] is {u:.3g} where the true gradient is {r:.3g}, and {len(bad)} of "
                f"{checked} such tiny gradient entries are off by more than {AGREE:g} of "
                f"their size. A backward pass computes these products exactly; finite "
                f"differences cannot, because moving {name(k)}[{where}] by any usual step "
                f"changes your loss by less than the loss's own rounding, so they give 0 or "
                f"rounding noise")
    if problems:
        f.numerical = "; ".join(problems) + (f". Measured: {cost}" if cost else "")
        f.numerical_groups = near
        rec.add(CHECK, False, "your gradients are computed numerically, not by a "
                f"hand-written backward (the assignment forbids it): {f.numerical}")
        _not_earned(rec)
        return
    if checked:
        what = (f"the {checked} gradient entries of a dormant hidden unit (about {DORMANT:g}) "
                f"are exact, as only a backward pass computes them")
    elif stateful:
        what = "no dormant-unit probe (your code answers a repeated call differently)"
    elif f.nonstandard:
        what = "no dormant-unit probe (your model is judged by finite differences of its own loss)"
    else:
        what = "no dormant-unit probe (the groups it reads already fail)"
    rec.add(CHECK, True, f"{what}; no complex arithmetic in the call" + (
        f"; {cost}" if cost else ""))
