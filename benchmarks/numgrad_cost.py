"""The cost of `[assignment] forbid_numerical_gradients = true` (check/numgrad.py): wall time of
`bpttcheck run` on a passing Karpathy-size model (reference/python/rnn_karpathy.py: H=100,
X=Y=65, T=25) with the key off and on, median of N runs, and the time the check itself took
(report timings). Run: python benchmarks/numgrad_cost.py [N]"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = ROOT / "reference" / "python" / "rnn_karpathy.py"


def run(spec: str | None) -> tuple[float, float, int]:
    cmd = [sys.executable, "-m", "bpttcheck", "run", str(SUBJECT), "--json", "-"]
    if spec:
        cmd += ["--spec", spec]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=SUBJECT.parent, check=False)
    wall = time.perf_counter() - t
    r = json.loads(out.stdout)
    assert r["verdict"] == "pass", r["verdict"]
    check = [c for c in r["checks"] if c["name"] == "behaviour.numerical-gradients"]
    return wall, (check[0]["seconds"] if check else 0.0), r["evaluations"]


def main(n: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write("[assignment]\nforbid_numerical_gradients = true\n")
    print(f"| key | calls | wall s (median of {n}) | the check's own s (median) |")
    print("| --- | --- | --- | --- |")
    for label, spec in (("off", None), ("on", f.name)):
        runs = [run(spec) for _ in range(n)]
        print(f"| {label} | {runs[0][2]} | {statistics.median(r[0] for r in runs):.3f} | "
              f"{statistics.median(r[1] for r in runs):.4f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
