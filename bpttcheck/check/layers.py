"""Checking layer-style code (`rnn_layers.py`, CONTRACT §2.2b): every forward/backward pair the
file defines, on a small batched case, against the float64 reference in the same layout and
against finite differences of the user's own forward projected on the upstream gradients.

The checked quantity of a unit is L = sum(dout * out) over its outputs (next_h, and next_c for
an LSTM step), with random upstream gradients dout; every returned gradient is a group."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpttcheck.check import inplace, perturbation
from bpttcheck.check.inplace import Modified
from bpttcheck.check.numerics import (
    Comparison,
    arithmetic_dtype,
    compare,
    directional_check,
    fd_offsets,
    fd_rtol,
    fd_step,
    oracle_rtol,
)
from bpttcheck.check.recorder import Recorder, fd_result, group_result, spec_tolerance
from bpttcheck.errors import UserCodeError
from bpttcheck.layer_api import BLOCKS, BY_NAME, Unit
from bpttcheck.oracle import layers as ref_layers
from bpttcheck.result import CheckResult, Report

N, T, D, H = 3, 4, 5, 6  # all different: a sum over the wrong axis gives the wrong shape


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
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # group -> vs reference
    modified: list[Modified] = field(default_factory=list)  # arrays it changed in place
    matches: list | None = None  # known bugs that reproduce the user's gradients (cached)


@dataclass
class Names:
    """What the user calls a unit's functions and gradients (the adapter's describe() sends
    them for styles other than the layer API's; the canonical names are the default)."""

    forward: str
    backward: str
    grads: dict[str, str]  # canonical gradient -> the user's name
    blocks: dict[str, list[str]]  # LSTM: canonical gradient -> user name of each gate block

    def grad(self, name: str) -> str:
        return self.grads.get(name, name)

    def group(self, unit: str, name: str, qualified: bool = False) -> str:
        """A group as the user would name it; under the layer API the gradient's name,
        ``qualified``: with its unit (``rnn_step.dWh``)."""
        return self.grads.get(name, f"{unit}.{name}" if qualified else name)


def names_of(u: Unit, extra: dict) -> Names:
    d = (extra.get("names") or {}).get(u.name)
    if not d:
        return Names(u.forward, u.backward, {}, {})
    return Names(d["forward"], d["backward"], dict(d.get("grads", {})),
                 {k: list(v) for k, v in d.get("blocks", {}).items()})


@dataclass
class LayerFindings:
    """What the layer checks measured: the diagnosis reads this, nothing else."""

    units: list[Unit]
    runs: dict[str, UnitRun]  # unit -> its run, for the units that ran to the end
    failed_checks: list[str] = field(default_factory=list)
    # implemented.<unit> / runs.<unit> checks that failed -> their message
    not_run: dict[str, str] = field(default_factory=dict)
    names: dict[str, Names] = field(default_factory=dict)  # unit -> the user's names

    def of(self, unit: str) -> Names:
        return self.names.get(unit) or names_of(BY_NAME[unit], {})

    def user_groups(self, groups: list[str], qualified: bool = False) -> str:
        """Canonical group names (``rnn_step.dWh``) as the user would write them."""
        split = [g.partition(".") for g in groups]
        return ", ".join(self.of(u).group(u, name, qualified) for u, _, name in split)


def make_case(u: Unit, seed: int) -> UnitCase:
    rng = np.random.default_rng([seed, len(u.name), "lstm" in u.name])
    G = BLOCKS[u.family] * H
    x = rng.normal(0, 1, (N, T, D))  # (N, T, D)
    h0 = rng.uniform(-0.6, 0.6, (N, H))  # (N, H)
    Wx = rng.normal(0, 1 / np.sqrt(D), (D, G))  # (D, G)
    Wh = rng.normal(0, 1 / np.sqrt(H), (H, G))  # (H, G)
    b = rng.normal(0, 0.3, G)  # (G,)
    params = [Wx, Wh] + ([b] if "b" in u.inputs else [])  # the GRU units have no bias
    if u.name.endswith("_step"):
        args = [x[:, 0], h0] + ([rng.normal(0, 0.5, (N, H))] if u.family == "lstm" else [])
        ups = [rng.normal(0, 1, (N, H)) for _ in u.outputs]
        return UnitCase(args + params, ups)
    return UnitCase([x, h0, *params], [rng.normal(0, 1, (N, T, H))])


def reference(u: Unit, c: UnitCase, bugs=frozenset(), contrib=None):
    """(outputs, grads) of the reference for a unit, with ``bugs`` planted."""
    R = ref_layers
    if u.name == "rnn_step":
        out, cache = R.rnn_step_forward(*c.args)
        return [out], list(R.rnn_step_backward(c.ups[0], cache, bugs))
    if u.name == "lstm_step":
        h, cc, cache = R.lstm_step_forward(*c.args)
        return [h, cc], list(R.lstm_step_backward(c.ups[0], c.ups[1], cache, bugs))
    if u.name == "gru_step":
        out, cache = R.gru_step_forward(*c.args)
        return [out], list(R.gru_step_backward(c.ups[0], cache, bugs))
    pairs: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "rnn": (R.rnn_forward, R.rnn_backward), "lstm": (R.lstm_forward, R.lstm_backward),
        "gru": (R.gru_forward, R.gru_backward)}
    fwd, bwd = pairs[u.name]
    h, cache = fwd(*c.args)
    return [h], list(bwd(c.ups[0], cache, bugs, contrib))


class LayerChecker:
    """Checks every unit the worker found in a layer-style module; the sibling of the
    sequence checker."""

    def __init__(self, rec: Recorder, w, info: dict, opts):
        self.rec, self.w, self.opts, self.r = rec, w, opts, rec.report
        extra = info.get("extra", {})
        self.units = [BY_NAME[n] for n in extra.get("units", [])]
        self.lonely = extra.get("lonely", [])
        self.findings = LayerFindings(self.units, {},
                                      names={u.name: names_of(u, extra) for u in self.units})
        self.styled = bool(extra.get("names"))  # the user's names differ from the layer API's
        self.inplace_checks: dict[str, CheckResult] = {}  # unit -> its inputs-unchanged check

    def expected_checks(self) -> list[str]:
        """The checks of every unit the file defines, when nothing stops the run (the scored
        checks of the layer style, scoring.py)."""
        names: list[str] = []
        for u in self.units:
            names += [f"forward.{u.name}.{o}" for o in u.outputs]
            names += [f"grad.{u.name}.{g}" for g in u.grads]
            names.append(f"behaviour.{u.name}.inputs-unchanged")
            names += [f"fd.{u.name}.{g}" for g in u.grads]
        return names

    def run(self) -> Report:
        r, f = self.r, self.findings
        r.sizes = {"N": N, "T": T, "D": D, "H": H}
        r.layout = "x @ Wx + h @ Wh + b; LSTM gates i, f, o, g" + (
            "; GRU blocks z, r, n, no bias, h' = (1 - z) n + z h"
            if any(u.family == "gru" for u in self.units) else "") + (
            f" (canonical; converted from the {r.style} layout)" if self.styled else "")
        for fn in self.lonely:
            self.rec.note("layer.unpaired", f"{fn} has no partner",
                          f"{fn} is defined but its forward/backward partner is not, so it was "
                          f"not checked")
        for u in self.units:
            self.check_unit(u)
        r.dtype = next((x.dtype for x in f.runs.values()), "float64")
        r.tolerances.update({f"{n}.grad_rtol": x.rtol for n, x in f.runs.items()})
        r.tolerances["fd_step"] = fd_step(r.dtype)
        r.tolerances.update({k: v for k, v in self.opts.tolerances.items()
                             if k in ("loss_rtol", "fd_rtol")})
        fams: dict[str, str] = {}
        for u in self.units:
            bad = any(c.status == "fail" for c in r.checks if unit_of(c.name) == u.name)
            fams[u.family] = "fail" if bad or fams.get(u.family) == "fail" else "pass"
            if f.runs.get(u.name) is None:
                fams[u.family] = "fail"
        r.parts = fams
        if self.opts.diagnose:
            self._where_written()
        f.failed_checks = self.rec.failed_checks()
        f.not_run = {c.name: c.message for c in r.checks if c.status == "fail"
                     and c.name.startswith(("implemented.", "runs."))}
        if self.opts.diagnose and f.failed_checks:
            from bpttcheck.check.layer_diagnose import diagnose
            from bpttcheck.check.layer_locate import locate_layers
            r.diagnoses = diagnose(f)
            locate_layers(self.w, f, r.diagnoses)
        return r

    # ------------------------------------------------------------------ one unit

    def check_unit(self, u: Unit) -> None:
        rec, nm = self.rec, self.findings.of(u.name)
        c = make_case(u, self.opts.seed)
        with rec.shared():
            hdr, outs, grads = self.w.layer_run(u.name, c.args, c.ups)
            status = hdr["status"]
            if status != "ok":
                what = "implemented" if status == "not-implemented" else "runs"
                where = f" (at {hdr['line']})" if hdr.get("line") else ""
                rec.add(f"{what}.{u.name}", False, f"{hdr['message']}{where}")
                if status == "not-implemented" or not outs:
                    return
            dtype = hdr.get("dtype", "float64")
            steps = 1 if u.name.endswith("_step") else T
            own = oracle_rtol(dtype, steps, D + H)
            ref_outs, ref_grads = reference(u, rounded(c, dtype))
            unit = self._perturbation(u, dtype, steps, outs, ref_outs, grads, ref_grads)
            out_own = own
            if unit and unit > own and not self.opts.require_standard:
                out_own = perturbation.LIMIT  # accepted up to the limit of a perturbation
            tols = self.opts.tolerances
            rtol = spec_tolerance(rec, tols, "grad_rtol", oracle_rtol(dtype, steps, D + H, unit),
                                  dtype)
            out_rtol = spec_tolerance(rec, tols, "loss_rtol", out_own, dtype)
            for name, o, ro in zip(u.outputs, outs, ref_outs, strict=False):
                ok, msg = _compare_msg(f"{nm.forward}'s {name}", o, ro, out_rtol)
                rec.add(f"forward.{u.name}.{name}", ok, msg)
            if status != "ok":
                return
            run = UnitRun(u, c, status, outs, grads, ref_outs, ref_grads, [], rtol, dtype)
            self.findings.runs[u.name] = run
            for name, g, rg in zip(u.grads, grads, ref_grads, strict=False):
                self._group(run, name, g, rg)
            run.modified = inplace.parse(hdr.get("modified"), nm.forward, nm.backward)
            self.inplace_checks[u.name] = rec.add(f"behaviour.{u.name}.inputs-unchanged",
                                                  not run.modified,
                                                  inplace.message(run.modified))
            # an upstream gradient or the cache written into: the gradients stand (a warning);
            # a forward input or a parameter changes what the caller computes with (a failure)
            self.inplace_checks[u.name]._warns = bool(run.modified) and all(
                m.role in ("upstream", "cache") and not m.through_cache for m in run.modified)
        with rec.shared():
            self._fd(run)

    def _where_written(self) -> None:
        """The line that writes into each array a unit changed in place: one more call of the
        unit, watched (sandbox/writes.py), after every unit is checked, so that a call that
        fails here costs the line and nothing else."""
        for name, run in self.findings.runs.items():
            if not run.modified:
                continue
            try:
                writes = self.w.layer_writes(name, run.case.args, run.case.ups,
                                             [m.key for m in run.modified])
            except UserCodeError:
                return  # the worker is gone: the checks stand without their lines
            inplace.add_writes(run.modified, writes)
            self.inplace_checks[name].message = inplace.message(run.modified)
    def _perturbation(self, u: Unit, dtype: str, steps: int, outs, ref_outs, grads,
                      ref_grads) -> float:
        """A forward that is the reference perturbed by an epsilon inside its nonlinearity
        (check/perturbation.py): the measure (0.0: none), said in a model.perturbed note."""
        if len(outs) != len(ref_outs) or len(grads) != len(ref_grads) or any(
                np.shape(a) != np.shape(b) for a, b in zip([*outs, *grads],
                                                           [*ref_outs, *ref_grads], strict=True)):
            return 0.0  # a wrong shape: the checks say so
        gap = perturbation.largest_gap(outs, ref_outs)
        grads_gap = perturbation.largest_gap(grads, ref_grads)
        own = oracle_rtol(dtype, steps, D + H)
        unit = perturbation.rule(dtype, gap, own, grads_gap,
                                 lambda x: oracle_rtol(dtype, steps, D + H, x))
        if unit:
            nm = self.findings.of(u.name)
            self.rec.note("model.perturbed", f"{nm.forward}: the textbook forward, perturbed",
                          perturbation.describe(
                              f"{nm.forward}'s outputs differ from the reference's by {unit:.2g} "
                              f"(relative, the largest over {', '.join(u.outputs)})", unit,
                              unit > own, self.opts.require_standard, own,
                              oracle_rtol(dtype, steps, D + H, unit), grads_gap,
                              "grad_rtol" in self.opts.tolerances))
        return unit

    def _group(self, run: UnitRun, name: str, g: np.ndarray, rg: np.ndarray) -> None:
        u, gname, nm = run.unit, f"{run.unit.name}.{name}", self.findings.of(run.unit.name)
        cmp = compare(g, rg, run.rtol) if g.shape == rg.shape else _wrong_shape(rg)
        run.comparisons[name] = cmp
        if not cmp.passed:
            run.failed.append(name)
        user = nm.grads.get(name, f"{name} ({u.backward})")
        what = nm.grads.get(name, f"{name} from {u.backward}")
        group, message = group_result(gname, user, cmp, what)
        self.r.groups.append(group)
        if g.shape != rg.shape:
            message = (f"{nm.backward} returned {nm.grad(name)} of shape {g.shape}, expected "
                       f"{rg.shape} (the shape of {u.inputs[u.grads.index(name)]})"
                       + (" in the canonical layout" if self.styled else ""))
        elif not cmp.passed and name in nm.blocks:
            bad = wrong_blocks(g, rg, run.rtol, len(nm.blocks[name]))
            if bad:
                message += "; wrong in " + ", ".join(nm.blocks[name][k] for k in bad)
        self.rec.add(f"grad.{gname}", cmp.passed, message)

    def _fd(self, run: UnitRun) -> None:
        """One random direction per input, finite differences of the user's own forward."""
        u, c = run.unit, run.case
        h = fd_step(run.dtype)
        share = spec_tolerance(self.rec, self.opts.tolerances, "fd_rtol", fd_rtol(run.dtype),
                               run.dtype)
        rng = np.random.default_rng(self.opts.seed + 7919)
        dirs = []
        for i in range(len(u.inputs)):
            d = [np.zeros_like(a) for a in c.args]
            v = rng.standard_normal(c.args[i].shape)
            d[i] = v / np.linalg.norm(v)
            dirs.append(d)
        offs = fd_offsets(h)
        vals = self.w.layer_project(u.name, c.args, c.ups, dirs,
                                    [(j, s) for j in range(len(dirs)) for s in offs])
        base = float(sum(np.sum(d * o) for d, o in zip(c.ups, run.outs, strict=False)))
        for j, name in enumerate(u.grads):
            g, rg = run.grads[j], run.ref_grads[j]
            if g.shape != rg.shape:
                continue
            at = dict(zip(offs, vals[j * len(offs):(j + 1) * len(offs)], strict=False))
            dc = directional_check(base, at, float(np.sum(g * dirs[j][j])),
                                   float(np.abs(rg * dirs[j][j]).sum()), h, run.dtype, share)
            grp = next(x for x in self.r.groups if x.name == f"{u.name}.{name}")
            nm = self.findings.of(u.name)
            grp.fd, message = fd_result(dc, nm.grad(name), source=f"your {nm.forward}",
                                        detail=False)
            self.rec.add(f"fd.{u.name}.{name}", dc.passed, message)


def unit_of(check: str) -> str:
    """The unit a layer-style check belongs to: grad.rnn_step.dx, fd.lstm.dWh,
    forward.rnn.h, behaviour.lstm_step.inputs-unchanged, implemented.lstm -> the unit."""
    parts = check.split(".")
    return parts[1] if len(parts) > 1 else ""


def wrong_blocks(g: np.ndarray, rg: np.ndarray, rtol: float, k: int = 4) -> list[int]:
    """The gate blocks (H-wide slices of the last axis: LSTM i, f, o, g; GRU z, r, n) where
    a gradient differs from the reference."""
    H = rg.shape[-1] // k
    return [j for j in range(k) if not compare(g[..., j * H:(j + 1) * H],
                                               rg[..., j * H:(j + 1) * H], rtol).passed]


def _wrong_shape(rg: np.ndarray) -> Comparison:
    """The comparison of a gradient returned in the wrong shape: every entry is off."""
    return Comparison(max_abs_error=float("inf"), max_rel_error=float("inf"), worst_index=(),
                      worst_user=float("nan"), worst_ref=float("nan"), tolerance=0.0,
                      scale=float(np.max(np.abs(rg))) if rg.size else 0.0, n_bad=rg.size,
                      n=rg.size, finite=True)


def rounded(c: UnitCase, dtype: str) -> UnitCase:
    """The case as code computing in ``dtype`` sees it."""
    if arithmetic_dtype(dtype) != np.float32:
        return c
    return UnitCase([_f32(a) for a in c.args], [_f32(a) for a in c.ups])


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).astype(np.float64)


def _compare_msg(what: str, u: np.ndarray, ref: np.ndarray, rtol: float) -> tuple[bool, str]:
    if u.shape != ref.shape:
        return False, f"{what} has shape {u.shape}, expected {ref.shape}"
    cmp = compare(u, ref, rtol)
    return cmp.passed, (f"{what}: max abs error {cmp.max_abs_error:.2e} (tolerance "
                        f"{cmp.tolerance:.1e})" + ("" if cmp.finite else "; contains NaN or inf"))
