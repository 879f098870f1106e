#!/usr/bin/env python3
"""How soon `bpttcheck watch` shows the verdict after a save (issue 16, "re-check on save").

    python benchmarks/watch_latency.py [N]      # N saves (default 9)

A copy of the Karpathy-size subject (rnn_h100.py, H=100, X=Y=65, with T=25 from T25.toml, as
bench.py section (a)) is watched by a `bpttcheck watch` process. Each round waits 1.5 s (the
spare worker is ready by then, as it is while a student edits), saves the file as an editor
does (a new file renamed over the old one; a comment line added, so the content changes), and
measures from just after the rename until the watch process has printed the verdict line
(`== PASS ...`) on its stdout. Median, min and max of N saves are printed with the load
average: the machine is shared, and wall times swing with the other jobs on it. The CPU time
of one re-check (the watch process's own, and the spare worker's from the save until it is
reaped; /proc, clock ticks of 10 ms) is printed too: checker and worker take turns, so on an
idle machine their sum is about what the wall time comes to.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KARPATHY = HERE / "subjects" / "karpathy"


def bpttcheck_cmd() -> list[str]:
    script = Path(sys.executable).parent / "bpttcheck"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bpttcheck"]


def save(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> tuple[float, float]:
    """(its own CPU seconds, the CPU seconds of its children it has waited for)"""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def children_cpu(pid: int) -> float:
    """CPU seconds used so far by the processes whose parent is ``pid`` (the spare worker)."""
    total = 0.0
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def verdict_line(p: subprocess.Popen) -> str:
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"the watch ended: {p.stderr.read()[-2000:]}")
        if line.startswith("== "):
            return line


def main(n: int) -> None:
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for name in ("rnn_h100.py", "input.txt", "T25.toml"):
            shutil.copy(KARPATHY / name, folder / name)
        model = folder / "rnn_h100.py"
        text = model.read_text()
        p = subprocess.Popen([*bpttcheck_cmd(), "watch", "rnn_h100.py", "--spec", "T25.toml"],
                             cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, bufsize=1)
        try:
            first = verdict_line(p)
            assert first.startswith("== PASS"), first
            waits, inside, checker_cpu, worker_cpu = [], [], [], []
            for i in range(n):
                time.sleep(1.5)
                text += f"# save {i}\n"
                spare_before = children_cpu(p.pid)
                own0, reaped0 = cpu_of(p.pid)
                save(model, text)
                t0 = time.perf_counter()
                line = verdict_line(p)
                waits.append(time.perf_counter() - t0)
                own1, reaped1 = cpu_of(p.pid)
                checker_cpu.append(own1 - own0)
                worker_cpu.append(reaped1 - reaped0 - spare_before)
                assert line.startswith("== PASS"), line
                inside.append(float(line.split(", ")[-1].split(" s after")[0]))
        finally:
            p.send_signal(2)  # Ctrl-C
            p.wait(timeout=30)
    load1 = os.getloadavg()
    print(f"{n} saves; load average (1 min) {load0[0]:.1f} at the start, {load1[0]:.1f} at the "
          f"end; watch exit status after Ctrl-C: {p.returncode}\n")
    print("| measured | median s | min s | max s |")
    print("| --- | --- | --- | --- |")
    print(f"| save (rename) to the verdict line read from the watch's stdout | "
          f"{statistics.median(waits):.3f} | {min(waits):.3f} | {max(waits):.3f} |")
    print(f"| the watch's own figure: save seen to verdict ready | "
          f"{statistics.median(inside):.3f} | {min(inside):.3f} | {max(inside):.3f} |")
    both = [a + b for a, b in zip(checker_cpu, worker_cpu, strict=True)]
    for what, v in (("CPU of the watch process (the checker) for one re-check", checker_cpu),
                    ("CPU of the spare worker from the save to its end", worker_cpu),
                    ("CPU of both: the work of one re-check", both)):
        print(f"| {what} | {statistics.median(v):.3f} | {min(v):.3f} | {max(v):.3f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
