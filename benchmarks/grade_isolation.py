"""What a process per submission costs `grade` (issue 13): the same class graded by this tree
and by a baseline tree (another git ref, unpacked), interleaved, median of REPS. CPU seconds
(the whole process tree, from RUSAGE_CHILDREN) are the steadier figure on a shared machine.

    python benchmarks/grade_isolation.py BASELINE_SRC [N] [REPS]

BASELINE_SRC is a folder holding a `bpttcheck/` package (e.g. `git archive main | tar -x -C
/tmp/base`); N submissions (default 60) are made as bench.py makes them."""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # beside this script


def grade_once(src: str | None, folder: Path, out: Path) -> tuple[int, float, float]:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if src:
        env["PYTHONPATH"] = src
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "bpttcheck", "grade", str(folder), "--out",
                         str(out), "--no-html", "-j", "2", "-q"], env=env,
                        capture_output=True).returncode
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return rc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    base = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        bench.make_submissions(folder, n)
        got: dict[str, list[tuple[float, float]]] = {"baseline": [], "this tree": []}
        for _ in range(reps):
            for name, src in (("baseline", base), ("this tree", None)):
                rc, wall, cpu = grade_once(src, folder, Path(tmp) / "out")
                assert rc == 0, f"{name}: exit {rc}"
                got[name].append((wall, cpu))
        print(f"| tree | wall s (median of {reps}) | CPU s (median) | CPU ms per submission |")
        print("| --- | --- | --- | --- |")
        for name, xs in got.items():
            wall = sorted(x[0] for x in xs)[len(xs) // 2]
            cpu = sorted(x[1] for x in xs)[len(xs) // 2]
            print(f"| {name} | {wall:.1f} | {cpu:.1f} | {1000 * cpu / n:.0f} |")
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"\n{n} submissions, --jobs 2 --no-html; load average at the end: {load}")


if __name__ == "__main__":
    main()
