"""The engine: run the user's code on probe cases, compare with the float64 reference and
with finite differences of the user's own loss, and collect the findings."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bpttcheck import __version__
from bpttcheck.check import views
from bpttcheck.check.cases import DEFAULT_DIMS, Case, make_case, random_direction
from bpttcheck.errors import UserCodeError
from bpttcheck.layout import Layout
from bpttcheck.check.numerics import (FD_STEP, Comparison, compare, directional_check, fd_offsets,
                                oracle_rtol)
from bpttcheck.oracle.common import Dims, Trace
from bpttcheck.plugins import architectures
from bpttcheck.result import CheckResult, ErrorInfo, FDResult, GroupResult, Note, Report
from bpttcheck.sandbox.limits import Limits
from bpttcheck.sandbox.session import WorkerSession, session

# failures that only cost a picture (the check itself already ran); a crash, a hang or a
# blocked attempt still ends the run
PICTURE_ONLY = ("exception", "interface", "not-implemented")
SMALL_MODEL = 5000  # parameters: below this every group gets its own finite-difference check


@dataclass
class Options:
    style: str | None = None  # adapter name, None = detect
    arch: str | None = None
    seed: int = 0
    dims: Dims | None = None
    adapter_options: dict = field(default_factory=dict)  # names, layout, ... (spec/BPTTCHECK)
    limits: Limits = field(default_factory=Limits)
    diagnose: bool = True
    sanitize: bool = False  # C only: build with AddressSanitizer and UBSan
    views: bool = False  # heatmaps and gradient flow of the user's code (for --html)
    views_fd: bool = True  # ... with entry-wise finite differences when a group fails


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


class Checker:
    def __init__(self, path: str, opts: Options):
        self.path, self.opts = path, opts
        self.report = Report(verdict="pass", path=path, seed=opts.seed, version=__version__)
        self.t0 = time.perf_counter()

    def _time(self, key: str, since: float) -> float:
        now = time.perf_counter()
        self.report.timings[key] = round(self.report.timings.get(key, 0.0) + now - since, 4)
        return now

    def note(self, id: str, title: str, evidence: str) -> None:
        if not any(n.id == id and n.title == title for n in self.report.notes):
            self.report.notes.append(Note(id=id, title=title, evidence=evidence))

    def add(self, name: str, ok: bool, message: str) -> None:
        self.report.checks.append(CheckResult(name=name, status="pass" if ok else "fail",
                                              message=message))

    # ------------------------------------------------------------------ main flow

    def run(self) -> Report:
        r = self.report
        try:
            self.lib = self._compile()
            with session(self.path, self.opts.limits) as w:
                self.worker = w
                self._run(w)
                r.evaluations = w.evaluations
        except UserCodeError as e:
            r.verdict = "error"
            r.error = ErrorInfo(kind=e.kind, message=e.message, line=e.line, output=e.output)
            r.evaluations = getattr(getattr(self, "worker", None), "evaluations", 0)
        r.timings["total"] = round(time.perf_counter() - self.t0, 4)
        if r.verdict != "error":
            r.verdict = "pass" if all(c.status != "fail" for c in r.checks) else "fail"
        if r.verdict == "pass":
            r.diagnoses = []
        return r

    def _run(self, w: WorkerSession) -> None:
        r, opts = self.report, self.opts
        t = time.perf_counter()
        options = dict(opts.adapter_options)
        if opts.arch:
            options["arch"] = opts.arch
        lib = w.user_path if self.path.endswith(".so") else self.lib
        if "c_globals" in options:
            options["c_globals"] = self._globals_sizes(options["c_globals"])
            opts.style = opts.style or "c-globals"
        info = w.load(opts.style, options, lib)
        t = self._time("load", t)
        r.style, r.arch = info["adapter"], info["arch"]
        self.caps = info["capabilities"]
        if self.caps["kind"] == "units":  # batched step/sequence functions: their own checks
            from bpttcheck.check.layers import LayerChecker
            LayerChecker(self, w, info).run()
            self._time("layers", t)
            return
        self.arch = architectures()[info["arch"]]
        for skipped in info.get("skipped", []):
            self.note("load.skipped-loop", "Top-level training loop not run",
                      f"bpttcheck did not run {skipped} while importing your module.")
        for n in info.get("notes", []):
            self.note(n["id"], n["title"], n["evidence"])
        self.declared = info.get("options", {})
        dims = opts.dims or DEFAULT_DIMS
        self.fixed_dims = bool(info.get("dims"))
        if info.get("dims"):
            fixed = info["dims"]
            T = fixed["T"] or (opts.dims.T if opts.dims else 8)  # T = 0: the code takes any T
            dims = Dims(T=T, X=fixed["X"], H=fixed["H"], Y=fixed["Y"])
        case = make_case(self.arch, dims, opts.seed)
        r.sizes = {"T": dims.T, "X": dims.X, "H": dims.H, "Y": dims.Y}
        layouts = [Layout.from_dict(d) for d in info["layouts"]]

        obs = self.observe_inferring_layout(w, case, layouts)
        t = self._time("first_call", t)
        self.check_forward(obs)
        self.check_groups(obs)
        t = self._time("compare", t)
        self.check_behaviour(w, obs)
        self.check_large_logits(w, obs)
        t = self._time("behaviour", t)
        self.check_fd(w, obs)
        t = self._time("finite_differences", t)
        r.flow = views.flow(obs.ref.dh, obs.ref.loss_steps)
        failing = any(c.status == "fail" for c in r.checks)
        if failing and opts.diagnose:
            from bpttcheck.check.diagnose import diagnose
            r.diagnoses = diagnose(self, w, obs)
            t = self._time("diagnosis", t)
        if opts.views:
            self.collect_views(w, obs)
            self._time("views", t)

    def collect_views(self, w: WorkerSession, o: Observation) -> None:
        """Heatmaps (user - reference; when a group fails on a model small enough, also
        entry-wise finite differences - user) and the gradient flow of the user's code; a failure
        here loses only the picture."""
        r = self.report
        h = FD_STEP[np.dtype(r.dtype)]
        fd, fd_tol = None, None
        try:
            small = sum(v.size for v in o.case.params.values()) <= views.ENTRYWISE_LIMIT
            if small and self.opts.views_fd and any(g.status == "fail" for g in r.groups):
                # only a failing check needs the picture of where finite differences disagree
                entries = views.entry_offsets(o.case.params, h)
                fd, fd_tol = views.entrywise_fd(
                    o.case.params, w.losses(o.case, o.layout, [], [], entries), h, o.loss, r.dtype)
        except UserCodeError as e:
            if e.kind not in PICTURE_ONLY:
                raise
        tol = {g.name: g.tolerance for g in r.groups}
        names = {g.name: g.user_name for g in r.groups}
        r.heatmaps = views.heatmaps(o.case, o.grads, o.ref.grads, tol, names, fd,
                                    h if fd is not None else None, fd_tol)
        d = o.case.dims
        fc = o.case
        if not self.fixed_dims and d.X < d.T:  # a vocabulary as long as T: every step distinct
            fc = make_case(self.arch, Dims(T=d.T, X=d.T, H=d.H, Y=d.Y), o.case.seed + 4241)
        fc = views.distinct_tokens(fc, np.random.default_rng(o.case.seed + 4241))
        ref = self.reference(fc, r.dtype, o.reduction)
        try:
            _, grads, _, _ = w.call(fc, o.layout)
            user_pre = views.preact_norms(grads, fc.xs, fc.dims)
        except UserCodeError as e:
            if e.kind not in PICTURE_ONLY:
                raise
            user_pre = []
        # the loss per step stays the checked case's (it adds up to the loss in the report);
        # the flow comes from the distinct-token probe, which has the same T
        r.flow = views.flow(ref.dh, o.ref.loss_steps, user_pre,
                            views.preact_norms(ref.grads, fc.xs, fc.dims))

    def _compile(self) -> str | None:
        """Build a .c file (before the worker starts: a sanitizer build changes how it starts)."""
        if not self.path.endswith(".c"):
            return None
        from bpttcheck.sandbox.compile import compile_c, sanitizer_runtime
        t = time.perf_counter()
        lib = compile_c(self.path, sanitize=self.opts.sanitize)
        if self.opts.sanitize:
            rt = sanitizer_runtime()
            if rt is None:
                raise UserCodeError("compile", "--sanitize needs the AddressSanitizer runtime "
                                    "(libasan) of your compiler; install it (Debian: libasan8)")
            self.opts.limits.preload = rt
            self.note("c.sanitize", "Built with AddressSanitizer and UBSan",
                      "the first out-of-bounds access or undefined behaviour stops the check")
        self._time("compile", t)
        return lib

    def _globals_sizes(self, g: dict) -> dict:
        """Sizes of a globals-style C file, read from its #defines."""
        from bpttcheck.adapters.c_globals import sizes_from_defines
        from bpttcheck.errors import InterfaceError
        src = self.path[:-3] + ".c" if self.path.endswith(".so") else self.path
        try:
            with open(src, errors="replace") as f:
                g = dict(g, sizes=sizes_from_defines(f.read(), g["sizes_from"]))
        except (OSError, InterfaceError) as e:
            raise UserCodeError("interface", f"cannot read the sizes of {src}: {e}") from None
        return g

    # ------------------------------------------------------------------ reference

    def reference(self, case: Case, dtype: str, reduction: str = "sum",
                  bugs=frozenset()) -> Trace:
        c = case.rounded(np.float32) if dtype == "float32" else case
        return self.arch.run(c.params, c.xs, c.ys, c.state, bugs=bugs, reduction=reduction)

    def loss_rtol(self, dtype: str, case: Case) -> float:
        d = case.dims
        return oracle_rtol(dtype, d.T, d.H + d.X + d.Y)

    def loss_matches(self, user: float, ref: float, dtype: str, case: Case) -> bool:
        return bool(np.isfinite(user)) and abs(user - ref) <= self.loss_rtol(dtype, case) * max(
            abs(ref), 1.0)

    def observe(self, w: WorkerSession, case: Case, layout: Layout) -> Observation:
        loss, grads, state, info = w.call(case, layout)
        dtype = info.get("dtype", "float64")
        if dtype not in ("float32", "float64"):
            dtype = "float64"
        ref_sum = self.reference(case, dtype)
        reduction = "sum"
        T = case.dims.T
        if not self.loss_matches(loss, ref_sum.loss, dtype, case) and self.loss_matches(
                loss, ref_sum.loss / T, dtype, case):
            reduction = "mean"
        elif not self.loss_matches(loss, ref_sum.loss, dtype, case):
            # loss matches neither: take the reduction the gradients are closer to
            u = np.concatenate([grads[k].ravel() for k in self.arch.param_names if k in grads] or [np.zeros(1)])
            s = np.concatenate([ref_sum.grads[k].ravel() for k in self.arch.param_names if k in grads] or [np.zeros(1)])
            if np.linalg.norm(u - s / T) < np.linalg.norm(u - s):
                reduction = "mean"
        ref = ref_sum if reduction == "sum" else self.reference(case, dtype, "mean")
        return Observation(case, layout, loss, grads, state, info, ref, reduction)

    def observe_inferring_layout(self, w, case, layouts) -> Observation:
        """Call under the first layout; if the loss does not match the reference, try the other
        candidate layouts (concatenation order, column vectors, gate order)."""
        first_err, fallback = None, None
        for i, lay in enumerate(layouts):
            try:
                obs = self.observe(w, case, lay)
            except UserCodeError as e:
                if e.kind not in ("exception", "interface"):
                    raise  # the worker crashed or hung: no other layout can be tried
                first_err = first_err or e
                continue
            if self.loss_matches(obs.loss, obs.ref.loss, obs.info.get("dtype", "float64"), case):
                self._layout_chosen(lay, layouts[0], inferred=i > 0)
                return obs
            fallback = fallback or obs
        if fallback is None:
            raise first_err
        self._layout_chosen(fallback.layout, layouts[0], inferred=False)
        return fallback

    def _layout_chosen(self, lay: Layout, first: Layout, inferred: bool) -> None:
        self.report.layout = lay.describe()
        if inferred:
            if self.declared.get("gate_order") and lay.stacked != first.stacked:
                self.gate_order_mismatch = (first.stacked, lay.stacked)
                self.add("layout.gate-order", False,
                         f"declared gate order {first.stacked!r}, but your code matches the "
                         f"reference only with order {lay.stacked!r}")
            else:
                self.note("layout.inferred", "Layout inferred from your loss",
                          f"your loss matches the reference with {lay.describe()}; "
                          f"declare it in BPTTCHECK or the spec to skip the search")

    # ------------------------------------------------------------------ checks

    def check_forward(self, o: Observation) -> None:
        r = self.report
        dtype = o.info.get("dtype", "float64")
        r.dtype, r.reduction = dtype, o.reduction
        rtol = self.loss_rtol(dtype, o.case)
        r.tolerances["loss_rtol"] = rtol
        r.loss = {"user": o.loss, "reference": o.ref.loss}
        if o.reduction == "mean":
            self.note("loss.mean", "Loss averaged over time",
                      f"your loss {o.loss:.10g} equals the reference's sum {o.ref.loss * o.case.dims.T:.10g} "
                      f"divided by T = {o.case.dims.T}; gradients are checked against the mean")
        ok = self.loss_matches(o.loss, o.ref.loss, dtype, o.case)
        self.add("forward.loss", ok,
                 f"loss {o.loss:.10g}, reference {o.ref.loss:.10g} "
                 f"(|diff| {abs(o.loss - o.ref.loss):.2e}, tolerance {rtol * max(abs(o.ref.loss), 1):.1e})")
        if all(s is None for s in o.state):
            self.note("forward.no-state", "No last state returned",
                      "your function returned no last hidden state, so it was not checked; "
                      + ("return it last from lossFun (..., hs[len(inputs)-1]) to have it "
                         "compared" if self.caps["entry"] == "lossFun" else
                         "return (loss, grads, last_state) to have it compared"))
        for name, user, ref in zip(self.arch.state_names, o.state, o.ref.state):
            if user is None:
                continue
            cmp = compare(user, ref, rtol)
            self.add(f"forward.last_{name}", cmp.passed,
                     f"last {name}: max abs error {cmp.max_abs_error:.2e} "
                     f"(tolerance {cmp.tolerance:.1e})")

    def check_groups(self, o: Observation) -> None:
        r = self.report
        dtype = r.dtype
        d = o.case.dims
        rtol = oracle_rtol(dtype, d.T, d.H + d.X + d.Y)
        r.tolerances["grad_rtol"] = rtol
        clip = _clip_level(o.grads, o.ref.grads, rtol)
        self.comparisons: dict[str, Comparison] = {}
        for k in self.arch.param_names:
            u, ref = o.grads[k], o.ref.grads[k]
            mag = np.abs(o.ref.contrib[k]).sum(axis=0)  # per-step terms: cancellation's size
            cmp = compare(u, ref, rtol, magnitude=mag)
            clipped = None
            if not cmp.passed and clip is not None:
                c2 = compare(u, np.clip(ref, -clip, clip), rtol, magnitude=mag)
                if c2.passed:
                    cmp, clipped = c2, clip
            self.comparisons[k] = cmp
            g = GroupResult(
                name=k, user_name=o.layout.user_name(k), status="pass" if cmp.passed else "fail",
                max_abs_error=cmp.max_abs_error, max_rel_error=cmp.max_rel_error,
                worst_index=list(cmp.worst_index), worst_user=cmp.worst_user,
                worst_ref=cmp.worst_ref, tolerance=cmp.tolerance, scale=cmp.scale,
                n_bad=cmp.n_bad, n=cmp.n, clipped_at=clipped)
            r.groups.append(g)
            idx = ",".join(map(str, cmp.worst_index))
            self.add(f"grad.{k}", cmp.passed,
                     f"d{k}: max abs error {cmp.max_abs_error:.2e}, max rel error "
                     f"{cmp.max_rel_error:.2e}; worst [{idx}] yours {cmp.worst_user:.6g} vs "
                     f"reference {cmp.worst_ref:.6g} (tolerance {cmp.tolerance:.1e}); "
                     f"{cmp.n_bad} of {cmp.n} entries out of tolerance"
                     + ("" if cmp.finite else "; contains NaN or inf"))
        if clip is not None and any(g.clipped_at for g in r.groups):
            groups = [g.name for g in r.groups if g.clipped_at]
            self.note("grad.clipped", f"Gradients clipped at ±{clip:g} inside your function",
                      f"entries of {', '.join(groups)} are pinned at ±{clip:g} exactly where the "
                      f"reference exceeds {clip:g}; everything else matches. Clipping is fine for "
                      f"training; it is not part of the gradient, so it was allowed for here.")

    def check_behaviour(self, w: WorkerSession, o: Observation) -> None:
        changed = o.info.get("modified") or []
        self.add("behaviour.inputs-unchanged", not changed,
                 "your code left its parameters and inputs as they were" if not changed else
                 f"your code modified {', '.join(changed)} in place; a gradient function must "
                 f"not change what it is given (copy before modifying)")
        loss2, grads2, _, _ = w.call(o.case, o.layout)
        diffs = {k: 0.0 if np.array_equal(grads2[k], o.grads[k], equal_nan=True) else
                 float(np.nanmax(np.abs(grads2[k] - o.grads[k]))) for k in o.grads}
        worst = max(diffs, key=diffs.get)
        same = (loss2 == o.loss or (np.isnan(loss2) and np.isnan(o.loss))
                or abs(loss2 - o.loss) <= 1e-12 * max(abs(o.loss), 1))
        same = same and all(v <= 1e-12 * max(float(np.max(np.abs(o.grads[k]))), 1e-300)
                            for k, v in diffs.items())
        self.second_call = (loss2, grads2)
        self.add("behaviour.repeat", same,
                 "a second call on the same case gave the same loss and gradients" if same else
                 f"a second call on the same case gave different results: loss {o.loss:.10g} then "
                 f"{loss2:.10g}; d{worst} differs by up to {diffs[worst]:.3g}. Something is kept "
                 f"between calls (gradient accumulators or dh_next not reset to zero)")

    def check_large_logits(self, w: WorkerSession, o: Observation) -> None:
        """Logits near 1000: exp overflows unless the softmax subtracts the max first."""
        case = make_case(self.arch, o.case.dims, o.case.seed + 31, logit_scale=600.0)
        ref = self.reference(case, self.report.dtype)
        if not all(np.all(np.isfinite(g)) for g in ref.grads.values()):
            return
        try:
            loss, grads, _, _ = w.call(case, o.layout)
        except UserCodeError as e:
            if e.kind != "exception":
                raise
            self.large_logit_evidence = f"with logits of order 1000 your code raised: {e.message}"
            self.add("probe.large-logits", False, self.large_logit_evidence)
            return
        bad = [k for k, g in grads.items() if not np.all(np.isfinite(g))]
        if bad:
            self.large_logit_evidence = (
                f"on a case whose logits reach about 1000 (the reference stays finite: loss "
                f"{ref.loss:.6g}), your gradients {', '.join('d' + k for k in bad)} contain NaN or "
                f"inf and your loss is {loss:.6g}: exp(z) overflows above z = 709")
        self.add("probe.large-logits", not bad,
                 "logits of order 1000: your gradients stay finite" if not bad else
                 self.large_logit_evidence)

    def check_fd(self, w: WorkerSession, o: Observation) -> None:
        r = self.report
        dtype = r.dtype
        h = FD_STEP[np.dtype(dtype)]
        rng = np.random.default_rng(o.case.seed + 7919)
        names = list(self.arch.param_names)
        n_params = sum(v.size for v in o.case.params.values())
        per_group = n_params <= SMALL_MODEL or any(g.status == "fail" for g in r.groups)
        dirs = [random_direction(o.case.params, rng)]
        if per_group:
            dirs += [random_direction(o.case.params, rng, only=k) for k in names]
        offsets = [(j, s) for j in range(len(dirs)) for s in fd_offsets(h)]
        losses = w.losses(o.case, o.layout, dirs, offsets)
        r.tolerances["fd_step"] = h
        it = iter(losses)
        checks = []
        for j, d in enumerate(dirs):
            vals = {s: next(it) for s in fd_offsets(h)}
            with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 in a NaN/inf gradient
                analytic = sum(float((o.grads[k] * d[k]).sum()) for k in names)
            # the yardstick of the tolerance is the size of the correct derivative's terms, so
            # a wildly wrong gradient cannot widen its own tolerance
            size = sum(float(np.abs(o.ref.grads[k] * d[k]).sum()) for k in names)
            dc = directional_check(o.loss, vals, analytic, size, h, dtype)
            checks.append(dc)
        joint = checks[0]
        self.add("fd.all", joint.passed, _fd_message("all groups", joint))
        self.fd_checks = {}
        for k, dc in zip(names, checks[1:]):
            self.fd_checks[k] = dc
            g = next(g for g in r.groups if g.name == k)
            if g.clipped_at is not None:
                status = "skip"  # clipping makes the gradient differ from the loss's derivative
            else:
                status = "pass" if dc.passed else "fail"
            g.fd = FDResult(status=status, analytic=dc.analytic, numeric=dc.numeric,
                            error=dc.error, tolerance=dc.tolerance, noise=dc.noise,
                            taylor_rates=[None if np.isnan(x) else x for x in dc.taylor_rates],
                            rate_verdict=dc.rate_verdict, step=dc.step)
            if status != "skip":
                self.add(f"fd.{k}", dc.passed, _fd_message(k, dc))
        if any(g.clipped_at for g in r.groups):
            # the joint check includes clipped groups: judge it only on the per-group ones
            for c in r.checks:
                if c.name == "fd.all":
                    c.status = "skip"
                    c.message += " (not judged: your function clips its gradients)"


def _fd_message(what: str, dc) -> str:
    rates = ", ".join("noise" if np.isnan(x) else f"{x:.2f}" for x in dc.taylor_rates)
    return (f"{what}: your directional derivative {dc.analytic:.10g}, finite differences of your "
            f"own loss {dc.numeric:.10g} (|diff| {dc.error:.2e}, tolerance {dc.tolerance:.1e}, "
            f"noise {dc.noise:.1e}); Taylor remainder rates {rates} (2 = consistent, 1 = not)")


def _clip_level(user: dict, ref: dict, rtol: float) -> float | None:
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


def check(path: str, opts: Options | None = None) -> Report:
    return Checker(path, opts or Options()).run()
