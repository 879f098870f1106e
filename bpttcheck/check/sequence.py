"""Checking sequence-style code (a loss-and-gradients function over a whole sequence, Python
or C): find the layout, run the checks on a probe case, name the bug, draw the pictures."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from bpttcheck.check import perturbation, precision, severity, views
from bpttcheck.check.cases import DEFAULT_DIMS, make_case
from bpttcheck.check.checks import (
    check_behaviour,
    check_fd,
    check_forward,
    check_groups,
    check_large_logits,
    fd_calls,
    per_group_fd,
)
from bpttcheck.check.findings import Findings, Observation
from bpttcheck.check.model import ModelFacts, declared
from bpttcheck.check.numerics import fd_step
from bpttcheck.check.probe import UserProbe
from bpttcheck.check.recorder import Recorder
from bpttcheck.errors import UserCodeError
from bpttcheck.layout import Layout
from bpttcheck.oracle.common import Dims
from bpttcheck.plugins import architectures
from bpttcheck.result import Report

# failures that only cost a picture (the check itself already ran); a crash, a hang or a
# blocked attempt still ends the run
PICTURE_ONLY = ("exception", "interface", "not-implemented")


class SequenceChecker:
    def __init__(self, rec: Recorder, w, info: dict, opts):
        self.rec, self.w, self.info, self.opts = rec, w, info, opts
        self.base = base = architectures()[info["arch"]]
        # what the adapter says the user's model is (no biases, h0 = 0, Y = X): the reference
        # and every case follow it, and the absent parameters are no groups
        self._follow(ModelFacts.from_info(info.get("model"), base.param_names),
                     info["capabilities"])
        self.declared = info.get("options", {})
        self.fixed_dims = bool(info.get("dims"))
        self.gate_order_mismatch: tuple[str, str] | None = None
        self.nonstandard: str | None = None  # how the user's model differs (FD-judged mode)
        self.expected: list[str] = []  # the checks of a whole run, once plan() knows them

    def run(self) -> Report:
        rec, r, opts, info = self.rec, self.rec.report, self.opts, self.info
        dims = opts.dims or DEFAULT_DIMS
        if info.get("dims"):
            fixed = info["dims"]
            T = fixed["T"] or (opts.dims.T if opts.dims else 8)  # T = 0: the code takes any T
            dims = Dims(T=T, X=fixed["X"], H=fixed["H"], Y=fixed["Y"])
        dims = self.facts.fit(dims)
        case = make_case(self.arch, dims, opts.seed)
        r.sizes = {"T": dims.T, "X": dims.X, "H": dims.H, "Y": dims.Y}
        layouts = [Layout.from_dict(d) for d in info["layouts"]]

        with rec.shared():
            with rec.timed("first_call"):
                obs = self.first_observation(case, layouts)
            self.note_model(obs.layout)
            unseen = None
            if not self.nonstandard and not self.probe.perturbation:
                # the loss matched; a returned last state, or the gradients, can still show
                # a perturbation of the forward
                self.probe.perturbation = perturbation.measure(obs)
                if not self.probe.perturbation:
                    unseen = perturbation.unmeasured(obs)
            with rec.timed("compare"):
                f = Findings(obs, dtype=obs.dtype, gate_order_mismatch=self.gate_order_mismatch,
                             nonstandard=self.nonstandard or unseen,
                             tolerances=dict(opts.tolerances),
                             perturbation=self.probe.perturbation,
                             perturbation_strict=opts.require_standard,
                             forward_standard=unseen is not None)
                # the judged precision; "float64/float32" (computed in float64, returned as
                # float32) is reported as its arithmetic
                r.dtype, r.reduction = f.dtype.split("/")[0], obs.reduction
                check_forward(rec, self.probe, f)
                check_groups(rec, self.probe, f,
                             allow_truncated=severity.allows(opts.checks, "bptt.truncated"))
        self.plan(f)
        with rec.timed("behaviour"):
            with rec.shared():
                check_behaviour(rec, self.w, f)
            with rec.shared():
                check_large_logits(rec, self.w, self.probe, f)
        with rec.timed("finite_differences"), rec.shared():
            check_fd(rec, self.w, self.probe, f)
        if opts.forbid_numerical_gradients:  # last: a finding fails the gradient checks too
            from bpttcheck.check.numgrad import check_numerical
            with rec.timed("numerical"), rec.shared():
                check_numerical(rec, self.w, self.probe, f)
        r.flow = views.flow(obs.ref.dh, obs.ref.loss_steps)
        f.failed_checks = rec.failed_checks()
        if f.failed_checks and opts.diagnose:
            from bpttcheck.check.diagnose import diagnose
            with rec.timed("diagnosis"):
                r.diagnoses = diagnose(self.probe, f)
        if opts.views and not f.nonstandard:  # pictures against the standard model only
            with rec.timed("views"):
                self.collect_views(obs)
        return r

    def plan(self, f: Findings) -> None:
        """Tell the worker session how many calls the check makes from here (the repeat, the
        large-logits probe, the finite differences): the budget of the whole check and the
        numbers a timeout message gives (sandbox/budget.py). Also the checks to mark "not
        run" if the check stops early."""
        budget = getattr(self.w, "budget", None)
        if budget is not None:
            budget.plan(budget.made + 2 + fd_calls(self.probe, f))
        names = self.probe.arch.param_names
        self.expected = ["forward.loss",
                         *(f"forward.last_{s}" for s in self.probe.arch.state_names),
                         *(f"grad.{k}" for k in names),
                         "behaviour.inputs-unchanged", "behaviour.repeat",
                         "probe.large-logits", "fd.all",
                         *((f"fd.{k}" for k in names) if per_group_fd(f) else ())]

    def expected_checks(self) -> list[str]:
        """The checks this run makes when nothing stops it (known after the first call)."""
        return list(self.expected)

    def _follow(self, facts: ModelFacts, caps: dict) -> None:
        """Check the model these facts describe: its architecture and a probe over it."""
        self.facts = facts
        self.arch = declared(self.base, facts)
        self.probe = UserProbe(self.w, self.arch, caps)

    def first_observation(self, case, layouts: list[Layout]) -> Observation:
        """The first call, its layout and model found; a model whose output is its own
        vocabulary breaks on the default sizes' Y != X (an index or shape error), so when the
        sizes are free such a first call is tried once more with Y = X."""
        try:
            return self.observe_inferring_layout(case, layouts)
        except UserCodeError as e:
            d = case.dims
            if (e.kind not in ("exception", "interface") or d.X == d.Y or self.fixed_dims
                    or self.opts.dims or self.facts.same_xy):
                raise
            saved = (self.facts, self.arch, self.probe)
            self._follow(replace(self.facts, same_xy=True), self.probe.caps)
            retry = make_case(self.arch, self.facts.fit(d), case.seed)
            try:
                obs = self.observe_inferring_layout(retry, layouts)
            except UserCodeError:
                self.facts, self.arch, self.probe = saved
                raise e from None  # the first error says more than the retry's
            self.rec.report.sizes = {"T": d.T, "X": d.X, "H": d.H, "Y": d.X}
            return obs

    def observe_inferring_layout(self, case, layouts: list[Layout]) -> Observation:
        """Call under the first layout; if the loss does not match the reference, try the other
        candidate layouts (concatenation order, column vectors, gate order), then the
        legitimate variants of the cell under each layout (no new calls: the same results
        judged against another model), then the standard model (or a variant) perturbed by an
        epsilon (check/perturbation.py: ``probe.perturbation`` is set). When nothing reproduces
        the loss and no known forward bug does either, the user's model is not a standard one:
        ``self.nonstandard`` says how it differs, and the gradients are judged by finite
        differences of the user's loss."""
        first_err, tried = None, []
        for i, lay in enumerate(layouts):
            try:
                result = self.w.call(case, lay)
            except UserCodeError as e:
                if e.kind not in ("exception", "interface"):
                    raise  # the worker crashed or hung: no other layout can be tried
                first_err = first_err or e
                continue
            obs = self.probe.judge(case, lay, result)
            found = precision.infer(self.probe, obs, result)
            if found:  # the code computes in another precision than it returns
                obs = found[0]
            if self._standard_loss(obs):
                self._layout_chosen(lay, layouts[0], inferred=i > 0)
                if found:
                    self.rec.note("precision", "Judged at the precision your code computes in",
                                  found[1])
                return obs
            tried.append((i, lay, result, obs))
        if not tried:
            assert first_err is not None  # every layout raised: the first error says why
            raise first_err
        if not self.opts.require_standard:
            for variant, what in self.arch.variants:
                self.probe.variant = frozenset({variant})
                for i, lay, result, _ in tried:
                    obs = self.probe.judge(case, lay, result)
                    if self._standard_loss(obs):
                        self._layout_chosen(lay, layouts[0], inferred=i > 0)
                        self._note_variant(obs, variant, what)
                        return obs
            self.probe.variant = frozenset()
        perturbed = self._perturbed(case, tried, layouts[0])
        if perturbed is not None:
            return perturbed
        fallback = tried[0][3]
        self._layout_chosen(fallback.layout, layouts[0], inferred=False)
        if not self.opts.require_standard and not self._a_known_bug_explains(fallback):
            gap = abs(fallback.loss - fallback.ref.loss)
            self.nonstandard = (
                f"your forward is not the standard {self.arch.name} (your loss "
                f"{fallback.loss:.10g}, the standard model's {fallback.ref.loss:.10g}: they "
                f"differ by {gap:.3g}, and no known bug explains it), so your gradients were "
                f"checked against finite differences of your own loss, as gradcheck does. "
                f"A spec with `model = \"standard\"` fails such a forward instead")
        return fallback

    def _note_variant(self, obs: Observation, variant: str, what: str) -> None:
        self.rec.note("model.variant", f"Your cell is a variant of the textbook {self.arch.name}",
                      f"your loss {obs.loss:.10g} is that of {what} ({variant}); your "
                      "gradients were checked against that model")

    def _perturbed(self, case, tried: list, first: Layout) -> Observation | None:
        """The standard model (then each legitimate variant, unless a spec demands the
        standard model) that the user's forward is, perturbed by an epsilon: the first whose
        forward is within perturbation.LIMIT, its measure in ``probe.perturbation``."""
        variants = [] if self.opts.require_standard else list(self.arch.variants)
        for variant, what in [(None, ""), *variants]:
            self.probe.variant = frozenset({variant}) if variant else frozenset()
            for i, lay, result, _ in tried:
                obs = self.probe.judge(case, lay, result)
                if not perturbation.measure(obs):
                    # a loss off the reference has its reduction read off the gradients,
                    # which a bug can mislead: the perturbation may be the other one's
                    other = "sum" if obs.reduction == "mean" else "mean"
                    obs = replace(obs, reduction=other,
                                  ref=self.probe.reference(case, obs.dtype, other))
                unit = perturbation.measure(obs)
                if unit:
                    self.probe.perturbation = unit
                    self._layout_chosen(lay, first, inferred=i > 0)
                    if variant:
                        self._note_variant(obs, variant, what)
                    return obs
        self.probe.variant = frozenset()
        return None

    def _standard_loss(self, obs: Observation) -> bool:
        """Is the user's loss the reference's? Within a spec's loss_rtol when it sets one (the
        tolerance forward.loss is judged with), else within the dtype's."""
        rtol = self.opts.tolerances.get("loss_rtol")
        if rtol is None:
            return self.probe.loss_matches(obs.loss, obs.ref.loss, obs.dtype, obs.case)
        return bool(np.isfinite(obs.loss)) and abs(obs.loss - obs.ref.loss) <= rtol * max(
            abs(obs.ref.loss), 1.0)

    def _a_known_bug_explains(self, obs: Observation) -> bool:
        """Does a known forward bug (a softmax or reduction mistake) reproduce the user's loss?
        Then the forward is buggy, not a variant, and the standard checks name the bug."""
        from bpttcheck.check import catalogue
        for bug in catalogue.mutants(self.arch.name):
            for reduction in ("sum", "mean"):
                ref = self.probe.reference(obs.case, obs.dtype, reduction, frozenset({bug}))
                if (np.isnan(obs.loss) and np.isnan(ref.loss)) or self.probe.loss_matches(
                        obs.loss, ref.loss, obs.dtype, obs.case):
                    return True
        return False

    def note_model(self, layout: Layout) -> None:
        """The model.variant note: what was assumed of the user's model, in their names."""
        if self.facts:
            self.rec.note("model.variant", "Your model differs from the textbook cell",
                          self.facts.describe(layout.user_name))

    def _layout_chosen(self, lay: Layout, first: Layout, inferred: bool) -> None:
        self.rec.report.layout = lay.describe()
        if not inferred:
            return
        if self.declared.get("gate_order") and lay.stacked and first.stacked \
                and lay.stacked != first.stacked:
            self.gate_order_mismatch = (first.stacked, lay.stacked)
            self.rec.add("layout.gate-order", False,
                         f"declared gate order {first.stacked!r}, but your code matches the "
                         f"reference only with order {lay.stacked!r}")
        else:
            self.rec.note("layout.inferred", "Layout inferred from your loss",
                          f"your loss matches the reference with {lay.describe()}; "
                          f"declare it in BPTTCHECK or the spec to skip the search")

    def collect_views(self, o: Observation) -> None:
        """Heatmaps (user - reference; when a group fails on a model small enough, also
        entry-wise finite differences - user) and the gradient flow of the user's code; a failure
        here loses only the picture."""
        r, w = self.rec.report, self.w
        dtype = r.dtype or "float64"
        h = fd_step(dtype)
        fd, fd_tol = None, None
        try:
            small = sum(v.size for v in o.case.params.values()) <= views.ENTRYWISE_LIMIT
            entries = views.entry_offsets(o.case.params, h) if small else []
            budget = getattr(w, "budget", None)
            # slow code: the picture is left out where its calls would make the check long
            affordable = budget is None or budget.affordable(len(entries))
            if small and self.opts.views_fd and affordable and any(
                    g.status == "fail" for g in r.groups):
                # only a failing check needs the picture of where finite differences disagree
                fd, fd_tol = views.entrywise_fd(
                    o.case.params, w.losses(o.case, o.layout, [], [], entries), h, o.loss, dtype)
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
        ref = self.probe.reference(fc, dtype, o.reduction)
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
