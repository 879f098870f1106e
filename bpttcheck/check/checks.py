"""The checks of sequence-style code (CONTRACT §4) on the first observation: forward pass,
every group against the reference, behaviour between calls, large logits, finite differences
of the user's own loss. Each writes its checks into the report and what it measured into the
Findings."""
from __future__ import annotations

import numpy as np

from bpttcheck.check import perturbation
from bpttcheck.check.cases import Case, make_case, random_direction
from bpttcheck.check.findings import Findings
from bpttcheck.check.model import facts_of
from bpttcheck.check.numerics import (
    arithmetic_dtype,
    compare,
    directional_check,
    fd_offsets,
    fd_rtol,
    fd_step,
    oracle_rtol,
)
from bpttcheck.check.probe import Probe, loss_rtol
from bpttcheck.check.recorder import Recorder, fd_result, group_result, spec_tolerance
from bpttcheck.check.truncation import truncated
from bpttcheck.errors import UserCodeError

SMALL_MODEL = 5000  # parameters: below this every group gets its own finite-difference check


def check_forward(rec: Recorder, probe: Probe, f: Findings) -> None:
    o, r = f.observation, rec.report
    own = loss_rtol(f.dtype, o.case)
    if f.perturbation:
        rec.note("model.perturbed", f"Your forward is the standard {probe.arch.name}, perturbed",
                 perturbation.note(o, f.perturbation, probe.arch.name, f.perturbation_strict,
                                   "grad_rtol" in f.tolerances))
        if perturbation.visible(o, f.perturbation) and not f.perturbation_strict:
            own = perturbation.LIMIT  # accepted up to the limit of a perturbation
    rtol = spec_tolerance(rec, f.tolerances, "loss_rtol", own, f.dtype)
    r.tolerances["loss_rtol"] = rtol
    r.loss = {"user": o.loss, "reference": o.ref.loss}
    if o.reduction == "mean":
        _note_mean(rec, probe, f)
    ok = bool(np.isfinite(o.loss)) and abs(o.loss - o.ref.loss) <= rtol * max(abs(o.ref.loss), 1)
    message = (f"loss {o.loss:.10g}, reference {o.ref.loss:.10g} "
               f"(|diff| {abs(o.loss - o.ref.loss):.2e}, tolerance "
               f"{rtol * max(abs(o.ref.loss), 1):.1e})")
    if f.forward_standard:  # a perturbation too small to measure (perturbation.unmeasured)
        rec.note("model.perturbed", "Your gradients were checked against your own loss",
                 f.nonstandard or "")
    elif f.nonstandard:  # not a failure: the model is the user's own (sequence.py)
        rec.note("model.nonstandard", "Checked against your own loss", f.nonstandard)
        rec.add("forward.loss", False, message + "; not judged: not the standard model"
                ).status = "skip"
        return
    why = (f"; your forward is the standard model perturbed by {f.perturbation:.2g}, which "
           f"the assignment's model = \"standard\" does not accept (note model.perturbed)"
           if f.perturbation and f.perturbation_strict else "")
    rec.add("forward.loss", ok, message + ("" if ok else why))
    if all(s is None for s in o.state):
        rec.note("forward.no-state", "No last state returned",
                 "your function returned no last hidden state, so it was not checked; "
                 + ("return it last from lossFun (..., hs[len(inputs)-1]) to have it "
                    "compared" if probe.caps["entry"] == "lossFun" else
                    "return (loss, grads, last_state) to have it compared"))
    for name, user, ref in zip(probe.arch.state_names, o.state, o.ref.state, strict=False):
        if user is None:
            continue
        cmp = compare(user, ref, rtol)
        rec.add(f"forward.last_{name}", cmp.passed,
                f"last {name}: max abs error {cmp.max_abs_error:.2e} "
                f"(tolerance {cmp.tolerance:.1e})" + ("" if cmp.passed else why))


def _gradients_match(probe: Probe, f: Findings) -> bool:
    o, d = f.observation, f.observation.case.dims
    rtol = oracle_rtol(f.dtype, d.T, d.H + d.X + d.Y, f.perturbation)
    return all(compare(o.grads[k], o.ref.grads[k], rtol).passed for k in probe.arch.param_names
               if k in o.grads)


def _note_mean(rec: Recorder, probe: Probe, f: Findings) -> None:
    """The loss.mean note, stating only what was measured: the reference's own sum, and an
    equality only when the user's loss is that sum divided by T (the reduction may also have
    been read off the gradients, when the loss matches neither)."""
    o, T = f.observation, f.observation.case.dims.T
    total = probe.reference(o.case, f.dtype, "sum").loss
    if probe.loss_matches(o.loss, o.ref.loss, f.dtype, o.case):
        rec.note("loss.mean", "Loss averaged over time",
                 f"your loss {o.loss:.10g} equals the reference's sum {total:.10g} divided by "
                 f"T = {T} ({o.ref.loss:.10g}); gradients are checked against the mean")
    elif _gradients_match(probe, f):  # else the reduction says nothing the user can use
        rec.note("loss.mean", "Gradients averaged over time",
                 f"your loss {o.loss:.10g} is neither the reference's sum {total:.10g} nor its "
                 f"mean over T = {T} steps {o.ref.loss:.10g}; your gradients are closer to the "
                 f"mean's, so they are checked against the mean")


def check_groups(rec: Recorder, probe: Probe, f: Findings, allow_truncated: bool = True) -> None:
    o, r = f.observation, rec.report
    d = o.case.dims
    rtol = spec_tolerance(rec, f.tolerances, "grad_rtol",
                          oracle_rtol(f.dtype, d.T, d.H + d.X + d.Y, f.perturbation), f.dtype)
    r.tolerances["grad_rtol"] = rtol
    if f.nonstandard:  # no reference to compare with: check_fd judges every group
        return
    if allow_truncated:
        _recognise_truncation(rec, probe, f, rtol)
    clip = clip_level(o.grads, o.ref.grads, rtol)
    cmps, clipped_groups = {}, []
    for k in probe.arch.param_names:
        u, ref = o.grads[k], o.ref.grads[k]
        mag = o.ref.magnitude[k]  # per-step terms: cancellation's size
        cmps[k] = compare(u, ref, rtol, magnitude=mag)
        if not cmps[k].passed and clip is not None:
            c2 = compare(u, np.clip(ref, -clip, clip), rtol, magnitude=mag)
            if c2.passed:
                cmps[k] = c2
                clipped_groups.append(k)
    doubts: dict[str, str] = {}
    if clipped_groups:
        assert clip is not None
        doubts = _confirm_clipping(probe, f, clip, rtol, clipped_groups)
    if doubts:  # clipping not accepted: every group is judged against the reference
        first = next(iter(doubts))
        for k in clipped_groups:
            mag = o.ref.magnitude[k]
            cmps[k] = compare(o.grads[k], o.ref.grads[k], rtol, magnitude=mag)
            doubts.setdefault(k, f"clipping is not accepted (d{first}: {doubts[first]})")
        clipped_groups = []
    for k in probe.arch.param_names:
        cmp, clipped = cmps[k], (clip if k in clipped_groups else None)
        shown = o.layout.group_name(k, d.H)
        what = f"d{shown}" + (f" (against BPTT truncated at {f.truncated} steps)"
                              if k in f.truncated_groups else "")
        g, message = group_result(k, shown, cmp, what, clipped)
        passed = cmp.passed and k not in doubts
        if k in doubts:
            g.status = "fail"
            message += f"; {doubts[k]}"
        if not passed:
            f.failing_groups.append(k)
        r.groups.append(g)
        rec.add(f"grad.{k}", passed, message)
    if clip is not None and any(g.clipped_at for g in r.groups):
        groups = [g.name for g in r.groups if g.clipped_at]
        rec.note("grad.clipped", f"Gradients clipped at ±{clip:g} inside your function",
                 f"entries of {', '.join(groups)} are pinned at ±{clip:g} exactly where the "
                 f"reference exceeds {clip:g}; everything else matches, and on a second case "
                 f"whose gradients all lie within ±{clip / 10:g} (nothing to clip) every "
                 f"gradient equals the reference. Clipping is fine for training; it is not "
                 f"part of the gradient, so it was allowed for here, and the finite-difference "
                 f"checks were made on that second case.")


def _confirm_clipping(probe: Probe, f: Findings, clip: float, rtol: float,
                      clipped: list[str]) -> dict[str, str]:
    """Clipping is accepted only when it is plausible: each clipped group keeps at least half
    of its entries unclipped and exact, and on a second case whose true gradients all lie
    within ±clip/10 (nothing to clip) every group equals the reference; the finite
    differences are then taken there (f.unclipped). Returns why, per group, it is not."""
    o = f.observation
    too_many = {}
    for k in clipped:
        ref = o.ref.grads[k]
        n = int(np.sum(np.abs(ref) > clip))
        if 2 * n > ref.size:
            too_many[k] = (f"it looks clipped at ±{clip:g}, which pins {n} of its {ref.size} "
                           f"entries: clipping that leaves fewer than half of a gradient's "
                           f"entries as they are is not accepted")
    if too_many:
        return too_many
    why = f"it looks clipped at ±{clip:g}, which could not be confirmed: "
    if f.truncated:
        return {k: why + "your gradients are also truncated BPTT" for k in clipped}
    made = unclipped_case(probe, o.case, f.dtype, o.reduction, clip / 10)
    if made is None:
        return {k: why + f"no case with every gradient within ±{clip / 10:g} could be made"
                for k in clipped}
    case, ref = made
    obs = probe.observe(case, o.layout)
    obs.ref, obs.reduction = ref, o.reduction
    doubts = {}
    for k in probe.arch.param_names:
        cmp = compare(obs.grads[k], ref.grads[k], rtol,
                      magnitude=ref.magnitude[k])
        if not cmp.passed:
            idx = ",".join(map(str, cmp.worst_index))
            doubts[k] = (f"on a second case whose gradients all lie within ±{clip / 10:g} "
                         f"(nothing to clip) d{o.layout.group_name(k, case.dims.H)} differs from the reference: worst [{idx}] "
                         f"yours {cmp.worst_user:.6g} vs reference {cmp.worst_ref:.6g}, "
                         f"{cmp.n_bad} of {cmp.n} entries out of tolerance")
    if not probe.loss_matches(obs.loss, ref.loss, f.dtype, case):
        for k in clipped:
            doubts.setdefault(k, f"on a second case whose gradients all lie within "
                                 f"±{clip / 10:g} your loss {obs.loss:.10g} differs from the "
                                 f"reference {ref.loss:.10g}")
    if not doubts:
        f.unclipped = obs
    return doubts


UNCLIP_BOOSTS = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 28.0)


def unclipped_case(probe: Probe, base: Case, dtype: str, reduction: str, bound: float):
    """(case, reference) whose gradients are all smaller than ``bound``: every target the same
    token, which the output bias favours by a margin large enough that the model is nearly
    sure of it, so dL/dlogits (and every gradient behind it) is small. None when the model
    has no output bias or no margin gets there."""
    d = base.dims
    biases = [k for k, v in base.params.items() if v.shape == (d.Y,)]
    if not biases:
        return None
    out_b = biases[-1]  # the output layer's bias: the last (Y,) vector
    ys = [0] * d.T
    for boost in UNCLIP_BOOSTS:
        params = dict(base.params)
        params[out_b] = params[out_b].copy()
        params[out_b][0] = float(np.max(params[out_b])) + boost
        case = Case(base.arch, d, params, list(base.xs), ys, base.state, base.seed)
        ref = probe.reference(case, dtype, reduction)
        if all(float(np.max(np.abs(g), initial=0.0)) < bound for g in ref.grads.values()):
            return case, ref
    return None


MAX_TRUNCATION = 32  # depths tried: WildML truncates at 4 (k = 5)


def _recognise_truncation(rec: Recorder, probe: Probe, f: Findings, rtol: float) -> None:
    """Truncated BPTT (each loss term back-propagated at most k steps) is a technique, not a
    bug: when the gradients equal the reference truncated at some k < T (the results of the
    first call; no new calls), they are judged against that reference from here on, and
    finite differences, which can only agree with the full gradient, skip the groups it
    changes (check_fd)."""
    o = f.observation
    T = o.case.dims.T

    def agrees(ref, names=probe.arch.param_names) -> bool:
        return all(compare(o.grads[k], ref.grads[k], rtol,
                           magnitude=ref.magnitude[k]).passed
                   for k in names)

    if T < 2 or agrees(o.ref) or not probe.loss_matches(o.loss, o.ref.loss, f.dtype, o.case):
        return
    if _late_tokens_wrong(probe, o, rtol):
        return  # what no truncation changes is wrong: something else is (no depth can match)
    # from k = 2: depth 1 (nothing from later steps) is the catalogue's rnn.missing-dh-next,
    # a bug the contract names, not a truncation anyone chooses
    native = True  # the reference plants truncation itself (RNN); else check/truncation.py
    windows: dict = {}  # the windows' references, shared by every depth (truncation.py)
    # the built-in references' step-by-step float64 forward: chained one-step windows give the
    # true states bit for bit (tests/test_budget.py); plugins and rounding take the long way
    chain = (probe.arch.name in ("rnn", "lstm", "gru") and not getattr(probe, "rounding", None)
             and arithmetic_dtype(f.dtype) == np.float64)
    for k in range(2, min(T, MAX_TRUNCATION + 1)):
        if native:
            tr = probe.reference(o.case, f.dtype, o.reduction,
                                 frozenset({f"bptt.truncated:{k}"}))
            if k == 2 and all(np.array_equal(tr.grads[n], o.ref.grads[n])
                              for n in probe.arch.param_names):
                native = False
        if not native:
            if facts_of(probe.arch).zero_state:
                return  # its reference always starts from zero: no window from a later state
            tr = truncated(lambda c: probe.reference(c, f.dtype), o.case, k, o.ref, o.reduction,
                           windows, chain=chain)
        changed = [n for n in probe.arch.param_names  # beyond rounding: the windows' sums
                   if not compare(tr.grads[n], o.ref.grads[n], rtol).passed]
        if k == 2 and not agrees(o.ref, [n for n in probe.arch.param_names
                                         if n not in changed]):
            return  # a group truncation leaves alone is wrong: something else is
        if agrees(tr):
            f.truncated, f.truncated_groups = k, changed
            o.ref = tr
            names = ", ".join("d" + o.layout.group_name(n, o.case.dims.H) for n in changed)
            rec.note("bptt.truncated", f"Truncated BPTT of depth {k}",
                     f"your {names} equal backpropagation through time truncated at {k} "
                     f"step(s): each step's loss is back-propagated through at most {k} "
                     f"step(s), its own included, so the first loss term cut short is step "
                     f"t = {k}'s (it stops at step 1, not 0), and step t's reaches back to "
                     f"step t-{k - 1} (`bptt_truncate = {k - 1}` in the WildML tutorial's terms). "
                     f"Truncation is a training technique, not the gradient of "
                     f"the loss: your gradients were checked against the truncated reference, "
                     f"and finite differences were skipped for these groups. A spec with "
                     f"[checks] \"bptt.truncated\" = \"fail\" requires full BPTT instead.")
            return


def _late_tokens_wrong(probe: Probe, o, rtol: float) -> bool:
    """Whether the gradient columns that BPTT truncated at any depth k >= 2 leaves as they
    are differ from the reference far beyond rounding: the input-weight columns of tokens
    that occur only in the last two steps (from there no path reaches back 2 steps). Then no
    depth can explain the gradients, and the search over depths (about T^3/6 steps of the
    reference) is skipped. Only for the built-in architectures, whose input weights are known:
    the RNN's Wxh (H, X), an LSTM's or GRU's gate weights (H, H+X) acting on [h; x]."""
    d, xs = o.case.dims, o.case.xs
    if probe.arch.name not in ("rnn", "lstm", "gru") or d.T < 3:
        return False
    late = sorted(set(xs[-2:]) - set(xs[:-2]))
    if not late:
        return False
    for k, g in o.grads.items():
        ref = o.ref.grads.get(k)
        if ref is None or g.shape != ref.shape or g.ndim != 2:
            continue
        if probe.arch.name == "rnn":
            if k != "Wxh":
                continue
            cols = late
        elif g.shape == (d.H, d.H + d.X):
            cols = [d.H + x for x in late]
        else:
            continue
        mag = o.ref.magnitude[k][:, cols]
        # 10x the tolerance: the truncated reference's columns differ from these by rounding
        if not compare(g[:, cols], ref[:, cols], 10 * rtol, magnitude=mag).passed:
            return True
    return False


def check_behaviour(rec: Recorder, w, f: Findings) -> None:
    o = f.observation
    changed = o.info.get("modified") or []
    params = {o.layout.user_name(k) for k in o.grads}
    # the state it was handed (hprev, c0, state): the caller's array changes, the gradients
    # do not; parameters and inputs change what the caller trains on
    state_only = bool(changed) and all(n not in params and n not in ("inputs", "targets")
                                       for n in changed)
    c = rec.add("behaviour.inputs-unchanged", not changed,
                "your code left its parameters and inputs as they were" if not changed else
                f"your code wrote into {', '.join(changed)}, the initial state its caller "
                f"handed it, in place: the gradients do not change, the caller's array does "
                f"(copy it first)" if state_only else
                f"your code modified {', '.join(changed)} in place; a gradient function must "
                f"not change what it is given (copy before modifying)")
    c._warns = state_only
    loss2, grads2, _, _ = w.call(o.case, o.layout)
    diffs = {k: 0.0 if np.array_equal(grads2[k], o.grads[k], equal_nan=True) else
             float(np.nanmax(np.abs(grads2[k] - o.grads[k]))) for k in o.grads}
    worst = max(diffs, key=lambda k: diffs[k])
    same = (loss2 == o.loss or (np.isnan(loss2) and np.isnan(o.loss))
            or abs(loss2 - o.loss) <= 1e-12 * max(abs(o.loss), 1))
    same = same and all(v <= 1e-12 * max(float(np.max(np.abs(o.grads[k]))), 1e-300)
                        for k, v in diffs.items())
    f.second_call = (loss2, grads2)
    rec.add("behaviour.repeat", same,
            "a second call on the same case gave the same loss and gradients" if same else
            f"a second call on the same case gave different results: loss {o.loss:.10g} then "
            f"{loss2:.10g}; d{o.layout.group_name(worst, o.case.dims.H)} differs by up to {diffs[worst]:.3g}. Something is kept "
            f"between calls (gradient accumulators or dh_next not reset to zero)")


def check_large_logits(rec: Recorder, w, probe: Probe, f: Findings) -> None:
    """Logits near 1000: exp overflows unless the softmax subtracts the max first. A finding
    here is a warning by default (check/severity.py): the gradient itself is right."""
    o = f.observation
    case, ref, top = large_logit_case(probe, o.case, f.dtype)
    if not all(np.all(np.isfinite(g)) for g in ref.grads.values()):
        return
    try:
        loss, grads, _, _ = w.call(case, o.layout)
    except UserCodeError as e:
        if e.kind != "exception":
            raise
        f.large_logit_evidence = (f"with logits up to about {top:.0f} your code raised: "
                                  f"{e.message}")
        rec.add("probe.large-logits", False, f.large_logit_evidence)
        return
    bad = [k for k, g in grads.items() if not np.all(np.isfinite(g))]
    if bad:
        f.large_logit_evidence = (
            f"on a case whose largest logit is about {top:.0f} (the reference stays finite: loss "
            f"{ref.loss:.6g}), your gradients {', '.join('d' + o.layout.group_name(k, case.dims.H) for k in bad)} contain NaN or "
            f"inf and your loss is {loss:.6g}: exp(z) overflows above z = 709")
    rec.add("probe.large-logits", not bad,
            f.large_logit_evidence or f"logits up to about {top:.0f}: your gradients stay finite")


LARGE_LOGIT = 1000.0  # the probe's largest logit: exp overflows above 709 (float64)


def large_logit_case(probe: Probe, base: Case, dtype: str):
    """(case, its reference, its largest logit): the base case's parameters with the output
    weights scaled until the reference's largest logit is about LARGE_LOGIT. The hidden states
    do not depend on the output layer, so logits grow linearly with its scale; a fixed scale
    would leave an LSTM's logits (h = o * tanh(c) is small) far below overflow."""
    d, seed = base.dims, base.seed + 31
    case = make_case(probe.arch, d, seed)
    ref = probe.reference(case, dtype)
    parts = _logit_parts(case, ref)
    if parts is None:  # an architecture without hidden states in its trace: a fixed scale
        case = make_case(probe.arch, d, seed, logit_scale=600.0)
        return case, probe.reference(case, dtype), float("nan")
    weighted, bias = parts
    scale = (LARGE_LOGIT - bias) / max(weighted, 1e-3)
    for _ in range(6):  # float32 rounding moves the logits a little: check they got there
        case = make_case(probe.arch, d, seed, logit_scale=scale)
        ref = probe.reference(case, dtype)
        weighted, bias = _logit_parts(case, ref) or parts
        if weighted + bias > 0.8 * LARGE_LOGIT:
            break
        scale *= 2.0
    return case, ref, weighted + bias


def _logit_parts(case: Case, ref) -> tuple[float, float] | None:
    """(max_t max_i (W_out @ h[t+1])_i, the output bias's largest entry) of the reference: the
    output weight is the last (Y, H) matrix, the bias the last (Y,) vector (0 if none)."""
    d = case.dims
    outs = [k for k, v in case.params.items() if v.shape == (d.Y, d.H)]
    if getattr(ref, "hs", None) is None or not outs:
        return None
    z = np.asarray(ref.hs[1:], dtype=np.float64) @ case.params[outs[-1]].T  # (T, Y)
    b = [float(np.max(v)) for v in case.params.values() if v.shape == (d.Y,)]
    return float(np.max(z)), (b[-1] if b else 0.0)


def per_group_fd(f: Findings) -> bool:
    """Whether each group gets a finite-difference direction of its own: on small models, on
    failing ones (evidence next to the reference's verdict), on a model of the user's own
    (where they are the verdict) and on a perturbed forward (check/perturbation.py: the
    assumption-free check beside a tolerance widened by a model of how the perturbation
    reaches the gradients)."""
    o = f.unclipped or f.observation
    n_params = sum(v.size for v in o.case.params.values())
    return (n_params <= SMALL_MODEL or bool(f.failing_groups) or bool(f.nonstandard)
            or bool(f.perturbation))


def fd_calls(probe: Probe, f: Findings) -> int:
    """Calls check_fd plans: five a direction, one direction or one more per group."""
    dirs = 1 + (len(probe.arch.param_names) if per_group_fd(f) else 0)
    return dirs * len(fd_offsets(fd_step(f.dtype)))


def check_fd(rec: Recorder, w, probe: Probe, f: Findings) -> None:
    # clipped gradients are not the loss's derivative: with clipping accepted, the finite
    # differences are taken on the second case, where nothing is clipped (check_groups)
    o, r = f.unclipped or f.observation, rec.report
    h = fd_step(f.dtype)
    rng = np.random.default_rng(o.case.seed + 7919)
    names = list(probe.arch.param_names)
    per_group = per_group_fd(f)
    # slow code: the per-group directions are extra evidence where the reference judges each
    # group, and are left out when they would make the check long (sandbox/budget.py); with
    # a model of the user's own they are the verdict and always run
    budget = getattr(w, "budget", None)
    extra = len(names) * len(fd_offsets(h))
    skipped = None
    if per_group and not f.nonstandard and budget is not None and not budget.affordable():
        per_group = False
        skipped = (budget.describe(), budget.estimate(budget.expected_calls()) or 0.0,
                   extra, budget.call_timeout)
        budget.plan(budget.expected_calls() - extra)
    dirs = [random_direction(o.case.params, rng)]
    if per_group:
        dirs += [random_direction(o.case.params, rng, only=k) for k in names]
    offsets = [(j, s) for j in range(len(dirs)) for s in fd_offsets(h)]
    losses = w.losses(o.case, o.layout, dirs, offsets)
    r.tolerances["fd_step"] = h
    share = spec_tolerance(rec, f.tolerances, "fd_rtol", fd_rtol(f.dtype), f.dtype)
    if "fd_rtol" in f.tolerances:
        r.tolerances["fd_rtol"] = share
    it = iter(losses)
    checks = []
    for d in dirs:
        vals = {s: next(it) for s in fd_offsets(h)}
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 in a NaN/inf gradient
            analytic = sum(float((o.grads[k] * d[k]).sum()) for k in names)
        # the yardstick of the tolerance is the size of the correct derivative's terms, so
        # a wildly wrong gradient cannot widen its own tolerance (with no standard model to
        # know them by, the user's own: a relative 1e-6 still holds a wrong one to account)
        yardstick = o.grads if f.nonstandard else o.ref.grads
        with np.errstate(invalid="ignore", over="ignore"):
            size = sum(float(np.abs(yardstick[k] * d[k]).sum()) for k in names)
        checks.append(directional_check(o.loss, vals, analytic, size, h, f.dtype, share))
    joint = checks[0]
    where = " (on the second case, where nothing is clipped)" if f.unclipped else ""
    joint_check = rec.add("fd.all", joint.passed, fd_result(joint, "all groups")[1] + where)
    if f.truncated:  # the joint check includes truncated groups
        joint_check.status = "skip"
        joint_check.message += (f" (not judged: your gradients are BPTT truncated at "
                                f"{f.truncated} steps)")
    if f.nonstandard:
        _groups_from_fd(rec, o, f, dict(zip(names, checks[1:], strict=True)))
        return
    if skipped:
        _fd_not_run(rec, names, f, *skipped)
    for k, dc in zip(names, checks[1:], strict=False):
        g = next(g for g in r.groups if g.name == k)
        status = "skip" if k in f.truncated_groups else None
        g.fd, message = fd_result(dc, g.user_name, status=status)
        if status != "skip":
            rec.add(f"fd.{k}", dc.passed, message + where)


def _fd_not_run(rec: Recorder, names: list[str], f: Findings, measured: str, total: float,
                extra: int, limit: float) -> None:
    """The per-group finite-difference checks left out for time: each says so (status skip,
    "not run"), and a note says why and how to have them."""
    from bpttcheck.sandbox.budget import EXTRA_EVIDENCE_LIMITS, round_up
    cap = EXTRA_EVIDENCE_LIMITS * limit
    why = (f"{measured}: with one finite-difference direction per group ({extra} more calls) "
           f"the check would take longer than {cap:g} s ({EXTRA_EVIDENCE_LIMITS:g} x the limit "
           f"of {limit:g} s per call)")
    for k in names:
        if k not in f.truncated_groups:
            rec.add(f"fd.{k}", True, f"d{k}: not run, to save time ({why}); the reference "
                    f"and fd.all judged this group").status = "skip"
    more = round_up(total / EXTRA_EVIDENCE_LIMITS)
    rec.note("budget.fewer-calls", "Fewer calls: your code is slow",
             f"{why[:1].upper()}{why[1:]}, so each group was judged by the reference and all "
             f"of them together by "
             f"one finite-difference direction (fd.all); the per-group directions, extra "
             f"evidence, were left out. Raise the limit per call (e.g. `--timeout {more}`) "
             f"to have them run.")


def _groups_from_fd(rec: Recorder, o, f: Findings, checks: dict) -> None:
    """With no standard model to compare with, each group's result is its directional
    derivative against finite differences of the user's own loss."""
    from bpttcheck.result import GroupResult
    for k, dc in checks.items():
        f.fd_checks[k] = dc
        if not dc.passed:
            f.failing_groups.append(k)
        shown = o.layout.group_name(k, o.case.dims.H)
        fd, message = fd_result(dc, shown)
        rel = dc.error / max(abs(dc.numeric), abs(dc.analytic), 1e-300)
        rec.report.groups.append(GroupResult(
            name=k, user_name=shown, status="pass" if dc.passed else "fail",
            max_abs_error=dc.error, max_rel_error=rel, worst_index=[],
            worst_user=dc.analytic, worst_ref=dc.numeric, tolerance=dc.tolerance,
            scale=abs(dc.numeric), n_bad=0 if dc.passed else 1, n=1, fd=fd))
        why = ("a perturbation of your forward too small to measure could explain its "
               "difference from it" if f.forward_standard else "your forward differs from it")
        rec.add(f"grad.{k}", False, f"d{shown}: not compared with the standard model ({why}); "
                f"fd.{k} judges this group").status = "skip"
        rec.add(f"fd.{k}", dc.passed, message)


def clip_level(user: dict, ref: dict, rtol: float) -> float | None:
    """The c of np.clip(g, -c, c) if the user's gradients look clipped: the entries that
    differ from the reference all sit at ±c, with |reference| > c on the same side."""
    bad_abs = []
    for k, u in user.items():
        r = ref[k]
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        bad = np.abs(u - r) > rtol * (np.abs(r) + scale)
        if not bad.any():
            continue
        ub, rb = u[bad], r[bad]
        if not np.all(np.sign(ub) == np.sign(rb)) or not np.all(np.abs(rb) > np.abs(ub)):
            return None
        bad_abs.append(np.abs(ub))
    if not bad_abs:
        return None
    vals = np.concatenate(bad_abs)
    c = float(np.median(vals))
    if c > 0 and np.all(np.abs(vals - c) <= 1e-6 * c):
        return c
    return None
