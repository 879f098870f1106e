"""Gradescope autograder results.json: a test per check with score, max_score, status,
visibility and Markdown output; points from the assignment spec (default 1 per check)."""
from __future__ import annotations

import json

from bpttcheck.result import Report


def _points(points: dict[str, float], check: str) -> float:
    """Points of a check: its own name, then its family ("grad.*"), then "default", then 1."""
    family = check.split(".", 1)[0] + ".*"
    return float(points.get(check, points.get(family, points.get("default", 1.0))))


def _informational(check: str) -> bool:
    parts = check.split(".")
    return len(parts) == 2 and parts[0] == "fd" and parts[1] != "all"


def score(r: Report, points: dict[str, float] | None = None) -> tuple[float, float]:
    """(score, max score) of a run: what results.json and `grade`'s CSV both report."""
    tests = _tests(r, points or {}, "visible")
    return sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)


def _tests(r: Report, points: dict[str, float], visibility: str) -> list[dict]:
    tests = []
    if r.error:
        total = sum(points.values()) or 1.0
        e = r.error
        tests.append({"name": "bpttcheck: run your code", "score": 0.0, "max_score": total,
                      "status": "failed", "visibility": visibility, "output_format": "md",
                      "output": f"**{e.kind}**: {e.message}"
                                + (f"\n\nat `{e.line}`" if e.line else "")
                                + (f"\n\n```\n{e.output[-3000:]}\n```" if e.output.strip() else "")})
    for i, c in enumerate(r.checks, 1):
        if c.status == "skip":
            continue
        # a per-group finite-difference check runs on small or failing models only: scoring it
        # would change the maximum with the result, so it is shown but carries no points
        p = 0.0 if _informational(c.name) else _points(points, c.name)
        tests.append({"name": c.name, "number": str(i), "score": p if c.status == "pass" else 0.0,
                      "max_score": p, "status": "passed" if c.status == "pass" else "failed",
                      "visibility": visibility, "output_format": "md", "output": c.message})
    return tests


def render(r: Report, points: dict[str, float] | None = None, visibility: str = "visible") -> str:
    tests = _tests(r, points or {}, visibility)
    lines = [f"**bpttcheck verdict: {r.verdict}**"
             + (f" ({r.arch}, {r.dtype})" if r.arch and r.dtype else "")]
    for d in r.diagnoses[:3]:
        lines.append(f"\n### `{d.id}` — {d.title} (confidence {d.confidence:.2f})\n\n{d.evidence}"
                     f"\n\nFix:\n\n```\n{d.fix}\n```")
    for n in r.notes:
        lines.append(f"\n*note {n.id}*: {n.title}. {n.evidence}")
    out = {"score": sum(t["score"] for t in tests),
           "execution_time": round(r.timings.get("total", 0.0), 3),
           "output": "\n".join(lines), "output_format": "md", "visibility": visibility,
           "stdout_visibility": "hidden", "tests": tests}
    return json.dumps(out, indent=2) + "\n"
