"""Gradescope autograder results.json: a test per check with score, max_score, status,
visibility and Markdown output; points from the assignment spec (default 1 per check), out of
the same maximum for every submission (bpttcheck/scoring.py).

Gradescope shows a student only results.json's ``output`` and each test's ``output`` (files
beside results.json are not shown): the top-level output is the whole terminal report, under
a headline that says the verdict and, for code that could not be run, why."""
from __future__ import annotations

import json
import re

from bpttcheck import report_terminal, scoring
from bpttcheck.result import Diagnosis, Report


def score(r: Report, points: dict[str, float] | None = None, arch: str | None = None,
          style: str | None = None) -> tuple[float, float]:
    """(score, max score) of a run: what results.json and `grade`'s CSV both report."""
    return scoring.score(r, points, arch, style)


def _tests(r: Report, points: dict[str, float], visibility: str, arch: str | None,
           style: str | None) -> list[dict]:
    """A test per scored check (its points from the score card, the ones that did not run
    included), per unscored check that ran and failed or passed (0 points), and, when the code
    could not be run to the end, a 0-point test first that says why."""
    tests = []
    card = scoring.scorecard(r, points, arch, style)
    if r.error:
        e = r.error
        tests.append({"name": "bpttcheck: run your code", "score": 0.0, "max_score": 0.0,
                      "status": "failed", "visibility": visibility, "output_format": "md",
                      "output": f"**{e.kind}**: {e.message}"
                                + (f"\n\nat `{e.line}`" if e.line else "")
                                + _stopped(r)
                                + (f"\n\n```\n{e.output[-3000:]}\n```" if e.output.strip() else "")})
    worth = {c.name: c for c in card.checks}
    for i, c in enumerate(r.checks, 1):
        sc = worth.pop(c.name, None)
        p = sc.possible if sc else 0.0
        if c.status == "skip" and not p:
            continue
        ok = c.status != "fail"  # a skipped scored check does not apply here: its points count
        # a warned check keeps its points; its output says what to fix
        warning = "".join(f"\n\n**warning `{d.id}`**: {d.title}." + _body(d)
                          for d in r.warnings) if c.status == "warn" else ""
        tests.append({"name": c.name, "number": str(i), "score": sc.earned if sc else 0.0,
                      "max_score": p, "status": "passed" if ok else "failed",
                      "visibility": visibility, "output_format": "md",
                      "output": c.message + (" (skipped: does not apply, points given)"
                                             if c.status == "skip" else "") + warning})
    for sc in worth.values():  # scored, but not among the checks that ran
        ok = sc.status != "not-run"
        tests.append({"name": sc.name, "score": sc.earned, "max_score": sc.possible,
                      "status": "passed" if ok else "failed",
                      "visibility": visibility, "output_format": "md",
                      "output": "passed: your gate order is the declared one" if ok else
                      "not run on your code" + (" (it stopped first: see the error)"
                                                if r.error else " (see the notes)")})
    return tests


def _body(d: Diagnosis) -> str:
    """A diagnosis's or warning's evidence and fix, as far as the assignment shows them
    (feedback.py empties what it withholds)."""
    return ((f" {d.evidence}" if d.evidence else "")
            + (f"\n\nFix:\n\n{_fenced(d.fix)}" if d.fix else ""))


def _fenced(text: str) -> str:
    """A Markdown code block that ``text`` cannot close early: the fence is longer than any
    run of backticks inside it (the report quotes the student's own lines and output)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def headline(r: Report, score: float, max_score: float) -> str:
    """The first thing the student reads: the verdict and the score, or why the code could
    not be run and where."""
    what = f" ({r.arch}, {r.dtype})" if r.arch and r.dtype else ""
    points = f"; score {score:g} of {max_score:g}" if max_score else ""
    if r.error:
        e = r.error
        where = f" (at `{e.line.strip()}`)" if e.line and e.line.strip() else ""
        return (f"**bpttcheck verdict: error**{points}. Your code could not be run "
                f"({e.kind}): {e.message}{where}")
    n_fail = sum(c.status == "fail" for c in r.checks)
    return (f"**bpttcheck verdict: {r.verdict}**{what}{points}: "
            f"{len(r.checks) - n_fail} of {len(r.checks)} checks passed")


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
    maximum score also when the code failed before its architecture was known. ``visibility``
    (spec [feedback]) is Gradescope's, for the whole result and for every test."""
    tests = _tests(r, points or {}, visibility, arch, style)
    score = sum(t["score"] for t in tests)
    total = sum(t["max_score"] for t in tests)
    lines = ([f"## {r.title}", ""] if r.title else []) + [headline(r, score, total), ""]
    lines.append(_fenced(report_terminal.render(r)))
    out = {"score": score,
           "execution_time": round(r.timings.get("total", 0.0), 3),
           "output": "\n".join(lines), "output_format": "md", "visibility": visibility,
           "stdout_visibility": "hidden", "tests": tests}
    return json.dumps(out, indent=2) + "\n"
