"""Gradescope autograder results.json: a test per check with score, max_score, status,
visibility and Markdown output; points from the assignment spec (default 1 per check), out of
the same maximum for every submission (bpttcheck/scoring.py)."""
from __future__ import annotations

import json

from bpttcheck import scoring
from bpttcheck.result import Report


def score(r: Report, points: dict[str, float] | None = None, arch: str | None = None,
          style: str | None = None) -> tuple[float, float]:
    """(score, max score) of a run: what results.json and `grade`'s CSV both report."""
    return scoring.score(r, points, arch, style)


def _tests(r: Report, points: dict[str, float], visibility: str, arch: str | None,
           style: str | None) -> list[dict]:
    tests = []
    if r.error:
        e = r.error
        total = scoring.max_score(points, scoring.assignment_arch(r, arch), style or r.style)
        tests.append({"name": "bpttcheck: run your code", "score": 0.0, "max_score": total,
                      "status": "failed", "visibility": visibility, "output_format": "md",
                      "output": f"**{e.kind}**: {e.message}"
                                + (f"\n\nat `{e.line}`" if e.line else "")
                                + _stopped(r)
                                + (f"\n\n```\n{e.output[-3000:]}\n```" if e.output.strip() else "")})
        return tests
    # a per-group finite-difference check runs on small or failing models only: scoring it
    # would change the maximum with the result, so it is shown but carries no points
    worth = scoring.check_points(r, points, arch, style)
    for i, c in enumerate(r.checks, 1):
        p = worth[c.name]
        if c.status == "skip" and not p:
            continue
        ok = c.status != "fail"  # a skipped scored check does not apply here: its points count
        # a warned check keeps its points; its output says what to fix
        warning = "".join(f"\n\n**warning `{d.id}`**: {d.title}. {d.evidence}\n\nFix:\n\n"
                          f"```\n{d.fix}\n```" for d in r.warnings) if c.status == "warn" else ""
        tests.append({"name": c.name, "number": str(i), "score": p if ok else 0.0,
                      "max_score": p, "status": "passed" if ok else "failed",
                      "visibility": visibility, "output_format": "md",
                      "output": c.message + (" (skipped: does not apply, points given)"
                                             if c.status == "skip" else "") + warning})
    a = scoring.assignment_arch(r, arch)
    ran = {c.name for c in r.checks}
    for name in scoring.scored_checks(a, style or r.style) if a else ():
        if name not in ran:  # scored, but the check could not run on this code
            p = scoring.points_of(points, name)
            tests.append({"name": name, "score": 0.0, "max_score": p, "status": "failed",
                          "visibility": visibility, "output_format": "md",
                          "output": "not run on your code (see the notes)"})
    return tests


def _stopped(r: Report) -> str:
    """After an error that stopped a check part-way: which checks ran, which did not."""
    if not r.checks:
        return ""
    ran = [f"`{c.name}` {c.status}" for c in r.checks if c.status != "not-run"]
    missing = [f"`{c.name}`" for c in r.checks if c.status == "not-run"]
    return (f"\n\nThe check stopped part-way. Ran before the error: {', '.join(ran)}."
            + (f" Not run: {', '.join(missing)}." if missing else ""))


def render(r: Report, points: dict[str, float] | None = None, visibility: str = "visible",
           arch: str | None = None, style: str | None = None) -> str:
    """results.json; arch and style are the assignment's (spec or flags), which fix the
    maximum score also when the code failed before its architecture was known."""
    tests = _tests(r, points or {}, visibility, arch, style)
    lines = [f"**bpttcheck verdict: {r.verdict}**"
             + (f" ({r.arch}, {r.dtype})" if r.arch and r.dtype else "")]
    for d in r.diagnoses[:3]:
        lines.append(f"\n### `{d.id}` — {d.title} (confidence {d.confidence:.2f})\n\n{d.evidence}"
                     f"\n\nFix:\n\n```\n{d.fix}\n```")
    for d in r.warnings:
        lines.append(f"\n### warning `{d.id}` — {d.title}\n\n{d.evidence}"
                     f"\n\nFix:\n\n```\n{d.fix}\n```")
    for n in r.notes:
        lines.append(f"\n*note {n.id}*: {n.title}. {n.evidence}")
    out = {"score": sum(t["score"] for t in tests),
           "execution_time": round(r.timings.get("total", 0.0), 3),
           "output": "\n".join(lines), "output_format": "md", "visibility": visibility,
           "stdout_visibility": "hidden", "tests": tests}
    return json.dumps(out, indent=2) + "\n"
