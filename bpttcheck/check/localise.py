"""When no known bug reproduces the user's gradients: what can be measured about where the
error is (groups, time steps, a scale factor, a transposition, truncated BPTT, T = 1)."""
from __future__ import annotations

import numpy as np

from bpttcheck.check.cases import make_case
from bpttcheck.check.matching import Matcher, diag, same_values
from bpttcheck.check.numerics import MATCH_SLACK, exact_multiple, needed_rtol
from bpttcheck.errors import UserCodeError
from bpttcheck.oracle.common import Dims
from bpttcheck.result import Diagnosis


def localise(m: Matcher) -> Diagnosis:
    """No known bug matches: say what we can measure about where the error is."""
    o = m.o
    facts, step_weights, slight = [], {}, []
    for k in m.failing:
        u, r = o.grads[k], o.ref.grads[k]
        dk = "d" + m.shown(k)
        if not np.all(np.isfinite(u)):
            facts.append(f"{dk} contains NaN or inf")
            continue
        if not np.any(u):
            facts.append(f"{dk} is all zeros (never accumulated?)")
            continue
        a = exact_multiple(u, r)
        if a is not None and abs(a - 1) <= 1e-6:  # right but for far less than a bug's error
            slight.append(k)
            facts.append(f"{dk} equals the correct gradient but for a relative "
                         f"{needed_rtol(u, r, o.ref.magnitude[k]):.2g}, over the tolerance of "
                         f"{m.rtol / MATCH_SLACK:.2g}")
            continue
        if a is not None:
            facts.append(f"{dk} is exactly {a:.6g} x the correct gradient")
            continue
        if u.ndim == 2 and u.shape[0] == u.shape[1] and np.allclose(u, r.T, rtol=1e-6, atol=1e-12):
            facts.append(f"{dk} is the transpose of the correct gradient")
            continue
        C = o.ref.contrib[k].reshape(o.case.dims.T, -1).T  # (entries, T)
        coef, *_ = np.linalg.lstsq(C, u.ravel(), rcond=None)
        # a fit with fewer entries than steps is always exact and says nothing
        if u.size >= 2 * o.case.dims.T and np.linalg.norm(C @ coef - u.ravel()) <= 1e-6 * np.linalg.norm(u):
            w = [round(float(c), 3) + 0.0 for c in coef]  # + 0.0: no -0.0 in the message
            facts.append(f"{dk} is a weighted sum of the per-step contributions with weights "
                         f"{w} (correct: all 1)")
            if np.allclose(coef, np.round(coef), atol=1e-6):
                step_weights[k] = [round(float(c)) for c in coef]
            continue
        facts.append(f"{dk} is off by up to {float(np.max(np.abs(u - r))):.3g}")
    if slight and len(slight) == len(m.failing) and not m.loss_bad:
        # the time-step and T = 1 probes match at the slack tolerance of planted bugs, which
        # errors this small pass: they would call right what failed
        facts.append("an error this small is no bug's: a small constant in your backward pass "
                     "(1 - h**2 + 1e-12), or one in your forward (tanh(x + 1e-12)) that your "
                     "backward does not follow, gives it; return the last state so that a "
                     "perturbed forward can be measured")
        return diag("unmatched", 0.0, m.failing,
                    "no known bug reproduces your gradients exactly. " + "; ".join(facts))
    steps = _step_pattern({m.shown(k): w for k, w in step_weights.items()})
    if steps:
        facts.insert(0, steps)
    depth = _truncation_depth(m)
    if depth:
        facts.append(f"dWxh, dWhh and dbh equal truncated BPTT of depth {depth} (each loss term "
                     f"back-propagated only {depth} step(s)): the recurrence stops too early")
    T1 = None if steps else _t1_probe(m)  # a skipped step makes T = 1 wrong for another reason
    if T1:
        facts.append(T1)
    if m.loss_bad:
        facts.append(f"the loss itself differs ({o.loss:.10g} vs {o.ref.loss:.10g}): start with "
                     "the forward pass (softmax, log, the one-hot input)")
    return diag("unmatched", 0.0, m.failing,
                "no known bug reproduces your gradients exactly. " + "; ".join(facts))


def _step_pattern(weights: dict[str, list[int]]) -> str | None:
    """Whole-number per-step weights shared by the groups: steps left out or counted twice."""
    if not weights:
        return None
    first = next(iter(weights.values()))
    if any(w != first for w in weights.values()) or all(x == 1 for x in first):
        return None
    missing = [t for t, x in enumerate(first) if x == 0]
    twice = [t for t, x in enumerate(first) if x > 1]
    parts = []
    if missing:
        parts.append(f"time step(s) t = {', '.join(map(str, missing))} never reach the "
                     f"gradients")
    if twice:
        parts.append(f"time step(s) t = {', '.join(map(str, twice))} are counted more than once")
    if not parts:
        return None
    return ("; ".join(parts) + f" (in {', '.join('d' + k for k in weights)}): check the bounds of "
            "your backward loop, e.g. `for t in reversed(range(len(inputs)))` runs t = T-1 down "
            "to 0")


def _truncation_depth(m: Matcher) -> int | None:
    """k if the failing groups are truncated BPTT of depth k (the reference with
    bptt.truncated:k planted), for an RNN whose output layer is right."""
    o = m.o
    if m.arch.name != "rnn" or m.loss_bad or not {"Wxh", "Whh", "bh"} & set(m.failing):
        return None
    if any(k in m.failing for k in ("Why", "by")):
        return None
    hidden = [n for n in ("Wxh", "Whh", "bh") if n in o.grads]  # bh may be absent (model.py)
    for k in range(1, o.case.dims.T):
        g = m.trace(o, [f"bptt.truncated:{k}"]).grads
        if all(same_values(o.grads[n], g[n], m.rtol)[0] for n in hidden):
            return k
    return None


def _t1_probe(m: Matcher) -> str | None:
    """T = 1 vs T = 2 separates bugs within one step from bugs in what flows between steps."""
    o = m.o
    d = o.case.dims
    if m.probe.caps["fixed_sizes"] == "TXHY":
        return None  # its T is fixed by a #define
    try:
        case = make_case(m.arch, Dims(T=1, X=d.X, H=d.H, Y=d.Y), o.case.seed + 11)
        obs = m.probe.observe(case, o.layout)
    except UserCodeError:
        return None
    bad = [k for k in m.names if not same_values(obs.grads[k], obs.ref.grads[k], m.rtol)[0]]
    if not bad:
        return ("with T = 1 every gradient is right: the bug is in what flows between time steps "
                "(dh_next / dc_next, the recurrent matrix, accumulation)")
    return (f"already wrong with T = 1 (in {', '.join('d' + m.shown(k) for k in bad)}): the bug "
            f"is inside a single step")
