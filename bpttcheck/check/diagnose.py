"""Naming the bug. The user's code is a function we can call, and the bugs people make are
few and known (catalogue.py): plant each in the reference and see which one the user's
output matches, exactly, on several cases. When none does, localise honestly."""
from __future__ import annotations

import itertools

import numpy as np

from bpttcheck.check import catalogue
from bpttcheck.check.cases import make_case
from bpttcheck.errors import UserCodeError
from bpttcheck.check.numerics import compare, oracle_rtol
from bpttcheck.oracle.common import Dims
from bpttcheck.result import Diagnosis

EXTRA_CASES = 2
MATCH_SLACK = 30.0  # cases beyond the first on which an exact match is confirmed


def _same(u: np.ndarray, m: np.ndarray, rtol: float) -> tuple[bool, float]:
    """Equal within rtol, with NaN/inf required at the same places (a buggy softmax can make
    both the user's and the mutant's values non-finite). Returns (match, max abs difference)."""
    fu, fm = np.isfinite(u), np.isfinite(m)
    if not np.array_equal(fu, fm):
        return False, float("inf")
    if not fu.any():
        return True, 0.0
    c = compare(u[fu], m[fm], rtol)
    return c.passed, c.max_abs_error


class Matcher:
    def __init__(self, ck, w, o):
        self.ck, self.w, self.o = ck, w, o
        self.arch = ck.arch
        self.dtype = ck.report.dtype
        d = o.case.dims
        # Matching a mutant needs less precision than passing a check (mutants differ by O(0.1))
        # and more slack: a buggy formula (exp of exp) can be far worse conditioned than the
        # right one, so the user's round-off is amplified.
        self.rtol = MATCH_SLACK * oracle_rtol(self.dtype, d.T, d.H + d.X + d.Y)
        self.names = list(self.arch.param_names)
        self.failing = [g.name for g in ck.report.groups if g.status == "fail"]
        self.loss_bad = any(c.name == "forward.loss" and c.status == "fail" for c in ck.report.checks)
        self.extra = None

    def trace(self, obs, bugs, reduction=None):
        return self.ck.reference(obs.case, self.dtype, reduction or obs.reduction, frozenset(bugs))

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
        ok_loss = (np.isnan(obs.loss) and np.isnan(tr.loss)) or self.ck.loss_matches(
            obs.loss, tr.loss, self.dtype, obs.case)
        worst, changed, exact = 0.0, [], ok_loss
        for k in self.names:
            same, diff = _same(obs.grads[k], tr.grads[k], self.rtol)
            exact = exact and same
            worst = max(worst, diff)
            if not _same(tr.grads[k], obs.ref.grads[k], self.rtol)[0]:
                changed.append(k)
        return exact, worst, changed

    def extra_observations(self):
        """The user's code on further cases: other seeds, other sizes where sizes are free."""
        if self.extra is None:
            self.extra = []
            d = self.o.case.dims
            fixed = self.ck.caps["fixed_sizes"] != "none"
            Ts = (d.T, d.T) if self.ck.caps["fixed_sizes"] == "TXHY" else (5, 7)  # T fixed too
            sizes = [Dims(T=Ts[0], X=d.X, H=d.H, Y=d.Y), Dims(T=Ts[1], X=d.X, H=d.H, Y=d.Y)] if fixed else \
                [Dims(T=5, X=3, H=5, Y=4), Dims(T=7, X=4, H=3, Y=6)]
            for i, dims in enumerate(sizes[:EXTRA_CASES]):
                case = make_case(self.arch, dims, self.o.case.seed + 101 + i)
                try:
                    self.extra.append(self.ck.observe(self.w, case, self.o.layout))
                except UserCodeError:
                    pass
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


def diagnose(ck, w, o) -> list[Diagnosis]:
    return _in_language(_diagnose(ck, w, o), ck.caps["language"])


def _diagnose(ck, w, o) -> list[Diagnosis]:
    m = Matcher(ck, w, o)
    out: list[Diagnosis] = []
    if getattr(ck, "gate_order_mismatch", None):
        declared, actual = ck.gate_order_mismatch
        out.append(_diag("layout.gate-order", 0.97, m.names[:8],
                         f"your loss equals the reference's ({o.loss:.10g}) only when the stacked "
                         f"matrix is read in gate order {actual!r}; with the declared order "
                         f"{declared!r} it does not. Forward and backward agree with each other.",
                         exact=True))
    if any(c.name == "probe.large-logits" and c.status == "fail" for c in ck.report.checks):
        alone = not (m.failing or m.loss_bad)  # else another bug is the first thing to fix
        out.append(_diag("softmax.unstable", 0.95 if alone else 0.5, ["Why" if "Why" in m.names else "Wy"],
                         ck.large_logit_evidence, exact=True))
    if any(c.name == "behaviour.repeat" and c.status == "fail" for c in ck.report.checks):
        out.append(_not_reset(ck, m, o))
    poisoned = _poisoned(m, o)
    if poisoned:
        out.append(poisoned)
        return _rank(out)
    if not (m.failing or m.loss_bad) or getattr(ck, "gate_order_mismatch", None):
        return _rank(out)
    if ck.report.checks and _first_call_clean(ck) and out:
        return _rank(out)  # the first call was right: the findings above are the whole story

    singles = catalogue.mutants(m.arch.name)
    scored = []
    for bug in singles:
        exact, worst, changed = m.explains(o, [bug])
        if exact and changed + (["loss"] if m.loss_bad else []):
            scored.append(([bug], worst, changed))
    if not scored:
        scored += _overwrite(m, o)
    if not scored:
        for a, b in itertools.combinations(singles, 2):
            if a.split(":")[0] == b.split(":")[0]:
                continue
            exact, worst, changed = m.explains(o, [a, b])
            if exact and changed:
                scored.append(([a, b], worst, changed))
    for bugs, worst, changed in scored[:4]:
        if bugs[0].startswith("grad.overwrite-not-accumulate"):
            out.append(_overwrite_diag(m, o, bugs, changed))
            continue
        n_ok, n, worst_all = m.confirm(bugs)
        conf = 0.99 if n_ok == n and n >= 3 else 0.9 if n_ok == n else 0.6
        if len(bugs) > 1:
            conf -= 0.03
        tr = m.trace(o, [])
        diffs = {k: float(np.max(np.abs(np.nan_to_num(o.grads[k] - tr.grads[k], nan=np.inf))))
                 for k in changed}
        worst_g = max(diffs, key=diffs.get) if diffs else None
        for bug in bugs:
            bid = bug.split(":")[0]
            groups = [g for g in changed if g in m.failing] or changed
            variant = bug.partition(":")[2]
            ev = (f"with this bug planted in the float64 reference ({', '.join(bugs)}), its loss and "
                  f"all {len(m.names)} gradients equal yours to within {max(worst, worst_all):.1e} "
                  f"(tolerance {m.rtol:.1e} relative) on {n_ok} of {n} cases")
            if worst_g:
                ev += (f"; the correct d{worst_g} differs from yours by up to {diffs[worst_g]:.3g}")
            if m.loss_bad:
                ev += f"; your loss {o.loss:.10g} vs the correct {tr.loss:.10g}"
            if variant:
                ev += f" (variant: {variant})"
            out.append(_diag(bid, conf, groups, ev, exact=n_ok == n))
    if not scored:
        out.append(_localise(m, o))
    return _rank(out)


def _first_call_clean(ck) -> bool:
    return all(g.status == "pass" for g in ck.report.groups) and all(
        c.status == "pass" for c in ck.report.checks if c.name.startswith("forward."))


def _not_reset(ck, m, o) -> Diagnosis:
    loss2, g2 = ck.second_call
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
    return _diag("grad.not-reset", 0.97 if first_ok else 0.8,
                 [k for k in m.names if not np.array_equal(o.grads[k], g2[k])], ev,
                 exact=first_ok)


def _poisoned(m, o) -> Diagnosis | None:
    """C output buffers start at POISON: a function that adds into them without zeroing first
    returns POISON + the right gradient."""
    if not m.ck.caps["poisoned_buffers"] or not m.failing:
        return None
    from bpttcheck.adapters.c_abi import POISON
    added, unwritten = [], []
    for k in m.failing:
        u, r = o.grads[k], o.ref.grads[k]
        if _same(u - POISON, r, m.rtol)[0] or np.allclose(u - POISON, r, rtol=1e-5, atol=1e-3):
            added.append(k)
        elif np.any(u == POISON):
            unwritten.append(k)
    if added and not unwritten and set(added) == set(m.failing):
        return _diag("grad.not-reset", 0.97, added,
                     f"bpttcheck fills the gradient buffers with {POISON:g} before each call; "
                     f"your {', '.join('d' + k for k in added)} come back as exactly {POISON:g} "
                     f"plus the correct gradient: the function adds into them without zeroing "
                     f"them first (the ABI says grads are fully overwritten)", exact=True,
                     fix="memset(grads[i], 0, n_i * sizeof(float));  /* for every gradient, "
                         "before the time loop */")
    return None


def _overwrite(m, o):
    """Groups that equal a single time step's contribution: `=` where `+=` was meant."""
    if m.loss_bad or o.case.dims.T < 2:
        return []
    found = {}
    for k in m.failing:
        for t in (0, o.case.dims.T - 1, *range(1, o.case.dims.T - 1)):
            if _same(o.grads[k], o.ref.contrib[k][t], m.rtol)[0]:
                found[k] = t
                break
    if found and set(found) == set(m.failing):
        m.overwrite_steps = found
        return [(["grad.overwrite-not-accumulate"], 0.0, sorted(found, key=m.names.index))]
    return []


def _overwrite_diag(m, o, bugs, groups) -> Diagnosis:
    steps = m.overwrite_steps
    T = o.case.dims.T
    parts = [f"d{k} equals step t={t}'s contribution alone" for k, t in steps.items()]
    ev = (f"{'; '.join(parts)} (to within {m.rtol:.1e} relative); the correct gradient sums all "
          f"{T} steps. Every other group matches the reference.")
    return _diag("grad.overwrite-not-accumulate", 0.95, groups, ev, exact=True)


def _localise(m, o) -> Diagnosis:
    """No known bug matches: say what we can measure about where the error is."""
    facts, step_weights = [], {}
    for k in m.failing:
        u, r = o.grads[k], o.ref.grads[k]
        if not np.all(np.isfinite(u)):
            facts.append(f"d{k} contains NaN or inf")
            continue
        if not np.any(u):
            facts.append(f"d{k} is all zeros (never accumulated?)")
            continue
        rr = float(np.sum(r * r))
        if rr > 0:
            a = float(np.sum(u * r) / rr)
            if np.linalg.norm(u - a * r) <= 1e-6 * np.linalg.norm(r):
                facts.append(f"d{k} is exactly {a:.6g} x the correct gradient")
                continue
        if u.ndim == 2 and u.shape[0] == u.shape[1] and np.allclose(u, r.T, rtol=1e-6, atol=1e-12):
            facts.append(f"d{k} is the transpose of the correct gradient")
            continue
        C = o.ref.contrib[k].reshape(o.case.dims.T, -1).T  # (entries, T)
        coef, *_ = np.linalg.lstsq(C, u.ravel(), rcond=None)
        # a fit with fewer entries than steps is always exact and says nothing
        if u.size >= 2 * o.case.dims.T and np.linalg.norm(C @ coef - u.ravel()) <= 1e-6 * np.linalg.norm(u):
            w = [round(float(c), 3) + 0.0 for c in coef]  # + 0.0: no -0.0 in the message
            facts.append(f"d{k} is a weighted sum of the per-step contributions with weights "
                         f"{w} (correct: all 1)")
            if np.allclose(coef, np.round(coef), atol=1e-6):
                step_weights[k] = [int(round(c)) for c in coef]
            continue
        facts.append(f"d{k} is off by up to {float(np.max(np.abs(u - r))):.3g}")
    steps = _step_pattern(step_weights)
    if steps:
        facts.insert(0, steps)
    depth = _truncation_depth(m, o)
    if depth:
        facts.append(f"dWxh, dWhh and dbh equal truncated BPTT of depth {depth} (each loss term "
                     f"back-propagated only {depth} step(s)): the recurrence stops too early")
    T1 = None if steps else _t1_probe(m, o)  # a skipped step makes T = 1 wrong for another reason
    if T1:
        facts.append(T1)
    if m.loss_bad:
        facts.append(f"the loss itself differs ({o.loss:.10g} vs {o.ref.loss:.10g}): start with "
                     "the forward pass (softmax, log, the one-hot input)")
    return _diag("unmatched", 0.0, m.failing,
                 "no known bug reproduces your gradients exactly. " + "; ".join(facts),
                 fix="compare your backward loop line by line with the derivative of your forward "
                     "pass; the groups and time steps named here are where to look")


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


def _truncated_rnn(P, xs, hs, dys, k):
    """RNN gradients of Wxh, Whh, bh when each step's loss is back-propagated only k steps."""
    g = {n: np.zeros_like(P[n]) for n in ("Wxh", "Whh", "bh")}
    for t in range(len(xs)):
        dh = P["Why"].T @ dys[t]  # (H,)
        for s in range(t, max(t - k, -1), -1):
            draw = (1.0 - hs[s + 1] ** 2) * dh
            g["bh"] += draw
            g["Wxh"][:, xs[s]] += draw
            g["Whh"] += np.outer(draw, hs[s])
            dh = P["Whh"].T @ draw
    return g


def _truncation_depth(m, o) -> int | None:
    if m.arch.name != "rnn" or m.loss_bad or not {"Wxh", "Whh", "bh"} & set(m.failing):
        return None
    if any(k in m.failing for k in ("Why", "by")):
        return None
    ref = o.ref
    dys = ref.probs.copy()
    dys[np.arange(len(o.case.ys)), o.case.ys] -= 1.0
    if o.reduction == "mean":
        dys /= len(o.case.ys)
    for k in range(1, o.case.dims.T):
        g = _truncated_rnn(o.case.params, o.case.xs, ref.hs, dys, k)
        if all(_same(o.grads[n], g[n], m.rtol)[0] for n in g):
            return k
    return None


def _t1_probe(m, o) -> str | None:
    """T = 1 vs T = 2 separates bugs within one step from bugs in what flows between steps."""
    d = o.case.dims
    if m.ck.caps["fixed_sizes"] == "TXHY":
        return None  # its T is fixed by a #define
    try:
        case = make_case(m.arch, Dims(T=1, X=d.X, H=d.H, Y=d.Y), o.case.seed + 11)
        obs = m.ck.observe(m.w, case, o.layout)
    except UserCodeError:
        return None
    bad = [k for k in m.names if not _same(obs.grads[k], obs.ref.grads[k], m.rtol)[0]]
    if not bad:
        return ("with T = 1 every gradient is right: the bug is in what flows between time steps "
                "(dh_next / dc_next, the recurrent matrix, accumulation)")
    return f"already wrong with T = 1 (in {', '.join(bad)}): the bug is inside a single step"


def _diag(bid: str, conf: float, groups: list[str], evidence: str, exact: bool = False,
          fix: str | None = None) -> Diagnosis:
    bug = catalogue.BY_ID.get(bid)
    return Diagnosis(id=bid, confidence=round(conf, 3), groups=groups,
                     title=bug.title if bug else "No known bug matches exactly",
                     evidence=evidence, fix=fix or (bug.fix if bug else ""), exact=exact)


def _in_language(ds: list[Diagnosis], language: str) -> list[Diagnosis]:
    """Fix snippets in the user's language: C code gets the C form where the catalogue has one."""
    if language != "c":
        return ds
    for d in ds:
        bug = catalogue.BY_ID.get(d.id)
        if bug and bug.fix_c and d.fix == bug.fix:
            d.fix = bug.fix_c
    return ds


def _rank(ds: list[Diagnosis]) -> list[Diagnosis]:
    seen, out = set(), []
    for d in sorted(ds, key=lambda d: -d.confidence):
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
    return out
