"""Gates of a stacked matrix in the wrong rows (`layout.gate-order`), said in the student's
terms: which rows of their W their forward takes each gate from, which rows their backward
writes its gradient to, and which slices to swap. Three orders meet here: the declared one
(spec or BPTTCHECK), the forward's (the one the loss matches) and the backward's (the block
permutation under which the gradients equal the reference's)."""
from __future__ import annotations

import itertools

from bpttcheck.check.matching import Matcher, diag, same_values
from bpttcheck.layout import GATE_WORDS, block_slice
from bpttcheck.result import Diagnosis


def backward_order(m: Matcher) -> str | None:
    """The order in which the user's backward writes the gates' gradients into the stacked
    rows, when a permutation of the gate blocks makes every failing group equal the
    reference and the groups outside the stack pass; None when no permutation does (or
    nothing fails, or the loss itself is wrong)."""
    lay, o = m.o.layout, m.o
    forward = lay.stacked
    if not forward or not m.failing or m.loss_bad:
        return None
    blocks = {k for g in forward for k in (f"W{g}", f"b{g}") if k in m.names}
    if not set(m.failing) <= blocks:
        return None
    for perm in itertools.permutations(forward):
        written = "".join(perm)  # rows of gate forward[j] hold the gradient of written[j]
        if written == forward:
            continue
        if all(same_values(o.grads[f"{p}{g}"], o.ref.grads[f"{p}{w}"], m.rtol)[0]
               for g, w in zip(forward, written, strict=True) for p in "Wb"
               if f"{p}{g}" in m.names):
            return written
    return None


def _rows(order: str, gate: str, H: int) -> str:
    j = order.index(gate)
    return f"{j * H}:{(j + 1) * H}"


def _slices(order: str) -> str:
    """The forward's slicing of the stacked pre-activation in ``order``, H symbolic."""
    return "; ".join(f"{g} = {'np.tanh' if g in 'gn' else 'sigmoid'}"
                     f"(a[{block_slice(j, len(order))}])" for j, g in enumerate(order))


def diagnosis(m: Matcher, declared: str | None) -> Diagnosis | None:
    """The gate-order diagnosis: the forward against the declared order (``declared``, when
    the loss matched only another one), the backward against the forward's rows (or the
    declared ones). None when neither is out of place."""
    lay, o = m.o.layout, m.o
    forward = lay.stacked
    if not forward:
        return None
    written = backward_order(m)
    if declared is None and written is None:
        return None
    H = o.case.dims.H
    W, b = lay.stacked_names
    axis = "columns" if lay.transposed else "rows"
    target = declared or forward
    facts, steps = [], []
    if declared:
        moved = [g for g in forward if forward.index(g) != declared.index(g)]
        facts.append(f"your loss equals the reference's ({o.loss:.10g}) only when {W} is read in "
                     f"gate order {forward!r}, not the declared {declared!r}: your forward takes "
                     + ", ".join(f"the {GATE_WORDS[g]} from {axis} {_rows(forward, g, H)}"
                                 f" (the declared order has it in {axis} "
                                 f"{_rows(declared, g, H)})" for g in moved))
        a = f"v @ {W} + {b}" if lay.transposed else f"{W} @ v + {b}"
        steps.append(f"in your forward, slice the gates out of a = {a} in the "
                     f"declared order {declared!r}:\n    {_slices(declared)}")
    # what the backward writes: a permutation found, else the forward's rows when every
    # gradient matched, else unknown (another bug: the planted search names it)
    back = written or (None if m.failing else forward)
    moved_back = [g for g in target if back and back.index(g) != target.index(g)]
    if back and moved_back:
        where = "the declared order has it in" if declared else \
            "your forward takes the gate from"
        facts.append(f"your backward writes into d{W} and d{b} "
                     + ", ".join(f"the {GATE_WORDS[g]}'s gradient at {axis} "
                                 f"{_rows(back, g, H)} ({where} {axis} {_rows(target, g, H)})"
                                 for g in moved_back))
        home = "the declared order puts it in" if declared else \
            "your forward takes the gate from"
        moves = "\n".join(f"    the {GATE_WORDS[g]}'s: {axis} {_rows(back, g, H)} -> "
                          f"{_rows(target, g, H)}" for g in moved_back)
        steps.append(f"in your backward, write each gate's gradient into the {axis} of d{W} "
                     f"and d{b} {home}:\n{moves}\n    e.g. da = np.concatenate("
                     f"[{', '.join('d' + g for g in target)}])  # the order {target!r}")
    elif declared and back:
        facts.append("your backward writes each gradient where your forward took the gate "
                     "from, so finite differences agree with it")
    fix = "\n".join(steps)
    if declared:
        fix += (f"\nIf {forward!r} is the order the assignment means, the declaration is what "
                f"is wrong: [layout] gate_order = \"{forward}\" in the spec (or BPTTCHECK).")
    out_of_place = {g for g in target if forward.index(g) != target.index(g)}
    out_of_place |= set(moved_back)
    groups = [k for g in target if g in out_of_place for k in (f"W{g}", f"b{g}")
              if k in m.names]
    return diag("layout.gate-order", 0.97, groups, "; ".join(facts) + ".", exact=True,
                fix=fix)
