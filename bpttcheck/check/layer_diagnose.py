"""Naming the bug in layer-style code: plant each bug the catalogue lists for a unit in the
layer reference and see which one reproduces the user's gradients; then the batch and
accumulation mistakes measured directly; a sequence function that only inherits its step's
bug is reported with the step. Reads only the LayerFindings."""
from __future__ import annotations

import re

import numpy as np

from bpttcheck.check import catalogue
from bpttcheck.check.layers import (
    LayerFindings,
    N,
    Names,
    T,
    UnitCase,
    UnitRun,
    reference,
    rounded,
    unit_of,
    wrong_blocks,
)
from bpttcheck.check.numerics import MATCH_SLACK, compare, exact_multiple
from bpttcheck.layer_api import BY_NAME, STEP_OF
from bpttcheck.result import Diagnosis


def diagnose(f: LayerFindings) -> list[Diagnosis]:
    found: dict[str, Diagnosis] = {}
    explained: set[str] = set()
    order = sorted(f.runs.values(), key=lambda x: not x.unit.name.endswith("_step"))
    for run in order:  # steps first: a sequence function inherits its step's bug
        if not run.failed:
            continue
        step = f.runs.get(STEP_OF.get(run.unit.name, ""))
        for bid, groups, evidence in _matches(run, f):
            gnames = [f"{run.unit.name}.{g}" for g in groups]
            if bid in found and step is not None and bid in _step_ids(step, f):
                d = found[bid]
                d.groups += gnames
                d.evidence += (f" {f.of(run.unit.name).backward} inherits it: it calls "
                               f"{f.of(step.unit.name).backward} ({f.user_groups(gnames)} "
                               f"match the reference with the same bug).")
            else:
                found.setdefault(bid, _known(bid, gnames, evidence, f.of(run.unit.name)))
            explained.update(gnames)
    out = list(found.values())
    unmatched: dict[str, Diagnosis] = {}
    for run in order:
        left = [f"{run.unit.name}.{g}" for g in run.failed
                if f"{run.unit.name}.{g}" not in explained]
        if not left:
            continue
        called = STEP_OF.get(run.unit.name, "")
        if called in unmatched:  # the sequence calls a step that is already wrong
            d = unmatched[called]
            d.groups += left
            d.evidence += (f" {f.of(run.unit.name).backward} fails too "
                           f"({f.user_groups(left)}); it calls {f.of(called).backward}, so fix "
                           f"the step first.")
            continue
        unmatched[run.unit.name] = _unmatched(f, run, left)
        out.append(unmatched[run.unit.name])
    out += _not_run(f, out)
    out += _modified_in_place(f)
    return sorted(out, key=lambda d: -d.confidence)


def _modified_in_place(f: LayerFindings) -> list[Diagnosis]:
    """A unit that changed arrays it was given: grad.params-modified for its parameters,
    grad.inputs-modified for the rest (an upstream gradient, an input, the cache). Its
    gradients may well be right: the harm is to the caller, who uses the arrays afterwards."""
    out = []
    for run in f.runs.values():
        for bid, mods in (("grad.inputs-modified", [m for m in run.modified
                                                     if m.role != "parameter"]),
                          ("grad.params-modified", [m for m in run.modified
                                                     if m.role == "parameter"])):
            if not mods:
                continue
            clean = not run.failed
            ev = ("; ".join(m.sentence() for m in mods) + "."
                  + (f" The gradients it returned match the reference, so the computation is "
                     f"right; but whoever calls {mods[0].function} and uses "
                     f"{mods[0].argument} afterwards (a gradient check comparing it with "
                     f"numerical gradients, a second backward pass) sees other values"
                     if clean else " Its gradients fail too: fix those as well"))
            nm = f.of(run.unit.name)
            d = _layer_diag(bid, 0.97 if clean else 0.7, run.unit.name, ev,
                            fix=mods[0].fix(), unit=_unit_label(f, run.unit.name),
                            backward=mods[0].function, forward=nm.forward)
            d.exact = clean
            d.location = next((loc for m in mods if (loc := m.location()) is not None), None)
            out.append(d)
    return out


def _not_run(f: LayerFindings, out: list[Diagnosis]) -> list[Diagnosis]:
    """Units still stubs, or raising: unless a diagnosis already covers the unit."""
    more = []
    for check, message in f.not_run.items():
        unit = unit_of(check)
        if any(g.startswith(unit + ".") for d in out for g in d.groups):
            continue
        if check.startswith("implemented."):
            more.append(_layer_diag("layer.not-implemented", 0.99, unit, message,
                                    unit=_unit_label(f, unit)))
            continue
        step = STEP_OF.get(unit)
        cause = next((d for d in out if any(g.startswith(f"{step}.") for g in d.groups)),
                     None)
        if cause is None or step is None:
            more.append(_layer_diag("layer.not-run", 0.9, unit, message,
                                    unit=_unit_label(f, unit)))
            continue
        ev = (message + f". It is probably a consequence of {cause.id} in "
              f"{f.of(step).backward}, which {f.of(unit).backward} calls: fix that first")
        more.append(_layer_diag("layer.not-run", 0.5, unit, ev,
                                fix=f"Fix {cause.id} first:\n{cause.fix}",
                                unit=_unit_label(f, unit)))
    return more


def _unit_label(f: LayerFindings, unit: str) -> str:
    """The unit as the user knows it: its name under the layer API, else its functions."""
    nm = f.of(unit)
    return unit if nm.backward == BY_NAME[unit].backward else f"{nm.forward}/{nm.backward}"


def _step_ids(step: UnitRun, f: LayerFindings) -> set[str]:
    return {bid for bid, _, _ in _matches(step, f)}


def _matches(run: UnitRun, f: LayerFindings):
    """(id, groups, evidence) of every known bug that reproduces the user's gradients."""
    if run.matches is not None:
        return run.matches
    u, c, tol = run.unit, rounded(run.case, run.dtype), run.rtol * MATCH_SLACK
    out = []
    for bug in catalogue.unit_mutants(u.name):
        _, mg = reference(u, c, frozenset({bug}))
        if all(g.shape == m.shape and compare(g, m, tol).passed
               for g, m in zip(run.grads, mg, strict=False)):
            bid = bug.split(":")[0]
            var = bug.partition(":")[2]
            mine = f.user_groups([f"{u.name}.{g}" for g in run.failed])
            ev = (f"your {mine} equal the reference's with this bug planted"
                  + (f" (gate {var})" if var else "") + " to within "
                  f"{tol:.1e} relative; the correct values differ by up to "
                  f"{max(_maxdiff(run, g) for g in run.failed):.3g}.")
            out.append((bid, list(run.failed), ev))
            break
    out += _batch_and_overwrite(run, c, tol, f)
    run.matches = out
    return out


def _batch_and_overwrite(run: UnitRun, c: UnitCase, tol: float, f: LayerFindings):
    u, out, nm = run.unit, [], f.of(run.unit.name)
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
            batch.append((name, (f"{name} has shape {g.shape}: one value per example, "
                                 f"not summed over the batch of {N}")))
        elif g.shape == rg.shape and compare(g, rg / N, tol).passed:
            batch.append((name, (f"{name} is the reference divided by the batch size "
                                 f"N = {N}: averaged, not summed")))
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
                over.append((name, (f"{nm.grad(name)} equals the contribution of step "
                                    f"t = {ts[0]} alone")))
            elif name in nm.blocks:  # one gate's gradient overwritten (per-gate dWf, dbf, ...)
                blk = _overwritten_blocks(g, rg, contrib[name], tol, len(nm.blocks[name]))
                if blk:
                    over.append((name, "; ".join(f"{nm.blocks[name][k]} equals the "
                                                 f"contribution of step t = {t} alone"
                                                 for k, t in blk)))
    for bid, items in (("batch.sum-missing", batch), ("batch.bias-wrong-axis", axis),
                       ("grad.overwrite-not-accumulate", over)):
        if items:
            out.append((bid, [n for n, _ in items], "; ".join(e for _, e in items)))
    return out


def _overwritten_blocks(g, rg, contrib, tol: float, n: int) -> list[tuple[int, int]]:
    """(gate block, step) of each wrong block of a gated gradient that equals one step's
    share alone, if every wrong block does."""
    H, out = rg.shape[-1] // n, []
    for k in wrong_blocks(g, rg, tol, n):
        cols = slice(k * H, (k + 1) * H)
        t = next((t for t in range(contrib.shape[0])
                  if compare(g[..., cols], contrib[t][..., cols], tol).passed), None)
        if t is None:
            return []
        out.append((k, t))
    return out


def _unmatched(f: LayerFindings, run: UnitRun, groups: list[str]) -> Diagnosis:
    u, nm = run.unit, f.of(run.unit.name)
    step = f.runs.get(STEP_OF.get(u.name, ""))
    hint = ""
    if step is not None and not step.failed:
        hint = (f" {f.of(step.unit.name).backward} passes, so the bug is in how {nm.backward} "
                f"combines "
                f"the steps: the upstream gradient of step t is dh[:, t] plus what flows back "
                f"from step t+1, and dWx, dWh, db sum every step's share.")
    parts = []
    for g in groups:
        name = g.split(".", 1)[1]
        j = u.grads.index(name)
        cmp = run.comparisons[name]
        fact = (f"{f.user_groups([g], qualified=True)}: max abs error {cmp.max_abs_error:.3g}, worst "
                f"[{','.join(map(str, cmp.worst_index))}] yours {cmp.worst_user:.6g} vs "
                f"reference {cmp.worst_ref:.6g}")
        a = exact_multiple(run.grads[j], run.ref_grads[j])
        if a is not None:
            fact += f" (exactly {a:.6g} x the reference)"
        parts.append(fact)
    return _layer_diag("unmatched", 0.0, groups, "; ".join(parts) + "." + hint,
                       backward=nm.backward, forward=nm.forward)


def _known(bid: str, groups: list[str], evidence: str, nm: Names) -> Diagnosis:
    b = catalogue.BY_ID[bid]
    return Diagnosis(id=bid, confidence=0.99, groups=groups, title=b.title, evidence=evidence,
                     fix=in_user_names(b.fix_in("layers"), nm), exact=True)


def in_user_names(fix: str, nm: Names) -> str:
    """A layer fix (written in the layer API's names and its x @ Wx orientation) for a style
    with names of its own: a first line says which of the user's arrays each name it uses
    is (`dWh` is your `dWaa`); the code stays the API's, whose orientation it assumes."""
    pairs: list[tuple[str, str]] = []
    for g in nm.grads:
        mine = nm.grad(g).rpartition(".")[2]
        if g.startswith("d") and not mine.startswith("d"):  # a gradient kept under the
            mine = f"gradient of {mine}"                     # parameter's name (dlfs2)
        # the gradient, and the parameter it belongs to (dWh is dWaa: Wh is Waa)
        both = g.startswith("d") and mine.startswith("d") and mine[1:].isidentifier()
        for api, theirs in ((g, mine), (g[1:], mine[1:])) if both else ((g, mine),):
            if api != theirs and re.search(rf"\b{re.escape(api)}\b", fix) \
                    and (api, theirs) not in pairs:
                pairs.append((api, theirs))
    if not pairs:
        return fix
    return ("# in the layer API's names: "
            + ", ".join(f"{g} is your {mine}" for g, mine in pairs) + "\n" + fix)


def _layer_diag(bid: str, conf: float, groups: list[str] | str, evidence: str,
                fix: str | None = None, **names: str) -> Diagnosis:
    """A diagnosis whose title and fix name the user's functions (``names``, or the unit)."""
    b = catalogue.BY_ID[bid]
    if isinstance(groups, str):
        names.setdefault("unit", groups)
        groups = [groups]
    return Diagnosis(id=bid, confidence=conf, groups=groups, title=b.title_in("layers", **names),
                     evidence=evidence, fix=fix or b.fix_in("layers", **names))


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
