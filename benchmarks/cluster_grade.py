"""Grading on a local Dask cluster against the local process pool (issue 16).

Generates N distinct submissions (copies of reference files, each with its own comment line,
so no two have the same bytes), then grades the class with `bpttcheck grade --jobs W` and
`bpttcheck grade --cluster local:W`, alternating the two (local, cluster, local, ...) so both
see the same load on a shared machine, and reports per pair: wall seconds, the cluster's
overhead over the pool, and the measured cost of one submission on one worker (wall seconds
x workers / submissions, start-up left out), from which a table projects 100,000
submissions on N workers.

    python benchmarks/cluster_grade.py                       # 2,000 submissions, 2 pairs
    python benchmarks/cluster_grade.py -n 200 --pairs 3      # quicker
    python benchmarks/cluster_grade.py --write               # also update RESULTS.md

Needs the cluster extra: pip install -e '.[cluster]'.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "reference" / "python"
ZOO = ROOT / "reference" / "bugs" / "python"
# what a class hands in: mostly correct functional-style files, some with a known bug, a few
# that do not run (syntax errors); no Karpathy script here (each would import a text file)
SOURCES = [(REF / "rnn_functional.py", 6), (REF / "lstm_functional.py", 2),
           (ZOO / "rnn_dwhy_prev_h.py", 1), (ZOO / "lstm_gate_order.py", 1)]
BROKEN = "def loss_and_grads(p, x, y, h)\n    return 1\n"
MARK_START, MARK_END = "<!-- cluster_grade.py -->", "<!-- /cluster_grade.py -->"


def generate(folder: Path, n: int) -> dict[str, int]:
    """n submissions, each distinct by its first line; the mix of SOURCES, one in 50 broken."""
    folder.mkdir(parents=True)
    texts = [(p.read_text(), w, p.stem) for p, w in SOURCES]
    cycle = [t for t in texts for _ in range(t[1])]
    kinds: dict[str, int] = {}
    for i in range(n):
        if i % 50 == 49:
            text, kind = BROKEN, "broken"
        else:
            text, _, kind = cycle[i % len(cycle)]
        kinds[kind] = kinds.get(kind, 0) + 1
        (folder / f"student{i:05d}.py").write_text(f"# submission {i}: student {i:05d}\n{text}")
    return kinds


def bpttcheck_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("bpttcheck")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bpttcheck"]


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the whole process tree: the grade's
    process, its pool or its cluster's scheduler and workers, and every check's worker, all
    waited for by their parents. CPU time does not grow with other jobs' load as wall time
    does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(args)}\n{res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu


def startup(workers: int) -> tuple[float, float]:
    """Wall and CPU seconds to start and stop a LocalCluster of ``workers`` and import
    bpttcheck on it: what --cluster local:N adds once per grading, whatever the class size."""
    code = ("import time; t=time.perf_counter()\n"
            "from bpttcheck.cluster import connect, _same_bpttcheck\n"
            f"with connect('local:{workers}') as c: _same_bpttcheck(c)\n"
            "print(time.perf_counter()-t)\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(res.stdout.strip().splitlines()[-1]), cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000, help="submissions (default 2000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--pairs", type=int, default=2, help="interleaved local/cluster pairs")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    a = ap.parse_args()
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="bpttcheck-bench-cluster-"))
    try:
        kinds = generate(tmp / "class", a.n)
        cmd = [*bpttcheck_cmd(), "grade", str(tmp / "class"), "-q"]
        pairs: list[tuple[float, float, float]] = []
        cpus: list[tuple[float, float]] = []
        for p in range(a.pairs):
            local, local_cpu = timed([*cmd, "--out", str(tmp / f"local{p}"), "--jobs",
                                      str(a.workers)])
            clus, clus_cpu = timed([*cmd, "--out", str(tmp / f"cluster{p}"), "--cluster",
                                    f"local:{a.workers}"])
            start, start_cpu = startup(a.workers)
            pairs.append((local, clus, start))
            cpus.append((local_cpu, clus_cpu, start_cpu))
            print(f"pair {p + 1}: local {local:.1f} s ({local_cpu:.1f} CPU s), cluster "
                  f"{clus:.1f} s ({clus_cpu:.1f} CPU s; start-up {start:.1f} s), overhead "
                  f"{100 * (clus / local - 1):+.1f} %", flush=True)
            same = (tmp / f"local{p}" / "grades.csv").read_text().count(",pass,")
            assert same == (tmp / f"cluster{p}" / "grades.csv").read_text().count(",pass,")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(a, kinds, pairs, cpus, load0, load1)
    print(text)
    if a.write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", text)


def report(a, kinds, pairs, cpus, load0: str, load1: str) -> str:
    over = [100 * (c / lo - 1) for lo, c, _ in pairs]
    # one submission's cost on one worker: the steady state, start-up taken out
    each = [(c - s) * a.workers / a.n for _, c, s in pairs]
    per = statistics.median(each)
    start = statistics.median(s for _, _, s in pairs)
    lines = [MARK_START, "## Grading on a Dask cluster (`benchmarks/cluster_grade.py`)", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
             f"{a.n} generated submissions ({', '.join(f'{v} {k}' for k, v in kinds.items())}), "
             f"`grade --jobs {a.workers}` against `grade --cluster local:{a.workers}` (LocalCluster, "
             f"{a.workers} worker processes, one thread each), HTML reports on. Runs "
             f"interleaved (local, cluster, local, ...) on a machine shared with other "
             f"jobs: load average {load0} at the start, {load1} at the end.", "",
             "| pair | local pool s | local cluster s | cluster start-up s | overhead | "
             "overhead less start-up | CPU s local / cluster / start-up | CPU overhead | "
             "CPU overhead less start-up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    steady = [100 * ((c - s) / lo - 1) for lo, c, s in pairs]
    cpu_over = [100 * (c / lo - 1) for lo, c, _ in cpus]
    cpu_steady = [100 * ((c - s) / lo - 1) for lo, c, s in cpus]
    for i, (lo, c, s) in enumerate(pairs):
        lines.append(f"| {i + 1} | {lo:.1f} | {c:.1f} | {s:.1f} | {over[i]:+.1f} % | "
                     f"{steady[i]:+.1f} % | {cpus[i][0]:.1f} / {cpus[i][1]:.1f} / "
                     f"{cpus[i][2]:.1f} | {cpu_over[i]:+.1f} % | {cpu_steady[i]:+.1f} % |")
    cpu_each = statistics.median((c - s) / a.n for _, c, s in cpus)
    med = statistics.median(over)
    lines += ["", f"Median overhead {med:+.1f} % (target <= 15 %: "
              f"{'MET' if med <= 15 else 'MISSED'}); {statistics.median(steady):+.1f} % once the "
              f"cluster is up (start-up is paid once per grading, whatever the class size). One submission costs {per:.3f} s of one "
              f"worker here (cluster wall time less start-up, x {a.workers} workers / {a.n}); "
              f"start-up {start:.1f} s.", "",
              f"CPU time, which other jobs' load does not inflate: {cpu_each:.3f} CPU s a "
              f"submission on the cluster (client, scheduler, workers and checks together, "
              f"start-up left out), median CPU overhead over the pool "
              f"{statistics.median(cpu_over):+.1f} %, {statistics.median(cpu_steady):+.1f} % "
              f"less start-up.", "",
              "Projected for 100,000 submissions on N one-core workers, from the wall cost "
              "measured here (this shared machine's load included) and from the CPU cost (a "
              "worker with a core of its own); start-up added once:",
              "", "| workers | hours at the measured wall cost | hours at the CPU cost |",
              "| --- | --- | --- |"]
    for w in (2, 8, 32, 128, 512):
        hours = (100_000 * per / w + start) / 3600
        cpu_hours = (100_000 * cpu_each / w + start) / 3600
        lines.append(f"| {w} | {hours:.2f} | {cpu_hours:.2f} |")
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    if MARK_START in old and MARK_END in old:
        head, rest = old.split(MARK_START, 1)
        new = head + text.rstrip("\n") + rest.split(MARK_END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
