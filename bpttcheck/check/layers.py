"""Checking layer-style code (`rnn_layers.py`, CONTRACT §2.2b): every forward/backward pair the
file defines, on a small batched case, against the float64 reference in the same layout and
against finite differences of the user's own forward projected on the upstream gradients.

The checked quantity of a unit is L = sum(dout * out) over its outputs (next_h, and next_c for
an LSTM step), with random upstream gradients dout; every returned gradient is a group."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpttcheck.check import catalogue
from bpttcheck.layer_api import BY_NAME, STEP_OF, Unit
from bpttcheck.check.numerics import FD_STEP, compare, directional_check, fd_offsets, oracle_rtol
from bpttcheck.oracle import layers as ref_layers
from bpttcheck.result import Diagnosis, FDResult, GroupResult

N, T, D, H = 3, 4, 5, 6  # all different: a sum over the wrong axis gives the wrong shape
MATCH_SLACK = 30.0


@dataclass
class UnitCase:
    args: list[np.ndarray]  # the forward's inputs, in Unit.inputs order
    ups: list[np.ndarray]  # upstream gradients, one per output


@dataclass
class UnitRun:
    unit: Unit
    case: UnitCase
    status: str
    outs: list[np.ndarray]
    grads: list[np.ndarray]
    ref_outs: list[np.ndarray]
    ref_grads: list[np.ndarray]
    failed: list[str]  # names of failing gradient groups
    rtol: float
    dtype: str
    matches: list | None = None  # known bugs that reproduce the user's gradients (cached)


def make_case(u: Unit, seed: int) -> UnitCase:
    rng = np.random.default_rng([seed, len(u.name), "lstm" in u.name])
    G = 4 * H if u.family == "lstm" else H
    x = rng.normal(0, 1, (N, T, D))  # (N, T, D)
    h0 = rng.uniform(-0.6, 0.6, (N, H))  # (N, H)
    Wx = rng.normal(0, 1 / np.sqrt(D), (D, G))  # (D, G)
    Wh = rng.normal(0, 1 / np.sqrt(H), (H, G))  # (H, G)
    b = rng.normal(0, 0.3, G)  # (G,)
    if u.name.endswith("_step"):
        args = [x[:, 0], h0] + ([rng.normal(0, 0.5, (N, H))] if u.family == "lstm" else [])
        ups = [rng.normal(0, 1, (N, H)) for _ in u.outputs]
        return UnitCase(args + [Wx, Wh, b], ups)
    return UnitCase([x, h0, Wx, Wh, b], [rng.normal(0, 1, (N, T, H))])


def reference(u: Unit, c: UnitCase, bugs=frozenset(), contrib=None):
    """(outputs, grads) of the reference for a unit, with ``bugs`` planted."""
    R = ref_layers
    if u.name == "rnn_step":
        out, cache = R.rnn_step_forward(*c.args)
        return [out], list(R.rnn_step_backward(c.ups[0], cache, bugs))
    if u.name == "lstm_step":
        h, cc, cache = R.lstm_step_forward(*c.args)
        return [h, cc], list(R.lstm_step_backward(c.ups[0], c.ups[1], cache, bugs))
    fwd, bwd = (R.rnn_forward, R.rnn_backward) if u.name == "rnn" else (R.lstm_forward,
                                                                          R.lstm_backward)
    h, cache = fwd(*c.args)
    return [h], list(bwd(c.ups[0], cache, bugs, contrib))


class LayerChecker:
    """Runs inside the engine's Checker once the worker has loaded a layer-style module."""

    def __init__(self, ck, w, info: dict):
        self.ck, self.w, self.r = ck, w, ck.report
        self.units = [BY_NAME[n] for n in info.get("extra", {}).get("units", [])]
        self.lonely = info.get("extra", {}).get("lonely", [])
        self.runs: dict[str, UnitRun] = {}

    def run(self) -> None:
        r = self.r
        r.sizes = {"N": N, "T": T, "D": D, "H": H}
        r.layout = "x @ Wx + h @ Wh + b; LSTM gates i, f, o, g"
        for f in self.lonely:
            self.ck.note("layer.unpaired", f"{f} has no partner",
                         f"{f} is defined but its forward/backward partner is not, so it was "
                         f"not checked")
        for u in self.units:
            self.check_unit(u)
        r.dtype = next((x.dtype for x in self.runs.values()), "float64")
        r.tolerances.update({f"{n}.grad_rtol": x.rtol for n, x in self.runs.items()})
        r.tolerances["fd_step"] = FD_STEP[np.dtype(r.dtype)]
        fams = {}
        for u in self.units:
            bad = any(c.status == "fail" for c in r.checks if unit_of(c.name) == u.name)
            fams[u.family] = "fail" if bad or fams.get(u.family) == "fail" else "pass"
            if self.runs.get(u.name) is None:
                fams[u.family] = "fail"
        r.parts = fams
        if self.ck.opts.diagnose and any(c.status == "fail" for c in r.checks):
            r.diagnoses = self.diagnose()

    # ------------------------------------------------------------------ one unit

    def check_unit(self, u: Unit) -> None:
        ck = self.ck
        c = make_case(u, ck.opts.seed)
        hdr, outs, grads = self.w.layer_run(u.name, c.args, c.ups)
        status = hdr["status"]
        if status != "ok":
            what = "implemented" if status == "not-implemented" else "runs"
            where = f" (at {hdr['line']})" if hdr.get("line") else ""
            ck.add(f"{what}.{u.name}", False, f"{hdr['message']}{where}")
            if status == "not-implemented":
                return
            if not outs:
                return
        dtype = hdr.get("dtype", "float64")
        dtype = dtype if dtype in ("float32", "float64") else "float64"
        steps = 1 if u.name.endswith("_step") else T
        rtol = oracle_rtol(dtype, steps, D + H)
        ref_outs, ref_grads = reference(u, _rounded(c, dtype))
        for name, o, ro in zip(u.outputs, outs, ref_outs):
            ok, msg = _compare_msg(f"{u.forward}'s {name}", o, ro, rtol)
            ck.add(f"forward.{u.name}.{name}", ok, msg)
        if status != "ok":
            return
        run = UnitRun(u, c, status, outs, grads, ref_outs, ref_grads, [], rtol, dtype)
        self.runs[u.name] = run
        for name, g, rg in zip(u.grads, grads, ref_grads):
            self._group(run, name, g, rg)
        changed = hdr.get("modified") or []
        ck.add(f"behaviour.{u.name}.inputs-unchanged", not changed,
               "the functions left their inputs as they were" if not changed else
               f"{u.forward}/{u.backward} modified {', '.join(changed)} in place; copy before "
               f"modifying")
        self._fd(run)

    def _group(self, run: UnitRun, name: str, g: np.ndarray, rg: np.ndarray) -> None:
        u, gname = run.unit, f"{run.unit.name}.{name}"
        if g.shape != rg.shape:
            run.failed.append(name)
            self.r.groups.append(GroupResult(
                name=gname, user_name=f"{name} ({u.backward})", status="fail",
                max_abs_error=float("inf"), max_rel_error=float("inf"), worst_index=[],
                worst_user=float("nan"), worst_ref=float("nan"), tolerance=0.0,
                scale=float(np.max(np.abs(rg))) if rg.size else 0.0, n_bad=rg.size, n=rg.size))
            self.ck.add(f"grad.{gname}", False, f"{u.backward} returned {name} of shape "
                        f"{g.shape}, expected {rg.shape} (the shape of {u.inputs[u.grads.index(name)]})")
            return
        cmp = compare(g, rg, run.rtol)
        if not cmp.passed:
            run.failed.append(name)
        self.r.groups.append(GroupResult(
            name=gname, user_name=f"{name} ({u.backward})", status="pass" if cmp.passed else "fail",
            max_abs_error=cmp.max_abs_error, max_rel_error=cmp.max_rel_error,
            worst_index=list(cmp.worst_index), worst_user=cmp.worst_user, worst_ref=cmp.worst_ref,
            tolerance=cmp.tolerance, scale=cmp.scale, n_bad=cmp.n_bad, n=cmp.n))
        idx = ",".join(map(str, cmp.worst_index))
        self.ck.add(f"grad.{gname}", cmp.passed,
                    f"{name} from {u.backward}: max abs error {cmp.max_abs_error:.2e}, max rel "
                    f"error {cmp.max_rel_error:.2e}; worst [{idx}] yours {cmp.worst_user:.6g} vs "
                    f"reference {cmp.worst_ref:.6g} (tolerance {cmp.tolerance:.1e}); {cmp.n_bad} "
                    f"of {cmp.n} entries out of tolerance" + ("" if cmp.finite else
                                                              "; contains NaN or inf"))

    def _fd(self, run: UnitRun) -> None:
        """One random direction per input, finite differences of the user's own forward."""
        u, c = run.unit, run.case
        h = FD_STEP[np.dtype(run.dtype)]
        rng = np.random.default_rng(self.ck.opts.seed + 7919)
        dirs = []
        for i in range(len(u.inputs)):
            d = [np.zeros_like(a) for a in c.args]
            v = rng.standard_normal(c.args[i].shape)
            d[i] = v / np.linalg.norm(v)
            dirs.append(d)
        offs = fd_offsets(h)
        vals = self.w.layer_project(u.name, c.args, c.ups, dirs,
                                    [(j, s) for j in range(len(dirs)) for s in offs])
        base = float(sum(np.sum(d * o) for d, o in zip(c.ups, run.outs)))
        for j, name in enumerate(u.grads):
            g, rg = run.grads[j], run.ref_grads[j]
            if g.shape != rg.shape:
                continue
            at = dict(zip(offs, vals[j * len(offs):(j + 1) * len(offs)]))
            dc = directional_check(base, at, float(np.sum(g * dirs[j][j])),
                                   float(np.abs(rg * dirs[j][j]).sum()), h, run.dtype)
            grp = next(x for x in self.r.groups if x.name == f"{u.name}.{name}")
            grp.fd = FDResult(status="pass" if dc.passed else "fail", analytic=dc.analytic,
                              numeric=dc.numeric, error=dc.error, tolerance=dc.tolerance,
                              noise=dc.noise, step=dc.step, rate_verdict=dc.rate_verdict,
                              taylor_rates=[None if np.isnan(x) else x for x in dc.taylor_rates])
            self.ck.add(f"fd.{u.name}.{name}", dc.passed,
                        f"{name}: your directional derivative {dc.analytic:.10g}, finite "
                        f"differences of your {u.forward} {dc.numeric:.10g} (|diff| "
                        f"{dc.error:.2e}, tolerance {dc.tolerance:.1e})")

    # ------------------------------------------------------------------ diagnosis

    def diagnose(self) -> list[Diagnosis]:
        found: dict[str, Diagnosis] = {}
        explained: set[str] = set()
        order = sorted(self.runs.values(), key=lambda x: not x.unit.name.endswith("_step"))
        for run in order:  # steps first: a sequence function inherits its step's bug
            if not run.failed:
                continue
            step = self.runs.get(STEP_OF.get(run.unit.name, ""))
            for bid, groups, evidence in self._matches(run):
                gnames = [f"{run.unit.name}.{g}" for g in groups]
                if bid in found and step is not None and bid in self._step_ids(step):
                    d = found[bid]
                    d.groups += gnames
                    d.evidence += (f" {run.unit.backward} inherits it: it calls "
                                   f"{step.unit.backward} ({', '.join(groups)} match the "
                                   f"reference with the same bug).")
                else:
                    found.setdefault(bid, _diagnosis(bid, gnames, evidence))
                explained.update(gnames)
        out = list(found.values())
        unmatched: dict[str, Diagnosis] = {}
        for run in order:
            left = [f"{run.unit.name}.{g}" for g in run.failed
                    if f"{run.unit.name}.{g}" not in explained]
            if not left:
                continue
            step = STEP_OF.get(run.unit.name)
            if step in unmatched:  # the sequence calls a step that is already wrong
                d = unmatched[step]
                d.groups += left
                d.evidence += (f" {run.unit.backward} fails too ({', '.join(left)}); it calls "
                               f"{BY_NAME[step].backward}, so fix the step first.")
                continue
            unmatched[run.unit.name] = self._unmatched(run, left)
            out.append(unmatched[run.unit.name])
        for c in self.r.checks:
            if c.status == "fail" and c.name.startswith(("implemented.", "runs.")):
                unit = unit_of(c.name)
                if any(g.startswith(unit + ".") for d in out for g in d.groups):
                    continue
                if c.name.startswith("implemented."):
                    out.append(Diagnosis(id="layer.not-implemented", confidence=0.99,
                                         groups=[unit], title=f"{unit}: not implemented yet",
                                         evidence=c.message, fix="Finish the function and "
                                         "return the tuple its docstring names."))
                    continue
                step = STEP_OF.get(unit)
                cause = next((d for d in out if any(g.startswith(f"{step}.") for g in d.groups)),
                             None)
                ev = c.message + (f". It is probably a consequence of {cause.id} in "
                                  f"{BY_NAME[step].backward}, which {BY_NAME[unit].backward} "
                                  f"calls: fix that first" if cause else "")
                out.append(Diagnosis(id="layer.not-run", confidence=0.5 if cause else 0.9,
                                     groups=[unit], title=f"{unit}: raised an exception",
                                     evidence=ev, fix=f"Fix {cause.id} first:\n{cause.fix}"
                                     if cause else "Fix the line shown; a shape in the "
                                     "traceback usually names the array that is off."))
        return sorted(out, key=lambda d: -d.confidence)

    def _step_ids(self, step: UnitRun) -> set[str]:
        return {bid for bid, _, _ in self._matches(step)}

    def _matches(self, run: UnitRun):
        """(id, groups, evidence) of every known bug that reproduces the user's gradients."""
        if run.matches is not None:
            return run.matches
        u, c, tol = run.unit, _rounded(run.case, run.dtype), run.rtol * MATCH_SLACK
        out = []
        for bug in _candidates(u):
            _, mg = reference(u, c, frozenset({bug}))
            if all(g.shape == m.shape and compare(g, m, tol).passed
                   for g, m in zip(run.grads, mg)):
                bid = bug.split(":")[0]
                var = bug.partition(":")[2]
                ev = (f"your {', '.join(run.failed)} equal the reference's with this bug planted"
                      + (f" (gate {var})" if var else "") + " to within "
                      f"{tol:.1e} relative; the correct values differ by up to "
                      f"{max(_maxdiff(run, g) for g in run.failed):.3g}.")
                out.append((bid, list(run.failed), ev))
                break
        out += self._batch_and_overwrite(run, c, tol)
        run.matches = out
        return out

    def _batch_and_overwrite(self, run: UnitRun, c: UnitCase, tol: float):
        u, out = run.unit, []
        contrib: dict = {}
        if not u.name.endswith("_step"):
            reference(u, c, contrib=contrib)
        per_example = [reference(u, UnitCase(c.args, [_only(d, n) for d in c.ups]))[1]
                       for n in range(N)]
        batch, axis, over = [], [], []
        for name in run.failed:
            j = u.grads.index(name)
            g, rg = run.grads[j], run.ref_grads[j]
            if name in ("dx", "dprev_h", "dprev_c", "dh0"):
                continue
            if g.shape == (N, *rg.shape) and compare(g.sum(axis=0), rg, tol).passed:
                batch.append((name, f"{name} has shape {g.shape}: one value per example, "
                                    f"not summed over the batch of {N}"))
            elif g.shape == rg.shape and compare(g, rg / N, tol).passed:
                batch.append((name, f"{name} is the reference divided by the batch size "
                                    f"N = {N}: averaged, not summed"))
            elif g.shape == rg.shape and any(compare(g, pe[j], tol).passed for pe in per_example):
                n = next(i for i, pe in enumerate(per_example) if compare(g, pe[j], tol).passed)
                batch.append((name, f"{name} equals the gradient of example {n} alone"))
            elif name == "db" and (g.shape in ((N,), (T,), (N, T), ()) or (
                    g.shape == rg.shape and np.allclose(g, float(np.sum(rg)), rtol=tol * 10))):
                axis.append((name, _axis_evidence(g.shape, rg.shape) if g.shape != rg.shape else
                             f"every entry of db is {float(g.flat[0]):.6g}, the sum of all "
                             f"entries of the reference's db: summed over every axis"))
            elif name in contrib and g.shape == rg.shape:
                ts = [t for t in range(contrib[name].shape[0])
                      if compare(g, contrib[name][t], tol).passed]
                if ts:
                    over.append((name, f"{name} equals the contribution of step t = {ts[0]} "
                                       f"alone"))
        for bid, items in (("batch.sum-missing", batch), ("batch.bias-wrong-axis", axis),
                           ("grad.overwrite-not-accumulate", over)):
            if items:
                out.append((bid, [n for n, _ in items], "; ".join(e for _, e in items)))
        return out

    def _unmatched(self, run: UnitRun, groups: list[str]) -> Diagnosis:
        u = run.unit
        step = self.runs.get(STEP_OF.get(u.name, ""))
        hint = ""
        if step is not None and not step.failed:
            hint = (f" {step.unit.backward} passes, so the bug is in how {u.backward} combines "
                    f"the steps: the upstream gradient of step t is dh[:, t] plus what flows back "
                    f"from step t+1, and dWx, dWh, db sum every step's share.")
        parts = []
        for g in groups:
            grp = next(x for x in self.r.groups if x.name == g)
            j = u.grads.index(g.split(".", 1)[1])
            ug, rg = run.grads[j], run.ref_grads[j]
            fact = (f"{g}: max abs error {grp.max_abs_error:.3g}, worst "
                    f"[{','.join(map(str, grp.worst_index))}] yours {grp.worst_user:.6g} vs "
                    f"reference {grp.worst_ref:.6g}")
            rr = float(np.sum(rg * rg)) if ug.shape == rg.shape else 0.0
            if rr > 0:
                a = float(np.sum(ug * rg) / rr)
                if np.linalg.norm(ug - a * rg) <= 1e-6 * np.linalg.norm(rg):
                    fact += f" (exactly {a:.6g} x the reference)"
            parts.append(fact)
        return Diagnosis(id="unmatched", confidence=0.0, groups=groups,
                         title=f"{u.backward}: no known bug matches",
                         evidence="; ".join(parts) + "." + hint,
                         fix=f"Compare {u.backward} line by line with the derivative of "
                             f"{u.forward}; the failing groups above show where to look.")


def unit_of(check: str) -> str:
    """The unit a layer-style check belongs to: grad.rnn_step.dx, fd.lstm.dWh,
    forward.rnn.h, behaviour.lstm_step.inputs-unchanged, implemented.lstm -> the unit."""
    parts = check.split(".")
    return parts[1] if len(parts) > 1 else ""


def _candidates(u: Unit) -> list[str]:
    rnn_step = ["rnn.tanh-derivative-missing", "rnn.whh-not-transposed"]
    lstm_step = ["lstm.dc-next-missing-forget", "lstm.cell-tanh-derivative-missing"] + [
        f"lstm.gate-derivative-reapplied:{g}" for g in ref_layers.GATES]
    return {"rnn_step": rnn_step, "rnn": ["rnn.missing-dh-next"] + rnn_step,
            "lstm_step": lstm_step, "lstm": ["rnn.missing-dh-next"] + lstm_step}[u.name]


def _diagnosis(bid: str, groups: list[str], evidence: str) -> Diagnosis:
    b = catalogue.BY_ID[bid]
    return Diagnosis(id=bid, confidence=0.99, groups=groups, title=b.title, evidence=evidence,
                     fix=catalogue.FIX_LAYERS.get(bid, b.fix), exact=True)


def _axis_evidence(got: tuple, want: tuple) -> str:
    if got == ():
        return f"db is a single number, expected shape {want}: summed over every axis"
    what = {N: f"the batch size N = {N}", T: f"the number of steps T = {T}"}.get(got[-1], "")
    return (f"db has shape {got}, expected {want}" + (f": {got[-1]} is {what}, so db was "
            f"summed over the hidden axis instead of the batch axis" if what else ""))


def _maxdiff(run: UnitRun, name: str) -> float:
    j = run.unit.grads.index(name)
    g, rg = run.grads[j], run.ref_grads[j]
    return float(np.max(np.abs(g - rg))) if g.shape == rg.shape else float("inf")


def _only(d: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(d)
    out[n] = d[n]
    return out


def _rounded(c: UnitCase, dtype: str) -> UnitCase:
    if dtype != "float32":
        return c
    r = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    return UnitCase([r(a) for a in c.args], [r(a) for a in c.ups])


def _compare_msg(what: str, u: np.ndarray, ref: np.ndarray, rtol: float) -> tuple[bool, str]:
    if u.shape != ref.shape:
        return False, f"{what} has shape {u.shape}, expected {ref.shape}"
    cmp = compare(u, ref, rtol)
    return cmp.passed, (f"{what}: max abs error {cmp.max_abs_error:.2e} (tolerance "
                        f"{cmp.tolerance:.1e})" + ("" if cmp.finite else "; contains NaN or inf"))
