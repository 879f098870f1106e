"""Naming the bug. The user's code is a function we can call, and the bugs people make are
few and known (catalogue.py): plant each in the reference and see which one the user's
output matches, exactly, on several cases (matching.py). When none does, localise honestly
(localise.py).

Diagnosis sees the user's code only through a Probe and what the checks measured only
through the Findings."""
from __future__ import annotations

import contextlib
import itertools

import numpy as np

from bpttcheck.check import catalogue, gate_order
from bpttcheck.check.findings import Findings
from bpttcheck.check.localise import localise
from bpttcheck.check.matching import Matcher, diag, same_values
from bpttcheck.check.numerics import arithmetic_dtype
from bpttcheck.check.probe import Probe
from bpttcheck.layout import Layout
from bpttcheck.result import Diagnosis


def diagnose(probe: Probe, f: Findings) -> list[Diagnosis]:
    ds = _in_language(_diagnose(probe, f), probe.caps["language"], f.observation.layout)
    _point_at_line(probe, f, ds)
    return ds


LOCATED = ("unmatched", "grad.overwrite-not-accumulate")  # and every exact planted bug


def _point_at_line(probe: Probe, f: Findings, ds: list[Diagnosis]) -> None:
    """The line of the user's code where the top diagnosis happens (locate.py). A trace that
    fails (the code raises or hangs when traced) leaves the diagnosis without a line."""
    from bpttcheck.check.locate import locate, locate_forward
    from bpttcheck.errors import UserCodeError
    top = next((d for d in ds if d._planted or d.id in LOCATED), None)
    if top is None:
        return
    m = Matcher(probe, f)
    if f.nonstandard:  # no standard model to walk the backward against: the forward's line
        with contextlib.suppress(UserCodeError, ValueError, KeyError, IndexError, TypeError):
            top.location = locate_forward(probe, f.observation, max(m.rtol, 1e-7))
        return
    try:  # the line is extra evidence: if locating fails, the diagnosis stands without it
        top.location = locate(probe, f.observation, frozenset(top._planted) or None,
                              max(m.rtol, 1e-7),
                              overwrite=top.groups if top.id == LOCATED[1] else None)
    except (UserCodeError, ValueError, KeyError, IndexError, TypeError):
        return


def _diagnose(probe: Probe, f: Findings) -> list[Diagnosis]:
    m = Matcher(probe, f)
    o = f.observation
    out: list[Diagnosis] = []
    gates = gate_order.diagnosis(m, f.gate_order_mismatch[0] if f.gate_order_mismatch else None)
    if gates:
        out.append(gates)
    if f.failed("probe.large-logits"):
        alone = not (m.failing or m.loss_bad)  # else another bug is the first thing to fix
        out.append(diag("softmax.unstable", 0.95 if alone else 0.5,
                        ["Why" if "Why" in m.names else "Wy"], f.large_logit_evidence or "",
                        exact=True))
    if f.failed("behaviour.repeat"):
        out.append(_not_reset(f, m))
    if f.failed("behaviour.numerical-gradients") and f.numerical:
        out.append(diag("grad.numerical", 0.97, m.names[:8], f.numerical, exact=True))
        if set(f.failing_groups) <= set(f.numerical_groups) and not m.loss_bad:
            return _rank(out)  # the groups that fail are off by finite differences' error
    if f.failed("behaviour.inputs-unchanged"):
        out += [d for d in (_params_modified(f, m), _inputs_modified(f, m)) if d]
    poisoned = _poisoned(m)
    if poisoned:
        out.append(poisoned)
        return _rank(out)
    if not (m.failing or m.loss_bad) or (gates and gate_order.backward_order(m)):
        return _rank(out)  # nothing fails, or the gate blocks' order explains what does
    if f.first_call_clean and out:
        return _rank(out)  # the first call was right: the findings above are the whole story
    if f.nonstandard:  # no standard model to plant bugs in: what finite differences say
        out.append(against_own_loss(f))
        return _rank(out)

    singles = catalogue.mutants(m.arch.name)
    # a mutant is planted in the first (large) case only when what it leaves as it is (the
    # loss, groups) does not already rule it out (matching.py)
    scored = []
    for bug in [[b] for b in singles if m.possible([b])]:
        if not m.exact(o, bug):  # the planted reference is kept: explains() reuses it
            continue
        exact, worst, changed = m.explains(o, bug)
        if exact and changed + (["loss"] if m.loss_bad else []):
            scored.append((bug, worst, changed))
    overwritten = {} if scored else _overwritten_steps(m)
    if overwritten:
        out.append(_overwrite_diag(m, overwritten))
    elif not scored:
        pairs = [[a, b] for a, b in itertools.combinations(singles, 2)
                 if a.split(":")[0] != b.split(":")[0] and m.possible([a, b])]
        for pair in pairs:
            if not m.exact(o, pair):
                continue
            exact, worst, changed = m.explains(o, pair)
            if exact and changed:
                scored.append((pair, worst, changed))
    unseen = None
    if not (scored or overwritten):
        unseen = _unmeasured(probe, f, m)
        if unseen is not None:  # matched again, allowing a perturbation it cannot measure
            scored = [(bug, worst, changed) for bug in [[b] for b in singles]
                      if unseen.possible(bug) and unseen.exact(o, bug)
                      for exact, worst, changed in [unseen.explains(o, bug)]
                      if exact and changed]
            if scored:
                m = unseen
    for bugs, worst, changed in scored[:4]:
        out += _planted(m, bugs, worst, changed)
        if unseen is not None:
            out[-1].evidence += (
                f". Your function returns no last state and your loss equals the standard "
                f"model's to float64 precision, so a perturbation of your forward (an epsilon "
                f"inside a nonlinearity) could not be measured: the bug was matched at the "
                f"tolerance of the largest perturbation allowed, float32's unit round-off "
                f"{unseen.unit:.1e}")
    if not (scored or overwritten):
        out.append(localise(m))
    return _rank(out)


def _unmeasured(probe: Probe, f: Findings, m: Matcher) -> Matcher | None:
    """A matcher allowing a perturbation of the forward up to perturbation.LIMIT, when such a
    perturbation would go unmeasured and nothing matched at the tolerance of round-off: float64
    code that returns no last state, whose loss matches the reference (a sum over time steps
    hides a perturbation far larger than its own gap, check/perturbation.py). Planted bugs
    differ from the right gradients by far more than such a perturbation makes; float32 code
    is matched at this tolerance too."""
    from bpttcheck.check import perturbation
    o = f.observation
    if (f.perturbation or f.nonstandard or m.loss_bad or f.failed("forward.loss")
            or arithmetic_dtype(f.dtype) != np.float64 or all(s is not None for s in o.state)):
        return None
    return Matcher(probe, f, unit=perturbation.LIMIT)


def _planted(m: Matcher, bugs: list[str], worst: float, changed: list[str]) -> list[Diagnosis]:
    """The diagnoses of bugs whose mutant reproduces the first case, confirmed on the others."""
    o = m.o
    n_ok, n, worst_all = m.confirm(bugs)
    conf = 0.99 if n_ok == n and n >= 3 else 0.9 if n_ok == n else 0.6
    if len(bugs) > 1:
        conf -= 0.03
    tr = m.trace(o, [])
    diffs = {k: float(np.max(np.abs(np.nan_to_num(o.grads[k] - tr.grads[k], nan=np.inf))))
             for k in changed}
    worst_g = max(diffs, key=lambda k: diffs[k]) if diffs else None
    out = []
    for bug in bugs:
        bid = bug.split(":")[0]
        groups = [g for g in changed if g in m.failing] or changed
        variant = bug.partition(":")[2]
        ev = (f"with this bug planted in the float64 reference ({', '.join(bugs)}), its loss and "
              f"all {len(m.names)} gradients equal yours to within {max(worst, worst_all):.1e} "
              f"(tolerance {m.rtol:.1e} relative) on {n_ok} of {n} cases")
        if worst_g:
            ev += (f"; the correct d{m.shown(worst_g)} differs from yours by up to "
                   f"{diffs[worst_g]:.3g}")
        if m.loss_bad:
            ev += f"; your loss {o.loss:.10g} vs the correct {tr.loss:.10g}"
        if variant:
            ev += f" (variant: {variant})"
        d = diag(bid, conf, groups, ev, exact=n_ok == n)
        d._planted = tuple(bugs)
        out.append(d)
    return out


def against_own_loss(f: Findings) -> Diagnosis:
    """For a model of the user's own: the failing groups' directional derivatives against
    finite differences of the user's loss. One common ratio names the bug (T: averaged loss,
    summed gradients; Y: a mean over the classes; -1: the sign of dy)."""
    failing = [k for k in f.failing_groups if k in f.fd_checks]
    d = f.observation.case.dims
    ratios = {k: f.fd_checks[k].analytic / f.fd_checks[k].numeric for k in failing
              if f.fd_checks[k].numeric != 0 and np.isfinite(f.fd_checks[k].analytic)}
    def shown(k: str) -> str:
        return "d" + f.observation.layout.group_name(k, d.H)
    facts = "; ".join(f"{shown(k)}: yours {f.fd_checks[k].analytic:.6g} along a random direction, "
                      f"finite differences {f.fd_checks[k].numeric:.6g}" for k in failing)
    c = next(iter(ratios.values()), None)
    if c is not None and len(ratios) == len(failing) and all(
            abs(x - c) <= 1e-4 * abs(c) for x in ratios.values()):
        said = (f"every failing gradient ({', '.join(shown(k) for k in failing)}) is exactly "
                f"{c:.6g} x the derivative of the loss your code returns")
        for factor, bid, why in ((d.T, "loss.mean-grad-sum", f"T = {d.T}: the loss is averaged "
                                  "over time but the gradients are summed"),
                                 (1 / d.T, "loss.mean-grad-sum", f"1/T, T = {d.T}: the "
                                  "gradients are averaged over time but the loss is summed"),
                                 (-1.0, "loss.dy-sign", "the sign is flipped: dy = y - p")):
            if abs(c - factor) <= 1e-4 * abs(factor):
                return diag(bid, 0.9, failing, f"{said} ({why}). {f.nonstandard}", exact=True)
        for factor in (d.Y, 1 / d.Y):
            if abs(c - factor) <= 1e-4 * abs(factor) and "loss.mean-over-classes" in catalogue.BY_ID:
                return diag("loss.mean-over-classes", 0.9, failing,
                            f"{said} (Y = {d.Y} classes). {f.nonstandard}", exact=True)
        facts = said
    o = f.observation
    if o.loss < 0 <= o.ref.loss:  # -sum(log p) of probabilities is never below zero
        return diag("unmatched", 0.0, failing,
                    f"your loss is {o.loss:.6g}, below zero: a cross-entropy -sum(log p) of "
                    f"probabilities never is, so what your forward calls p is not a softmax "
                    f"(the standard model's loss here is {o.ref.loss:.6g}). The forward is the "
                    f"first thing to fix. {f.nonstandard}. Measured: {facts}",
                    fix="fix the forward first: p = np.exp(z) / np.sum(np.exp(z)), the "
                        "exponential of the logits divided by its own sum (not exp(z / sum) "
                        "nor exp(z) / sum(z)), and loss -= np.log(p[target]); then compare "
                        "your backward with dz = p - onehot(target)")
    return diag("unmatched", 0.0, failing,
                f"{f.nonstandard}. With no standard model to plant known bugs in, this is "
                f"what was measured: {facts}",
                fix="differentiate your own forward pass step by step and compare with your "
                    "backward; the groups named here are where they disagree")


def _not_reset(f: Findings, m: Matcher) -> Diagnosis:
    o = f.observation
    assert f.second_call is not None  # the behaviour check that failed made the second call
    loss2, g2 = f.second_call
    ratios = []
    for k in m.names:
        a, b = o.grads[k], g2[k]
        if np.any(a):
            ratios.append(float(np.sum(a * b) / np.sum(a * a)))
    doubled = ratios and all(abs(r - 2) < 1e-6 for r in ratios)
    first_ok = not m.failing
    ev = ("calling your code twice on the same case gave different gradients"
          + (" (the second call returned exactly twice the first: accumulators kept between calls)"
             if doubled else "")
          + ("; the first call matched the reference" if first_ok else "")
          + f"; loss {o.loss:.10g} then {loss2:.10g}")
    return diag("grad.not-reset", 0.97 if first_ok else 0.8,
                [k for k in m.names if not np.array_equal(o.grads[k], g2[k])], ev,
                exact=first_ok)


def _params_modified(f: Findings, m: Matcher) -> Diagnosis | None:
    """The call changed the parameter arrays it was given (a training step inside the
    gradient function, a gradient buffer that is a parameter). The gradients of that call can
    be right; every later call, and the caller's model, sees moved parameters."""
    o = f.observation
    changed = o.info.get("modified") or {}
    if not isinstance(changed, dict):  # a plugin adapter's list of names
        changed = dict.fromkeys(changed)
    groups = [k for k in m.names if o.layout.user_name(k) in changed]
    if not groups:
        return None  # only the inputs or the state were touched: the check says so
    parts = []
    for k in groups:
        size = changed[o.layout.user_name(k)]
        parts.append(f"{o.layout.user_name(k)} (by up to {size:.3g})" if size is not None
                     else o.layout.user_name(k))
    others = [n for n in changed if n not in {o.layout.user_name(k) for k in groups}]
    clean = not (m.failing or m.loss_bad)
    ev = (f"after one call your code had changed the parameters it was given: "
          f"{', '.join(parts)}" + (f" (and {', '.join(others)})" if others else "")
          + (". The loss and gradients of that call match the reference, so the gradient "
             "computation is right; but whoever calls it (a training loop, a gradient check) "
             "sees different parameters afterwards" if clean else
             ". Other groups fail too: a gradient function that moves the parameters is "
             "wrong whatever else is"))
    return diag("grad.params-modified", 0.97 if clean else 0.7, groups, ev, exact=clean)


def _inputs_modified(f: Findings, m: Matcher) -> Diagnosis | None:
    """The call changed an array it was given that is no parameter: the initial state
    (hprev), the inputs or targets. The gradients can be right; the caller's state is not."""
    o = f.observation
    changed = o.info.get("modified") or {}
    if not isinstance(changed, dict):
        changed = dict.fromkeys(changed)
    params = {o.layout.user_name(k) for k in m.names}
    others = [n for n in changed if n not in params]
    if not others:
        return None
    entry = m.probe.caps.get("entry") or "your gradient function"
    parts = [f"{n} (by up to {changed[n]:.3g})" if changed[n] is not None else n
             for n in others]
    clean = not (m.failing or m.loss_bad)
    ev = (f"after one call {entry} had changed arrays it was given that are not parameters: "
          f"{', '.join(parts)}" + (". Its loss and gradients match the reference; but the "
                                   "caller's arrays are not what it passed in any more" if clean
                                   else ". Other groups fail too"))
    first = others[0]
    if m.probe.caps.get("language") == "c":
        fix = (f"/* {first} is the caller's (const in bpttcheck.h): copy it into a buffer of "
               f"your own, memcpy(buf, {first}, ...), and change that */")
    else:
        fix = (f"copy it first: `{first} = {first}.copy()` as the first line of "
               f"{entry.removeprefix('your ')}, or write into a new array")
    return diag("grad.inputs-modified", 0.97 if clean else 0.7, [], ev, exact=clean, fix=fix)


def _poisoned(m: Matcher) -> Diagnosis | None:
    """C output buffers start at POISON: a function that adds into them without zeroing first
    returns POISON + the right gradient."""
    if not m.probe.caps["poisoned_buffers"] or not m.failing:
        return None
    from bpttcheck.adapters.c_abi import POISON
    o = m.o
    added, unwritten = [], []
    for k in m.failing:
        u, r = o.grads[k], o.ref.grads[k]
        if same_values(u - POISON, r, m.rtol)[0] or np.allclose(u - POISON, r, rtol=1e-5, atol=1e-3):
            added.append(k)
        elif np.any(u == POISON):
            unwritten.append(k)
    if added and not unwritten and set(added) == set(m.failing):
        return diag("grad.not-reset", 0.97, added,
                    f"bpttcheck fills the gradient buffers with {POISON:g} before each call; "
                    f"your {', '.join('d' + k for k in added)} come back as exactly {POISON:g} "
                    f"plus the correct gradient: the function adds into them without zeroing "
                    f"them first (the ABI says grads are fully overwritten)", exact=True,
                    fix="memset(grads[i], 0, n_i * sizeof(float));  /* for every gradient, "
                        "before the time loop */")
    return None


def _overwritten_steps(m: Matcher) -> dict[str, int]:
    """Groups that equal a single time step's contribution (`=` where `+=` was meant): group
    -> that step, when it explains every failing group."""
    o = m.o
    if m.loss_bad or o.case.dims.T < 2:
        return {}
    found = {}
    for k in m.failing:
        for t in (0, o.case.dims.T - 1, *range(1, o.case.dims.T - 1)):
            if same_values(o.grads[k], o.ref.contrib[k][t], m.rtol)[0]:
                found[k] = t
                break
    return found if found and set(found) == set(m.failing) else {}


def _overwrite_diag(m: Matcher, steps: dict[str, int]) -> Diagnosis:
    T = m.o.case.dims.T
    parts = [f"d{m.shown(k)} equals step t={t}'s contribution alone" for k, t in steps.items()]
    ev = (f"{'; '.join(parts)} (to within {m.rtol:.1e} relative); the correct gradient sums all "
          f"{T} steps. Every other group matches the reference.")
    return diag("grad.overwrite-not-accumulate", 0.95, sorted(steps, key=m.names.index), ev,
                exact=True)


def _in_language(ds: list[Diagnosis], language: str, layout: Layout) -> list[Diagnosis]:
    """Fix snippets in the user's language, where the catalogue has the fix in it, and in
    their names (C: the ABI's, which are the reference's)."""
    for d in ds:
        bug = catalogue.BY_ID[d.id]
        if d.fix == bug.fix:
            names = {} if language == "c" else catalogue.user_names(layout, d.groups)
            d.fix = bug.fix_in(language, **names)
    return ds


def _rank(ds: list[Diagnosis]) -> list[Diagnosis]:
    seen, out = set(), []
    for d in sorted(ds, key=lambda d: -d.confidence):
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
    return out
