#!/usr/bin/env python3
"""What printing costs a call of the user's code in the worker (issue 14, item 2).

    taskset -c 0 python benchmarks/print_flood.py [--calls 20]

The correct functional LSTM of reference/python/, with the first line of its loss function
printing about 450 KB in several ways, is loaded in a worker (sandbox/session.py) and called
on the default probe case; the table gives the median round trip of one call (checker ->
worker -> user code -> reply), next to the same prints in a plain process writing to a pipe
(the least they cost anywhere), and how many bytes the checker's drain saw.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LSTM = (HERE.parent / "reference" / "python" / "lstm_functional.py").read_text()
ENTRY = "def loss_and_grads(params, inputs, targets, state):\n"
FLOODS = {
    "no prints": "",
    "9000 x print(49 chars)": "    for _ in range(9000):\n        print('x' * 49)\n",
    "the same, flush=True": "    for _ in range(9000):\n        print('x' * 49, flush=True)\n",
    "the same, to stderr": "    import sys\n    for _ in range(9000):\n"
                           "        print('x' * 49, file=sys.stderr)\n",
    "100 x print(400x1 array)": "    for _ in range(100):\n        print(np.ones((400, 1)) / 3)\n",
}


def in_worker(path: str, calls: int) -> tuple[float, int]:
    from bpttcheck.check.cases import DEFAULT_DIMS, make_case
    from bpttcheck.layout import Layout
    from bpttcheck.plugins import architectures
    from bpttcheck.sandbox.limits import Limits
    from bpttcheck.sandbox.session import WorkerSession
    case = make_case(architectures()["lstm"], DEFAULT_DIMS, 0)
    with WorkerSession(path, Limits()) as w:
        layout = Layout.from_dict(w.load(None, {})["layouts"][0])
        w.call(case, layout)
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            w.call(case, layout)
            times.append(time.perf_counter() - t)
        return statistics.median(times), w.out.total + w.err.total


def plain(body: str, calls: int) -> float:
    """The prints alone, in a fresh process whose stdout and stderr are pipes."""
    code = ("import time, statistics, sys, numpy as np\n"
            "def f():\n" + (body or "    pass\n") +
            f"ts = []\nfor _ in range({calls}):\n    t = time.perf_counter(); f(); "
            "ts.append(time.perf_counter() - t)\n"
            "sys.__stdout__.flush()\nprint(statistics.median(ts), file=open(sys.argv[1], 'w'))\n")
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        subprocess.run([sys.executable, "-c", code, out.name], capture_output=True, check=True)
        return float(Path(out.name).read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args(argv)
    rows = ["| prints in each call | one call in the worker, ms (median) | the prints alone in a "
            "plain process, ms | bytes drained per call |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, body in FLOODS.items():
            path = Path(tmp) / "model.py"
            path.write_text(LSTM.replace(ENTRY, ENTRY + body, 1))
            t, drained = in_worker(str(path), args.calls)
            rows.append(f"| {label} | {1000 * t:.1f} | {1000 * plain(body, args.calls):.1f} | "
                        f"{drained // (args.calls + 1):,} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
