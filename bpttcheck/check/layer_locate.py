"""Pointing at the line inside a failing layer unit (``rnn_step_backward`` and friends).

The reference units (oracle/layers.py) are plain functions written the way the user writes
theirs, so their intermediate quantities are taken the same way as the user's: by running
them under the tracer (sandbox/tracer.py runs any function; here it runs our own code, in
the checker) at the unit's case, correct and with the diagnosed bug planted. The returned
gradients (and, for a sequence, each step's share of them) are quantities too. The first
record of the user's unit that leaves that path is located as for sequence code (locate.py),
and the reference's own line for the quantity is what it should compute."""
from __future__ import annotations

import linecache
import re

import numpy as np

from bpttcheck.check import catalogue
from bpttcheck.check.layers import LayerFindings, UnitRun, reference, rounded
from bpttcheck.check.locate import (
    Bank,
    Rec,
    earlier_steps,
    first_divergence,
    group_lines,
    overwritten,
    shown_path,
    source_line,
    value_checked,
    written_at,
)
from bpttcheck.check.numerics import MATCH_SLACK, compare
from bpttcheck.errors import UserCodeError
from bpttcheck.layer_api import BLOCKS, STEP_OF
from bpttcheck.oracle import layers as ref_layers
from bpttcheck.result import Diagnosis, Location


def locate_layers(w, f: LayerFindings, ds: list[Diagnosis]) -> None:
    """Give the top diagnosis of a failing unit the line of the user's unit where it goes
    wrong. A trace that fails leaves the diagnosis without a line (the line is extra
    evidence: the diagnosis stands without it)."""
    try:
        _locate(w, f, ds)
    except (UserCodeError, ValueError, KeyError, IndexError, TypeError):
        return


def _locate(w, f: LayerFindings, ds: list[Diagnosis]) -> None:
    top = next((d for d in ds if d.groups and "." in d.groups[0]), None)
    if top is None:
        return
    run = f.runs.get(top.groups[0].partition(".")[0])
    if run is None or not run.failed:
        return
    c = rounded(run.case, run.dtype)
    bug = _mutant(run, top.id)
    good, good_src = _reference_quantities(run, c, frozenset())
    bad = _reference_quantities(run, c, frozenset({bug}))[0] if bug else None
    try:
        names, values, _ = w.layer_trace(run.unit.name, run.case.args, run.case.ups)
    except UserCodeError:
        return
    recs = [Rec(fl, ln, n, s, v) for (fl, ln, n, s), v in zip(names, values, strict=True)]
    # the bug lives in one function: the step's backward for a step's bug (a sequence
    # function inherits it), else the sequence function's own
    step = STEP_OF.get(run.unit.name)
    owner = run.unit.name
    if step and (bug is None or bug in catalogue.unit_mutants(step)) and step in f.runs \
            and f.runs[step].failed:
        owner = step
    recs = _inside(recs, f.of(owner).backward) or recs
    rtol = max(run.rtol * MATCH_SLACK, 1e-7)
    good_bank = Bank(good, rtol)
    found: tuple[Rec, tuple | None] | None
    if top.id == "grad.overwrite-not-accumulate":
        groups = {g.partition(".")[2].removeprefix("d") for g in top.groups}
        found = overwritten(recs, good_bank, groups)
    else:
        found = first_divergence(recs, good_bank, Bank(bad, rtol) if bad else None)
    if found is None:
        return
    r, lab = found
    src = source_line(r.file, r.line)
    differs = None
    if lab is not None and np.shape(good.get(lab)) == r.value.shape:
        differs = float(np.max(np.abs(r.value - good[lab])))
    if top.id == "grad.overwrite-not-accumulate" and lab is not None:
        top.location = Location(
            file=shown_path(r.file), line=r.line, step=r.step, name=r.name, source=src,
            quantity=f"{_what(lab)} alone, where the sum over the steps belongs",
            expected=f"d{lab[0].partition(':')[2]} += each step's share (+=, not =)")
    else:
        top.location = Location(
            file=shown_path(r.file), line=r.line, step=r.step, name=r.name, source=src,
            quantity=_what(lab) if lab else None,
            expected=_assigned(lab, good, good_src) if lab else None, differs_by=differs)
    top.location._key = lab[0].split("#")[0] if lab else ""
    if top.id != "grad.overwrite-not-accumulate" and len(group_lines(recs, r)) == 1:
        top.location._rewrites = value_checked(
            *written_at(recs, r, lab), good_bank, 0, lambda where, statements: w.layer_line_values(
                run.unit.name, run.case.args, run.case.ups, where, statements),
            earlier_steps(recs, r))


def _assigned(lab: tuple, good: dict, src: dict) -> str | None:
    """The reference's line for a quantity; for one it passes to a function (recorded at the
    call), the line that computes the same value (``up = dh[:, t] + dprev``) if there is one."""
    line = src.get(lab)
    if line is None or not re.search(r"\w\(", line.split("=", 1)[-1]):
        return line
    v = np.asarray(good[lab])
    for other, text in src.items():
        if other != lab and other[1] == lab[1] and text.startswith(f"{other[0]} = ") \
                and np.shape(good[other]) == v.shape and np.array_equal(good[other], v):
            return text
    return line


def _what(lab: tuple) -> str:
    name, t = lab
    kind, _, rest = name.partition(":")
    at = f" at t = {t}" if t is not None and t >= 0 else ""
    if kind == "contrib":
        return f"step {t}'s share of d{rest}"
    if kind == "sum":
        return f"d{rest} summed over the steps from T-1 down to {t}"
    return name.split("#")[0].replace("[", " block ").rstrip("]") + at


def _inside(recs: list[Rec], function: str) -> list[Rec]:
    """The records whose line lies in the user's function ``function`` (``rnn_backward``, or
    a method as ``TimeRNN.backward``)."""
    out: list[Rec] = []
    spans: dict[str, list[tuple[int, int]]] = {}
    for r in recs:
        if r.file not in spans:
            spans[r.file] = _spans(r.file, function)
        if any(a <= r.line <= b for a, b in spans[r.file]):
            out.append(r)
    return out


def _spans(file: str, function: str) -> list[tuple[int, int]]:
    import ast
    try:
        tree = ast.parse("".join(linecache.getlines(file)))
    except (SyntaxError, ValueError):
        return []
    cls, _, name = function.rpartition(".")
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls] \
        if cls else [tree]
    return [(n.lineno, n.end_lineno or n.lineno) for sc in scopes for n in ast.walk(sc)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]


def _mutant(run: UnitRun, bid: str) -> str | None:
    """The planted bug (with its variant) that reproduces the user's gradients, if any."""
    c, tol = rounded(run.case, run.dtype), run.rtol * MATCH_SLACK
    for bug in catalogue.unit_mutants(run.unit.name):
        if bug.split(":")[0] != bid:
            continue
        _, mg = reference(run.unit, c, frozenset({bug}))
        if all(g.shape == m.shape and compare(g, m, tol).passed
               for g, m in zip(run.grads, mg, strict=False)):
            return bug
    return None


def _reference_quantities(run: UnitRun, c, bugs: frozenset[str]):
    """({(name, step): value}, {(name, step): the reference's line}) of the reference unit
    at case ``c``: every array its lines assign, its returned gradients, and for a sequence
    each step's share of them."""
    from bpttcheck.sandbox.tracer import run_traced
    here = ref_layers.__file__
    contrib: dict = {}
    (_, grads), rec = run_traced(lambda: reference(run.unit, c, bugs, contrib),
                                    lambda fn: fn == here, lambda fn: fn)
    q: dict = {}
    src: dict = {}
    seen: dict[tuple, int] = {}
    for x in rec.records:
        k = seen.get((x.name, x.step), 0)
        seen[(x.name, x.step)] = k + 1
        lab = (x.name if k == 0 else f"{x.name}#{k}", x.step)
        q[lab] = x.value
        src[lab] = _plain(linecache.getline(here, x.line).strip().split("  #")[0])
    for name, g in zip(run.unit.inputs, grads, strict=False):
        q[(f"d{name}", None)] = np.asarray(g, dtype=np.float64)
        src[(f"d{name}", None)] = f"the gradient d{name} the unit returns"
    for dname, per_step in contrib.items():  # a sequence: each step's share, and the sums
        name = dname.removeprefix("d")
        total = np.zeros_like(np.asarray(per_step[0], dtype=np.float64))
        for t in reversed(range(len(per_step))):
            v = np.asarray(per_step[t], dtype=np.float64)
            total = total + v
            q[(f"contrib:{name}", t)], q[(f"sum:{name}", t)] = v, total
            src[(f"contrib:{name}", t)] = f"step {t}'s share of d{name}"
            src[(f"sum:{name}", t)] = f"d{name} += each step's share, from T-1 down to {t}"
    nb = BLOCKS.get(run.unit.family, 1)
    for lab, v in list(q.items()):  # a stacked gate array's blocks (i, f, o, g), one by one
        if nb > 1 and v.ndim >= 1 and v.shape[-1] % nb == 0 and v.shape[-1] // nb > 1 \
                and lab[0].startswith(("d", "a")):
            h = v.shape[-1] // nb
            for k in range(nb):
                blk = (f"{lab[0]}[{_GATES[run.unit.family][k]}]", lab[1])
                q[blk] = v[..., k * h:(k + 1) * h]
                src[blk] = f"the {_GATES[run.unit.family][k]} block of {src.get(lab, lab[0])}"
    return q, src


_GATES = {"lstm": "ifog", "gru": "zrn"}


_SWITCH = re.compile(r"(\([^()]*?|[\w.]+(?:\[[^\[\]]*\])* ?)if has\(bugs, \"[^\"]*\"\)"
                     r"(?: is not None| is None)? else ")


def _plain(line: str) -> str:
    """A reference line as the correct code reads, its bug switches taken out:
    ``dz = dnext_h if has(bugs, "...") is not None else dnext_h * (1 - h**2)`` ->
    ``dz = dnext_h * (1 - h**2)``."""
    out = _SWITCH.sub(lambda m: "(" if m.group(1).startswith("(") else "", line)
    return out if "has(bugs" not in out else line
