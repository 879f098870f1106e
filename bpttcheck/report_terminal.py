"""The terminal summary: verdict, one row per parameter group, the top diagnoses."""
from __future__ import annotations

from bpttcheck.formatting import printable
from bpttcheck.result import Report

MARK = {"pass": "ok  ", "fail": "FAIL", "skip": "skip", "warn": "WARN", "not-run": "----"}


def render(r: Report, verbose: bool = False) -> str:
    out: list[str] = [r.title] if r.title else []  # the assignment's (spec [assignment] title)
    head = f"bpttcheck {r.path}"
    if r.arch:
        head += f"  [{r.arch}, {r.style} style"
        if r.sizes:
            head += ", " + " ".join(f"{k}={v}" for k, v in r.sizes.items())
        if r.dtype:
            head += f", {r.dtype}"
        head += "]"
    out.append(head)
    if r.error:
        e = r.error
        out.append(f"\nERROR ({e.kind}): {e.message}")
        if e.line:
            out.append(f"  at {e.line}")
        if e.output.strip():
            out.append("  " + e.output.strip().replace("\n", "\n  "))
        out += _stopped(r)
        return printable("\n".join(out) + "\n")
    if r.loss:
        out.append(f"loss: yours {r.loss['user']:.10g}, reference {r.loss['reference']:.10g}"
                   f" ({r.reduction} over time)")
    if r.groups:
        width = max(8, *(len(_label(g)) for g in r.groups))
        has_joint = any(c.name == "fd.all" for c in r.checks)
        out.append("")
        out.append(f"  {'group':<{width}} {'':4} {'max abs err':>11} {'max rel err':>11} "
                   f"{'abs bound':>9}  worst entry (yours vs reference)   finite diff")
        for g in r.groups:
            idx = "[" + ",".join(map(str, g.worst_index)) + "]"
            fd = ("see fd.all" if has_joint else "-") if g.fd is None else \
                f"{g.fd.status} ({g.fd.error:.1e})"
            out.append(f"  {_label(g):<{width}} {MARK[g.status]} {g.max_abs_error:11.2e} "
                       f"{g.max_rel_error:11.2e} {g.tolerance:9.1e}  "
                       f"{idx:<7} {g.worst_user:>11.5g} vs {g.worst_ref:<11.5g} {fd}")
    others = [c for c in r.checks if c.name == "fd.all" or not c.name.startswith(("grad.", "fd."))]
    bad = [c for c in others if c.status in ("fail", "warn") or verbose]
    if bad:
        out.append("")
        for c in bad:
            out.append(f"  {MARK[c.status]} {c.name}: {c.message}")
    # groups in the user's names, as the table shows them
    shown = {g.name: _label(g, bare=True) for g in r.groups}
    # a warning is shown like a diagnosis (evidence and fix); it does not fail the run
    for head, d in [("DIAGNOSIS", d) for d in r.diagnoses[:3]] + [("WARNING", d) for d in r.warnings]:
        groups = ", ".join(shown.get(g, g) for g in d.groups) or "-"
        out.append("")
        out.append(f"{head} {d.id} (confidence {d.confidence:.2f}; {groups}): "
                   f"{d.title}")
        if d.evidence:  # an assignment may withhold evidence or fix (feedback.py)
            out.append("  evidence: " + d.evidence)
        if d.location:
            out.append("  where: " + d.location.text())
        if d.fix:
            out.append("  fix:\n    " + d.fix.replace("\n", "\n    "))
    if r.withheld and (r.diagnoses or r.warnings):  # so the student knows it is on purpose
        out.append(f"  (not shown for this assignment: {' and '.join(r.withheld)})")
    if r.groups:
        out.append("\n  (an entry passes when |yours - ref| <= its bound; 'abs bound' is the bound "
                   "at the worst entry)")
    for n in r.notes:
        out.append(f"\nnote {n.id}: {n.title}. {n.evidence}")
    if r.parts:
        out.append("\n" + "; ".join(f"{k}: {v.upper()}" for k, v in r.parts.items()))
    n_fail = sum(c.status == "fail" for c in r.checks)
    out.append("")
    n_warn = sum(c.status == "warn" for c in r.checks)
    warned = f" ({n_warn} with a warning)" if n_warn else ""
    out.append(f"{r.verdict.upper()}: {len(r.checks) - n_fail} of {len(r.checks)} checks passed"
               f"{warned}; "
               f"{r.evaluations} calls of your code in {r.timings.get('total', 0):.2f} s"
               f" ({_case(r)}, tolerances: {_tols(r)})")
    # user strings (the path, messages, printed output) go to a terminal: no control characters
    return printable("\n".join(out) + "\n")


def _stopped(r: Report) -> list[str]:
    """After an error that stopped a check part-way: what ran before it, and what did not."""
    if not r.checks:
        return []
    by = {s: [c.name for c in r.checks if c.status == s] for s in ("pass", "fail", "not-run")}
    done = len(r.checks) - len(by["not-run"])
    lines = [f"\nThe check stopped part-way: {done} of {len(r.checks)} checks ran before the "
             f"error ({len(by['pass'])} passed" + (f", {len(by['fail'])} failed: "
                                                    f"{', '.join(by['fail'])}" if by["fail"]
                                                    else "") + ")."]
    if by["not-run"]:
        lines.append(f"  not run: {', '.join(by['not-run'])}")
    return lines


def _case(r: Report) -> str:
    return f"seed {r.seed}" if r.seed is not None else f"hidden case {r.case_tag}"


def _label(g, bare: bool = False) -> str:
    """A group's row label: the user's name (GroupResult.user_name, from Layout.group_name)
    after the canonical one, ``bare``: the user's alone."""
    if "." in g.name:  # layer units: a style's own qualified names, else the layer API's
        return g.user_name if "." in g.user_name else g.name
    if g.user_name == g.name or bare:
        return g.user_name
    return f"{g.name}={g.user_name}"


def _tols(r: Report) -> str:
    return ", ".join(f"{k} {v:.1e}" for k, v in r.tolerances.items())
