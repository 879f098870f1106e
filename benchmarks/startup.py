#!/usr/bin/env python3
"""What a one-shot `bpttcheck run` costs next to the plain script (issue 16, "re-check on save",
item 2), and where its start-up goes.

    python benchmarks/startup.py pairs [N]      # N interleaved pairs (default 15)
    python benchmarks/startup.py imports [N]    # -X importtime of N runs (default 7)
    python benchmarks/startup.py checker [N]    # the checker's own CPU time, N runs (default 7)

pairs: the plain script of bench.py section (a) (imports numpy and the Karpathy-size module,
calls lossFun once) and `bpttcheck run rnn_h100.py --spec T25.toml` (a passing check at H=100,
X=Y=65, T=25), each a fresh process timed from start to exit, run as interleaved pairs whose
order alternates (plain first, then bpttcheck first, ...). The machine is shared with other
jobs, so single runs swing by a factor of two; a pair runs within a second, under about the
same load, and the median of the per-pair ratios is the figure reported. Both the `--json -`
form (bench.py's) and the terminal form are measured.

checker: the CPU time of the checker process alone (RUSAGE_SELF when its exit hooks run; the
worker, a process of its own, left out) of the same `run --json -`, median of N runs, next to
its wall time.

imports: the checker process of the same `bpttcheck run --json -` under `python -X importtime`;
the self time of every module summed by package (bpttcheck's by room), median over the runs.
Wall times of the imports under load are inflated; their shares are what to read.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
KARPATHY = HERE / "subjects" / "karpathy"
PLAIN_SCRIPT = """
import numpy as np
import rnn_h100 as m
inputs = [m.stoi[c] for c in m.text[:m.seq_length]]
targets = [m.stoi[c] for c in m.text[1:m.seq_length + 1]]
m.lossFun(inputs, targets, np.zeros((m.hidden_size, 1)))
"""
# the plain script as a user runs it, without writing a bytecode cache into benchmarks/;
# bpttcheck as installed (its own bytecode cached, as after any first run)
PLAIN_ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")


REPO = HERE.parent
RUN_ARGS = ["run", "rnn_h100.py", "--spec", "T25.toml"]
# bpttcheck from a source tree (this one, or --src another checkout, to compare), started as
# its console script starts it
BOOT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from bpttcheck.entry import main; "
        "sys.argv[0] = 'bpttcheck'; main()")


def commands(src: Path) -> dict[str, list[str]]:
    check = [sys.executable, "-c", BOOT, str(src), *RUN_ARGS]
    return {"plain": [sys.executable, "-c", PLAIN_SCRIPT],
            "run --json -": [*check, "--json", "-"], "run (terminal)": check}


def compile_bytecode(src: Path) -> None:
    """Cache bpttcheck's bytecode, as `pip install` does: this machine's environment sets
    PYTHONDONTWRITEBYTECODE, and an uncached run compiles its ~40 modules every time."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "bpttcheck")],
                   check=True)


def timed(cmd: list[str], expect: int = 0) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its waited-for descendants: the worker)"""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    plain = cmd[2] == PLAIN_SCRIPT
    p = subprocess.run(cmd, cwd=KARPATHY, env=PLAIN_ENV if plain else None,
                       capture_output=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != expect:
        raise SystemExit(f"{cmd} exited {p.returncode}: {p.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu


def pairs(n: int, src: Path) -> None:
    compile_bytecode(src)
    cmds = commands(src)
    load0 = os.getloadavg()
    for cmd in cmds.values():  # untimed: warm the page cache
        timed(cmd)
    rows = []
    for name in ("run --json -", "run (terminal)"):
        got: dict[str, list] = defaultdict(list)
        for i in range(n):
            order = [("plain", cmds["plain"]), (name, cmds[name])]
            pair = {k: timed(c) for k, c in (order if i % 2 == 0 else order[::-1])}
            for k in ("plain", name):
                got[k + " wall"].append(pair[k][0])
                got[k + " cpu"].append(pair[k][1])
            got["ratio"].append(pair[name][0] / pair["plain"][0])
            got["cpu ratio"].append(pair[name][1] / pair["plain"][1])
        med = {k: statistics.median(v) for k, v in got.items()}
        rows.append((name, med["plain wall"], med[name + " wall"], med["ratio"],
                     min(got["ratio"]), max(got["ratio"]), med["plain cpu"],
                     med[name + " cpu"], med["cpu ratio"]))
    load1 = os.getloadavg()
    print(f"bpttcheck from {src}; {n} interleaved pairs each; load average (1 min) "
          f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end\n")
    print("| bpttcheck command | plain wall s | bpttcheck wall s | wall ratio (median of pairs) "
          "| range | plain CPU s | bpttcheck CPU s | CPU ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, p, c, r, lo, hi, pc, cc, cr in rows:
        print(f"| `bpttcheck {name}` | {p:.3f} | {c:.3f} | {r:.2f}x | {lo:.2f}-{hi:.2f}x | "
              f"{pc:.3f} | {cc:.3f} | {cr:.2f}x |")


def checker(n: int, src: Path) -> None:
    compile_bytecode(src)
    hook = ("import atexit, resource, sys; atexit.register(lambda: sys.stderr.write("
            "'checker-cpu %.4f\\n' % sum(resource.getrusage(resource.RUSAGE_SELF)[:2]))); ")
    cmd = [sys.executable, "-c", hook + BOOT, str(src), *RUN_ARGS, "--json", "-"]
    cpus, walls = [], []
    for _ in range(n + 1):
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=KARPATHY, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise SystemExit(f"{cmd} exited {p.returncode}: {p.stderr[-2000:]}")
        cpus.append(float(p.stderr.split("checker-cpu ")[1].split()[0]))
    cpus, walls = cpus[1:], walls[1:]  # the first run warms the page cache
    print(f"bpttcheck from {src}: the checker's own CPU time, median of {n} runs: "
          f"{statistics.median(cpus):.3f} s (range {min(cpus):.3f}-{max(cpus):.3f}); wall "
          f"{statistics.median(walls):.3f} s; load average (1 min) {os.getloadavg()[0]:.1f}")


def _group(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "bpttcheck":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in (
        "check", "sandbox", "oracle", "adapters") else "bpttcheck (top level)"


def imports(n: int, src: Path) -> None:
    # The modules a real run imports, in their order (dumped at exit). They are then imported
    # by themselves under -X importtime: in the real run numpy is imported by a thread (the
    # early worker's reader) while the main thread imports typer, and importtime's
    # bookkeeping, global to the process, gives such interleaved imports negative self times.
    dump = KARPATHY.parent / ".modules.txt"
    compile_bytecode(src)
    boot = (f"import atexit, sys; atexit.register(lambda: open({str(dump)!r}, 'w').write("
            f"'\\n'.join(sys.modules))); " + BOOT)
    subprocess.run([sys.executable, "-c", boot, str(src), *RUN_ARGS, "--json", "-"],
                   cwd=KARPATHY, stdout=subprocess.DEVNULL)
    mods = [m for m in dump.read_text().split("\n") if m and m != "__main__"]
    dump.unlink()
    # __import__, not importlib.import_module: only the former is timed by -X importtime
    load = ("import sys\nfor m in sys.argv[1:]:\n    try:\n"
            "        __import__(m)\n    except Exception:\n        pass\n")
    per_run: list[dict[str, int]] = []
    for _ in range(n):
        p = subprocess.run([sys.executable, "-X", "importtime", "-c", load, *mods],
                           cwd=KARPATHY, env=dict(os.environ, PYTHONPATH=str(src)), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        sums: dict[str, int] = defaultdict(int)
        for line in p.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _cum, name = line[len("import time:"):].split("|")
            sums[_group(name.strip())] += int(self_us)
            if name.strip().startswith("bpttcheck"):
                sums["  " + name.strip()] += int(self_us)  # each of ours by itself too
        per_run.append(sums)
    groups = {g for s in per_run for g in s}
    med = {g: statistics.median(s.get(g, 0) for s in per_run) for g in groups}
    ours = {g.strip(): us for g, us in med.items() if g.startswith("  ")}
    med = {g: us for g, us in med.items() if not g.startswith("  ")}
    total = sum(med.values())
    print(f"median over {n} runs of the checker's imports (self time summed by package); "
          f"all imports: {total / 1e3:.0f} ms\n")
    print("| package | ms | share |")
    print("| --- | --- | --- |")
    for g, us in sorted(med.items(), key=lambda kv: -kv[1]):
        if us >= total * 0.01:
            print(f"| {g} | {us / 1e3:.0f} | {us / total:.0%} |")
    print("\nbpttcheck's own modules (their own bodies: a pydantic model's class is built "
          "there)\n\n| module | ms | share |\n| --- | --- | --- |")
    for g, us in sorted(ours.items(), key=lambda kv: -kv[1])[:12]:
        print(f"| {g} | {us / 1e3:.0f} | {us / total:.0%} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["pairs", "imports", "checker"])
    ap.add_argument("n", type=int, nargs="?", help="pairs (default 15) or runs (default 7)")
    ap.add_argument("--src", type=Path, default=REPO,
                    help="the source tree of bpttcheck to run (default: this one)")
    args = ap.parse_args()
    if args.what == "pairs":
        pairs(args.n or 15, args.src.resolve())
    elif args.what == "checker":
        checker(args.n or 7, args.src.resolve())
    else:
        imports(args.n or 7, args.src.resolve())
