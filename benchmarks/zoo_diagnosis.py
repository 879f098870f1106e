#!/usr/bin/env python3
"""Diagnosis cost over the whole zoo at Karpathy size (issue 14, item 3).

    taskset -c 0 python benchmarks/zoo_diagnosis.py [--reps 3] [--only NAME...] [--out FILE]

Every file of reference/bugs/ (python, c, layers) is checked by `bpttcheck run FILE --spec
SPEC --json -` in a fresh process, where SPEC sets the Karpathy sizes T = 25, X = Y = 65,
H = 100 (the sizes of benchmarks/subjects/karpathy/T25.toml, the way bench.py scales its
subjects). Code whose sizes are fixed by the file itself (Karpathy globals, a C file's
#defines, the layer units' own batched case) is checked at its own sizes; the table says
which sizes were used. The row gives the median wall time of the whole process, the
`diagnosis` timing, the CPU time of the checker and its worker, the verdict and the top
diagnosis. Target: every failing check with its full diagnosis in <= 3 s on one core (the CPU
time is that, on a machine where other work shares the core).

Without --out the table is printed only; with it, the table is written there (a Markdown
fragment RESULTS.md quotes).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ZOO = REPO / "reference" / "bugs"
TARGET_SECONDS = 3.0
SPEC = "[sizes]\nT = 25\nX = 65\nH = 100\nY = 65\n"


def bpttcheck_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("bpttcheck")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bpttcheck"]


def zoo_files(only: list[str]) -> list[Path]:
    files = []
    for sub in ("python", "c", "layers"):
        files += sorted(p for p in (ZOO / sub).iterdir()
                        if p.suffix in (".py", ".c") and not p.name.startswith("_"))
    if only:
        files = [f for f in files if any(o in f.name for o in only)]
    return files


def cpu_of_children() -> float:
    """User + system CPU seconds of the waited-for children and their descendants (the
    checker and its worker, which the checker reaps)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(path: Path, spec: Path) -> dict:
    t, cpu = time.perf_counter(), cpu_of_children()
    p = subprocess.run([*bpttcheck_cmd(), "run", path.name, "--spec", str(spec), "--json", "-",
                        "--quiet"], cwd=path.parent, capture_output=True, text=True)
    wall = time.perf_counter() - t
    cpu = cpu_of_children() - cpu
    try:
        r = json.loads(p.stdout)
    except ValueError:
        return {"wall": wall, "cpu": cpu, "verdict": f"exit {p.returncode}",
                "top": p.stderr[-200:],
                "diagnosis": 0.0, "sizes": None, "calls": 0}
    top = r["diagnoses"][0]["id"] if r.get("diagnoses") else (
        f"error: {r['error']['kind']}" if r.get("error") else "-")
    return {"wall": wall, "cpu": cpu, "verdict": r["verdict"], "top": top,
            "diagnosis": r.get("timings", {}).get("diagnosis", 0.0), "sizes": r.get("sizes"),
            "calls": r.get("evaluations", 0), "timings": r.get("timings", {})}


def measure(path: Path, spec: Path, reps: int) -> dict:
    runs = [run_once(path, spec) for _ in range(reps)]
    first = runs[0]
    return {**first, "wall": statistics.median(r["wall"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs),
            "diagnosis": statistics.median(r["diagnosis"] for r in runs),
            "walls": [r["wall"] for r in runs],
            "stable": all((r["verdict"], r["top"]) == (first["verdict"], first["top"])
                          for r in runs)}


def sizes_text(s: dict | None) -> str:
    return "-" if not s else " ".join(f"{k}={v}" for k, v in s.items())


def table(rows: list[tuple[Path, dict]]) -> str:
    lines = ["| file | sizes | verdict | top diagnosis | calls | wall s (median) | "
             "CPU s (median) | `diagnosis` s | target (CPU) |", "|" + " --- |" * 9]
    for path, m in rows:
        failing = m["verdict"] == "fail"
        target = (("PASS" if m["cpu"] <= TARGET_SECONDS else "MISS") if failing else "n/a")
        lines.append(f"| `{path.parent.name}/{path.name}` | {sizes_text(m['sizes'])} | "
                     f"{m['verdict']} | {m['top']} | {m['calls']} | {m['wall']:.2f} | "
                     f"{m['cpu']:.2f} | {m['diagnosis']:.2f} | {target} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per file (median reported)")
    ap.add_argument("--only", nargs="*", default=[], help="files whose name contains these")
    ap.add_argument("--out", help="write the Markdown table here too")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "karpathy_size.toml"
        spec.write_text(SPEC)
        rows = []
        for f in zoo_files(args.only):
            m = measure(f, spec, args.reps)
            rows.append((f, m))
            print(f"{f.parent.name}/{f.name}: {m['verdict']} {m['top']} "
                  f"{m['wall']:.2f} s, CPU {m['cpu']:.2f} s (diagnosis {m['diagnosis']:.2f} s; runs "
                  f"{', '.join(f'{w:.2f}' for w in m['walls'])})"
                  + ("" if m["stable"] else " UNSTABLE") + f" {m.get('timings')}", flush=True)
    failing = [m for _, m in rows if m["verdict"] == "fail"]
    worst = max((m["wall"] for m in failing), default=0.0)
    worst_cpu = max((m["cpu"] for m in failing), default=0.0)
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    text = (table(rows) + f"\n\n{len(rows)} files, {len(failing)} failing; the slowest failing "
            f"check took {worst:.2f} s wall, {worst_cpu:.2f} s CPU (target <= "
            f"{TARGET_SECONDS:g} s on one core; on a machine shared with other work the CPU "
            f"time, checker and worker together, is what one idle core would take). Median of "
            f"{args.reps} runs, CPUs {affinity}, load average at the end "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.\n")
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
