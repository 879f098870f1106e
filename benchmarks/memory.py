#!/usr/bin/env python3
"""Peak memory of the checker on a passing LSTM check at H = 512 (issue 16).

    python benchmarks/memory.py [--reps 3]

Runs, in a fresh process each time, the engine on benchmarks/subjects/functional/lstm_fn.py at
T=25, X=Y=65, H=512 and reports the checker's own peak RSS (getrusage(RUSAGE_SELF); the worker
is a separate process, reported beside it) and the wall time. Median of --reps runs."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUBJECT = HERE / "subjects" / "functional" / "lstm_fn.py"
PROBE = """
import json, resource, sys, time
from bpttcheck.settings import settings
from bpttcheck.check import engine
s = settings(sys.argv[2])
t = time.perf_counter()
r = engine.check(sys.argv[1], s.opts)
print(json.dumps({"verdict": r.verdict, "seconds": time.perf_counter() - t,
                  "checker_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "h512.toml"
        spec.write_text("[sizes]\nT = 25\nX = 65\nH = 512\nY = 65\n\n[limits]\ntimeout = 120\n")
        runs = []
        for _ in range(args.reps):
            out = subprocess.run([sys.executable, "-c", PROBE, str(SUBJECT), str(spec)],
                                 capture_output=True, text=True, check=True,
                                 cwd=SUBJECT.parent)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "checker_mib",
                                                              "worker_mib")}
    print(f"| LSTM H=512, T=25, X=Y=65 | {runs[0]['verdict']} | {med['checker_mib']:.0f} MiB | "
          f"{med['worker_mib']:.0f} MiB | {med['seconds']:.2f} s |")


if __name__ == "__main__":
    main()
