#!/usr/bin/env python3
"""Performance benchmarks of bpttcheck (issue 6), side by side in one run on this machine.

    python benchmarks/bench.py [--quick] [--only f] [--out benchmarks/RESULTS.md]

a. Karpathy-size RNN (H=100, X=Y=65, T=25): plain script, `bpttcheck run`, torch gradcheck
   (slow and fast mode) and a min-char-rnn-style sparse gradient check.
b. A failing check with full diagnosis (one planted bug in the same model).
c. Batch grading: `bpttcheck grade DIR --out OUT --jobs 2` over 200 small submissions.
d. Scaling: time and peak memory against parameter count, RNN and LSTM, functional style.
f. The OS sandbox's cost: the passing Karpathy-size check, a worker's start, and `grade` of
   200 submissions, each with and without bwrap, in interleaved pairs.

Every process-level time is the wall time of a fresh process (interpreter start included),
measured by a small helper process that also reads the peak RSS of its children. Each
measurement is repeated (5 or 3 times, once with --quick) after one untimed warm-up run, and
the median is reported. See benchmarks/README.md for what each row means.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KARPATHY = HERE / "subjects" / "karpathy"
FUNCTIONAL = HERE / "subjects" / "functional"
PASSING = KARPATHY / "rnn_h100.py"
BUGGY = KARPATHY / "rnn_h100_dwhh_bug.py"
T25_SPEC = KARPATHY / "T25.toml"  # T=25; X, H, Y are read from the module's globals
PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")
T = 25
X = Y = 65
N_SUBMISSIONS = 200
SCALING = [("rnn", 32), ("rnn", 64), ("rnn", 128), ("rnn", 256),
           ("lstm", 64), ("lstm", 128), ("lstm", 256), ("lstm", 512)]

# the targets of issue 6
MAX_EVALUATIONS = 8
MAX_PASS_VS_PLAIN = 3.0
MAX_FAIL_SECONDS = 2.0
MAX_GRADE_SECONDS = 60.0
MAX_LSTM512_SECONDS = 30.0


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ---------------------------------------------------------------------------- processes

# Runs one command, stdout to a file, and prints its wall time and the peak RSS of the largest
# process among its descendants (getrusage(RUSAGE_CHILDREN) of this fresh helper).
HELPER = r"""
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t0 = time.perf_counter()
    p = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "rc": p.returncode, "maxrss_kb": ru.ru_maxrss,
                  "stderr": p.stderr.decode("utf-8", "replace")[-3000:]}))
"""


@dataclass
class Proc:
    wall: float  # seconds, the whole process
    rc: int
    stdout: str
    stderr: str
    maxrss_mib: float  # largest single process of the tree
    tree_mib: float | None  # sampled peak of the summed RSS of the tree (None: not sampled)

    def json(self) -> dict:
        return json.loads(self.stdout)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _tree_rss_bytes(root: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
    return total


class TreeSampler(threading.Thread):
    """Polls the summed RSS of a process's descendants (the helper itself is left out)."""

    def __init__(self, pid: int, interval: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.done = threading.Event()
        self.start()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(self.pid))
            self.done.wait(self.interval)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak / 2**20


def run_measured(cmd: list[str], cwd: Path | None = None, env: dict | None = None,
                 sample_tree: bool = False) -> Proc:
    with tempfile.NamedTemporaryFile(prefix="bench-out-", delete=False) as f:
        out_path = f.name
    try:
        helper = subprocess.Popen([sys.executable, "-c", HELPER, out_path, *cmd], cwd=cwd,
                                  env=env, stdout=subprocess.PIPE, text=True)
        sampler = TreeSampler(helper.pid) if sample_tree else None
        report, _ = helper.communicate()
        tree = sampler.stop() if sampler else None
        with open(out_path, encoding="utf-8", errors="replace") as f:
            stdout = f.read()
    finally:
        os.unlink(out_path)
    m = json.loads(report)
    return Proc(m["wall"], m["rc"], stdout, m["stderr"], m["maxrss_kb"] / 1024, tree)


def repeat(fn, reps: int, warmup: bool = True) -> list:
    """Results of ``reps`` calls of fn after one untimed warm-up call."""
    if warmup:
        fn()
    return [fn() for _ in range(reps)]


def med(values) -> float:
    return float(statistics.median(values))


def bpttcheck_cmd() -> list[str]:
    script = Path(sys.executable).parent / "bpttcheck"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bpttcheck"]


def quiet_env() -> dict:
    """The environment of a user's plain run: no bytecode cache written into benchmarks/."""
    return dict(os.environ, PYTHONDONTWRITEBYTECODE="1")


# ---------------------------------------------------------------------------- the machine

def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def cmd_out(args):
        try:
            return subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                                  timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = cmd_out(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if cmd_out(["git", "status", "--porcelain", "--", "bpttcheck"]):
        commit += " (bpttcheck/ has uncommitted changes)"
    try:  # the version without importing torch, so its import can be timed later
        from importlib.metadata import PackageNotFoundError, version
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                          "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                if k in os.environ}
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch_version,
        "bpttcheck": cmd_out([*bpttcheck_cmd(), "--version"]) or "unknown",
        "commit": commit,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "blas_env": ", ".join(f"{k}={v}" for k, v in blas_env.items()) or "none set",
    }


# ---------------------------------------------------------------------------- (a) Karpathy size

PLAIN_SCRIPT = """
import numpy as np
import rnn_h100 as m          # runs the module's top level: reads input.txt, makes parameters
inputs = [m.stoi[c] for c in m.text[:m.seq_length]]
targets = [m.stoi[c] for c in m.text[1:m.seq_length + 1]]
m.lossFun(inputs, targets, np.zeros((m.hidden_size, 1)))
"""


def measure_plain_script(reps: int) -> dict:
    runs = repeat(lambda: run_measured([sys.executable, "-c", PLAIN_SCRIPT], KARPATHY,
                                       quiet_env()), reps)
    bad = [r for r in runs if r.rc != 0]
    if bad:
        raise RuntimeError(f"the plain script failed: {bad[0].stderr}")
    return {"wall": med(r.wall for r in runs), "calls": 1, "runs": len(runs)}


def run_bpttcheck(subject: Path, spec: Path | None, cwd: Path, sample_tree=False) -> Proc:
    cmd = [*bpttcheck_cmd(), "run", str(subject), "--json", "-"]
    if spec:
        cmd += ["--spec", str(spec)]
    return run_measured(cmd, cwd, sample_tree=sample_tree)


def summarize_bpttcheck(runs: list[Proc], expect_rc: int, what: str) -> dict:
    """Median wall time and median of each internal timing over runs of one subject."""
    reports = []
    for r in runs:
        if r.rc != expect_rc:
            raise RuntimeError(f"bpttcheck on {what} exited {r.rc}, expected {expect_rc}:\n"
                               f"{r.stderr}{r.stdout[:2000]}")
        reports.append(r.json())
    keys = [k for k in reports[0]["timings"]]
    timings = {k: med(rep["timings"].get(k, 0.0) for rep in reports) for k in keys}
    first = reports[0]
    return {"wall": med(r.wall for r in runs), "evaluations": first["evaluations"],
            "verdict": first["verdict"], "timings": timings, "sizes": first["sizes"],
            "diagnoses": [d["id"] for d in first.get("diagnoses", [])],
            "maxrss": med(r.maxrss_mib for r in runs), "runs": len(runs),
            "evaluations_all": sorted({rep["evaluations"] for rep in reports})}


def measure_bpttcheck_pass(reps: int) -> dict:
    runs = repeat(lambda: run_bpttcheck(PASSING, T25_SPEC, KARPATHY), reps)
    return summarize_bpttcheck(runs, 0, PASSING.name)


def load_subject(path: Path, seed: int = 0):
    """Import a Karpathy-style module in this process (its top level reads input.txt)."""
    np.random.seed(seed)
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    old = os.getcwd()
    os.chdir(path.parent)
    try:
        spec.loader.exec_module(module)
    finally:
        os.chdir(old)
    return module


def sequence(m) -> tuple[list[int], list[int], np.ndarray]:
    inputs = [m.stoi[c] for c in m.text[:T]]
    targets = [m.stoi[c] for c in m.text[1:T + 1]]
    return inputs, targets, np.zeros((m.hidden_size, 1))


def measure_one_call(reps: int) -> dict:
    """In-process time of one lossFun call: the floor for any method that calls it n times."""
    m = load_subject(PASSING)
    inputs, targets, h0 = sequence(m)
    m.lossFun(inputs, targets, h0)
    n = 50

    def batch():
        t0 = time.perf_counter()
        for _ in range(n):
            m.lossFun(inputs, targets, h0)
        return (time.perf_counter() - t0) / n
    return {"wall": med(repeat(batch, reps, warmup=False)), "calls": 1}


def import_torch():
    """(torch, seconds to import it) or (None, None) when it is not installed."""
    t0 = time.perf_counter()
    try:
        import torch
    except ImportError:
        return None, None
    return torch, time.perf_counter() - t0


def torch_loss(torch, m, inputs, targets, h0, counter: list[int]):
    """The user's lossFun as a function of the five parameter tensors for torch.autograd:
    forward puts the tensors' values into the module globals and calls lossFun; backward
    returns the gradients lossFun returned, each scaled by the upstream gradient."""

    class UserBPTT(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *params):
            for name, p in zip(PARAM_NAMES, params, strict=True):
                setattr(m, name, p.detach().numpy().copy())
            out = m.lossFun(inputs, targets, h0.copy())
            counter[0] += 1
            ctx.user_grads = [torch.from_numpy(np.asarray(g, dtype=np.float64).copy())
                              for g in out[1:1 + len(PARAM_NAMES)]]
            return torch.tensor(float(out[0]), dtype=torch.float64)

        @staticmethod
        def backward(ctx, grad_out):
            return tuple(grad_out * g for g in ctx.user_grads)

    return UserBPTT.apply


def measure_torch_gradcheck(torch, fast: bool, reps: int) -> dict:
    m = load_subject(PASSING)
    inputs, targets, h0 = sequence(m)
    start = {name: getattr(m, name).copy() for name in PARAM_NAMES}
    counter = [0]
    fn = torch_loss(torch, m, inputs, targets, h0, counter)

    def once():
        params = tuple(torch.from_numpy(start[n].copy()).requires_grad_() for n in PARAM_NAMES)
        counter[0] = 0
        t0 = time.perf_counter()
        ok = torch.autograd.gradcheck(fn, params, fast_mode=fast, raise_exception=False)
        return time.perf_counter() - t0, counter[0], bool(ok)
    runs = repeat(once, reps, warmup=False)
    return {"wall": med(r[0] for r in runs), "calls": runs[0][1], "ok": all(r[2] for r in runs),
            "runs": len(runs)}


def sparse_gradcheck(m, inputs, targets, h0, rng, per_param=10, delta=1e-5):
    """min-char-rnn's gradCheck: central differences at 10 random entries of each parameter.
    Returns (calls of lossFun, worst relative error)."""
    calls = 1
    out = m.lossFun(inputs, targets, h0)
    analytic = dict(zip(PARAM_NAMES, out[1:6], strict=True))
    worst = 0.0
    for name in PARAM_NAMES:
        p = getattr(m, name)
        for _ in range(per_param):
            i = int(rng.integers(p.size))
            old = p.flat[i]
            p.flat[i] = old + delta
            plus = m.lossFun(inputs, targets, h0)[0]
            p.flat[i] = old - delta
            minus = m.lossFun(inputs, targets, h0)[0]
            p.flat[i] = old
            calls += 2
            num, ana = (plus - minus) / (2 * delta), analytic[name].flat[i]
            if num != 0 or ana != 0:
                worst = max(worst, abs(ana - num) / abs(ana + num))
    return calls, worst


def measure_sparse_gradcheck(reps: int) -> dict:
    m = load_subject(PASSING)
    inputs, targets, h0 = sequence(m)

    def once():
        t0 = time.perf_counter()
        calls, worst = sparse_gradcheck(m, inputs, targets, h0, np.random.default_rng(0))
        return time.perf_counter() - t0, calls, worst
    runs = repeat(once, reps, warmup=False)
    return {"wall": med(r[0] for r in runs), "calls": runs[0][1], "worst_rel": runs[0][2]}


def measure_startup(reps: int) -> dict:
    """`bpttcheck --version`: the floor of any bpttcheck process (interpreter and CLI start)."""
    runs = repeat(lambda: run_measured([*bpttcheck_cmd(), "--version"]), reps)
    return {"wall": med(r.wall for r in runs), "calls": 0}


def section_karpathy(reps: int, reps_slow: int) -> tuple[str, dict]:
    print("(a) Karpathy-size model ...", flush=True)
    plain = measure_plain_script(reps)
    check = measure_bpttcheck_pass(reps)
    startup = measure_startup(reps)
    one = measure_one_call(reps)
    sparse = measure_sparse_gradcheck(reps)
    torch, import_s = import_torch()
    ratio = check["wall"] / plain["wall"]
    evals_ok = max(check["evaluations_all"]) <= MAX_EVALUATIONS
    # (method, calls, wall seconds or None, what is timed, target)
    rows = [
        ("plain script: `python -c` imports numpy and the module, calls lossFun once", 1,
         plain["wall"], "whole process", ""),
        (f"`bpttcheck run --json -` (verdict {check['verdict']})", check["evaluations"],
         check["wall"], "whole process (checker + worker)",
         f"calls <= {MAX_EVALUATIONS}: {mark(evals_ok)}; time {ratio:.2f}x plain <= "
         f"{MAX_PASS_VS_PLAIN:g}x: {mark(ratio <= MAX_PASS_VS_PLAIN)}"),
        ("`bpttcheck --version` (start-up floor of any bpttcheck process)", 0,
         startup["wall"], "whole process", ""),
    ]
    if torch is None:
        print("torch not installed: skipping the torch.autograd.gradcheck rows", flush=True)
        rows.append(("torch.autograd.gradcheck (slow and fast mode)", "-", None,
                     "torch not installed", ""))
    else:
        print("  torch gradcheck, slow mode (a minute or more per run) ...", flush=True)
        slow = measure_torch_gradcheck(torch, False, reps_slow)
        fast = measure_torch_gradcheck(torch, True, reps)
        for label, res in (("slow mode", slow), ("fast_mode=True", fast)):
            rows.append((f"torch.autograd.gradcheck, {label} (result: "
                         f"{'pass' if res['ok'] else 'FAIL'})", res["calls"], res["wall"],
                         "in process, torch import not counted", ""))
    rows.append(("min-char-rnn sparse check: 10 random entries x 5 parameters, central "
                 f"differences (worst rel. error {sparse['worst_rel']:.1e})", sparse["calls"],
                 sparse["wall"], "in process", ""))
    rows.append(("one lossFun call (for scale)", 1, one["wall"], "in process", ""))
    table = md_table(
        ["method", "lossFun calls", "wall s (median)", "vs plain", "what is timed", "target"],
        [[m, str(c), "-" if w is None else f"{w:.4f}" if w < 0.01 else f"{w:.3f}",
          "-" if w is None else f"{w / plain['wall']:.2f}x", what, tgt]
         for m, c, w, what, tgt in rows])
    extra = []
    if torch is not None:
        extra.append(f"torch {torch.__version__} import took {import_s:.2f} s (not counted).")
    extra.append(f"Repetitions: {reps} (torch slow mode {reps_slow}); bpttcheck's evaluations "
                 f"over the runs: {check['evaluations_all']}. Probe sizes: {check['sizes']}.")
    text = table + "\n\n" + " ".join(extra) + "\n\n" + timings_table(check, "passing check")
    return text, {"plain": plain, "check": check}


def timings_table(res: dict, label: str) -> str:
    """bpttcheck's internal timings (JSON `timings`), and the rest of the process's wall time."""
    t = res["timings"]
    total = t.get("total", 0.0)
    rows = [[k, f"{v:.4f}", f"{100 * v / res['wall']:.0f}%"] for k, v in t.items()
            if k != "total"]
    rows.append(["total (inside the checker)", f"{total:.4f}", f"{100 * total / res['wall']:.0f}%"])
    rest = res["wall"] - total
    rows.append(["outside `total`: interpreter start, imports, CLI, report, exit",
                 f"{rest:.4f}", f"{100 * rest / res['wall']:.0f}%"])
    return (f"Where the time of the {label} goes (median of each `timings` entry; share of "
            f"the {res['wall']:.3f} s wall time):\n\n"
            + md_table(["timings entry", "s", "share of wall"], rows))


# ---------------------------------------------------------------------------- (b) failing check

def section_failing(reps: int, plain_wall: float) -> str:
    print("(b) failing check with diagnosis ...", flush=True)
    runs = repeat(lambda: run_bpttcheck(BUGGY, T25_SPEC, KARPATHY), reps)
    res = summarize_bpttcheck(runs, 1, BUGGY.name)
    diag = res["timings"].get("diagnosis", 0.0)
    rows = [[f"`{BUGGY.name}` (dWhh from hs[t] instead of hs[t-1])", res["verdict"],
             ", ".join(res["diagnoses"]) or "none", str(res["evaluations"]),
             f"{res['wall']:.3f}", f"{diag:.3f}",
             f"<= {MAX_FAIL_SECONDS:g} s: {mark(res['wall'] <= MAX_FAIL_SECONDS)}"]]
    table = md_table(["subject", "verdict", "diagnosis", "calls", "wall s (median)",
                      "`diagnosis` s", "target"], rows)
    return (table + f"\n\nRepetitions: {reps}. Plain-script baseline for scale: "
            f"{plain_wall:.3f} s.\n\n" + timings_table(res, "failing check"))


# ---------------------------------------------------------------------------- (c) grading

def zoo() -> list[tuple[Path, str]]:
    """(file, expected) of the small reference implementations, correct and buggy."""
    files = sorted((REPO / "reference" / "python").glob("*.py"))
    files += sorted((REPO / "reference" / "bugs" / "python").glob("*.py"))
    out = []
    for f in files:
        first = f.read_text(errors="replace").splitlines()[:1]
        if first and first[0].startswith("# bpttcheck-expect:"):
            out.append((f, first[0].split(":", 1)[1].strip()))
    return out


def make_submissions(root: Path, n: int) -> list[tuple[Path, str]]:
    """n folders root/student-NNN, each with one implementation (cycling through the zoo) and
    the input.txt that Karpathy-style files read. Returns (file, expected verdict)."""
    source = zoo()
    made = []
    for k in range(n):
        src, expect = source[k % len(source)]
        d = root / f"student-{k:03d}"
        d.mkdir(parents=True)
        shutil.copy2(src, d / src.name)
        text_file = src.parent / "input.txt"
        if text_file.exists():
            shutil.copy2(text_file, d / "input.txt")
        made.append((d / src.name, "pass" if expect == "pass" else "fail"))
    return made


def grade_help() -> str | None:
    """The help text of `bpttcheck grade`, or None when this version has no such command."""
    p = subprocess.run([*bpttcheck_cmd(), "grade", "--help"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def read_grades(path: Path, expected: dict[str, str]) -> dict:
    """Rows of grades.csv, a tally of its verdict column and how many verdicts match the
    labels (when the CSV has `student` and `verdict` columns)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    tally: dict[str, int] = {}
    right = None
    if rows and "verdict" in rows[0]:
        for r in rows:
            tally[r["verdict"]] = tally.get(r["verdict"], 0) + 1
        if "student" in rows[0]:
            right = sum(expected.get(r["student"]) == r["verdict"] for r in rows)
    return {"rows": len(rows), "tally": tally, "right": right}


def measure_grade(root: Path, expected: dict[str, str], reps: int, extra: list[str]) -> dict:
    def once():
        out = Path(tempfile.mkdtemp(prefix="bench-grades-"))
        try:
            p = run_measured([*bpttcheck_cmd(), "grade", str(root), "--out", str(out),
                              "--jobs", "2", *extra])
            csv_path = out / "grades.csv"
            got = read_grades(csv_path, expected) if csv_path.exists() else {
                "rows": 0, "tally": {}, "right": None}
            return p, got
        finally:
            shutil.rmtree(out, ignore_errors=True)
    runs = repeat(once, reps, warmup=False)
    p, got = runs[0]
    return {"wall": med(r[0].wall for r in runs), "rc": p.rc, "stderr": p.stderr, **got}


def grade_row(label: str, g: dict) -> list[str]:
    ok = g["rc"] in (0, 1) and g["rows"] == N_SUBMISSIONS
    note = f"exit {g['rc']}, {g['rows']} rows in grades.csv"
    if g["tally"]:
        note += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(g["tally"].items())) + ")"
    if g["right"] is not None:
        note += f"; {g['right']}/{N_SUBMISSIONS} verdicts as labelled"
    if g["rc"] not in (0, 1):
        note += f"; stderr: {g['stderr'][-300:].strip()}"
    return [label, f"{g['wall']:.2f}", f"{N_SUBMISSIONS / g['wall']:.1f}", note,
            f"<= {MAX_GRADE_SECONDS:g} s: {mark(ok and g['wall'] <= MAX_GRADE_SECONDS)}"]


def measure_run_loop(subs: list[tuple[Path, str]], jobs: int = 2) -> dict:
    """What a grader can do today: one `bpttcheck run` process per submission, 2 at a time."""
    def one(item):
        path, expect = item
        p = subprocess.run([*bpttcheck_cmd(), "run", path.name, "--json", "-"], cwd=path.parent,
                           capture_output=True, text=True)
        try:
            verdict = json.loads(p.stdout)["verdict"]
        except (ValueError, KeyError):
            verdict = "error"
        return verdict == expect
    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        right = sum(pool.map(one, subs))
    return {"wall": time.perf_counter() - t0, "right": right}


def section_grading(reps: int) -> str:
    print(f"(c) grading {N_SUBMISSIONS} submissions ...", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-submissions-"))
    try:
        subs = make_submissions(root, N_SUBMISSIONS)
        expected = {path.parent.name: e for path, e in subs}
        n_pass = sum(1 for _, e in subs if e == "pass")
        help_text = grade_help()
        if help_text is None:
            print("  `bpttcheck grade` not available in this version", flush=True)
            rows = [["`bpttcheck grade DIR --out OUT --jobs 2`", "-", "-",
                     "not available in this version (`bpttcheck grade --help` fails)",
                     f"<= {MAX_GRADE_SECONDS:g} s: -"]]
        else:
            rows = [grade_row("`bpttcheck grade DIR --out OUT --jobs 2`",
                              measure_grade(root, expected, reps, []))]
            if "--no-html" in help_text:
                rows.append(grade_row("the same with `--no-html`",
                                      measure_grade(root, expected, reps, ["--no-html"])))
        loop = measure_run_loop(subs)
        rows.append(["for comparison: one `bpttcheck run` per submission, 2 at a time",
                     f"{loop['wall']:.2f}", f"{N_SUBMISSIONS / loop['wall']:.1f}",
                     f"{loop['right']}/{N_SUBMISSIONS} verdicts as labelled", "(1 run)"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = md_table(["method", "wall s", "submissions/s", "result", "target"], rows)
    return (table + f"\n\n{N_SUBMISSIONS} submissions, one folder each (the file and "
            f"input.txt), cycling through the {len(zoo())} labelled files of reference/python "
            f"and reference/bugs/python: {n_pass} correct, {N_SUBMISSIONS - n_pass} buggy. "
            f"grade: median of {reps}.")


# ---------------------------------------------------------------------------- (d) scaling

def write_size_spec(folder: Path, H: int) -> Path:
    path = folder / f"sizes_H{H}.toml"
    path.write_text(f"[sizes]\nT = {T}\nX = {X}\nH = {H}\nY = {Y}\n\n[limits]\ntimeout = 120\n")
    return path


def measure_scaling_point(arch: str, H: int, spec: Path, reps: int) -> dict:
    subject = FUNCTIONAL / f"{arch}_fn.py"
    runs = repeat(lambda: run_bpttcheck(subject, spec, FUNCTIONAL, sample_tree=True), reps)
    res = summarize_bpttcheck(runs, 0, f"{subject.name} H={H}")
    groups = runs[0].json()["groups"]
    res["params"] = sum(g["n"] for g in groups)
    res["tree"] = med(r.tree_mib for r in runs)
    return res


def section_scaling(reps: int) -> str:
    print("(d) scaling ...", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-specs-"))
    rows = []
    try:
        for arch, H in SCALING:
            print(f"  {arch} H={H}", flush=True)
            r = measure_scaling_point(arch, H, write_size_spec(folder, H), reps)
            t = r["timings"]
            target = ""
            if (arch, H) == ("lstm", 512):
                target = f"<= {MAX_LSTM512_SECONDS:g} s: {mark(r['wall'] <= MAX_LSTM512_SECONDS)}"
            rows.append([arch, str(H), f"{r['params']:,}", r["verdict"], str(r["evaluations"]),
                         f"{r['wall']:.3f}", f"{t.get('total', 0):.3f}",
                         f"{t.get('first_call', 0):.3f}", f"{t.get('behaviour', 0):.3f}",
                         f"{t.get('finite_differences', 0):.3f}", f"{r['maxrss']:.0f}",
                         f"{r['tree']:.0f}", target])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = md_table(["arch", "H", "parameters", "verdict", "calls", "wall s", "`total` s",
                      "`first_call` s", "`behaviour` s", "`finite_differences` s",
                      "peak RSS MiB, largest process", "peak RSS MiB, tree (sampled)", "target"],
                     rows)
    return (table + f"\n\nX = Y = {X}, T = {T}, functional style "
            f"(benchmarks/subjects/functional/), sizes from a spec's [sizes]. Median of {reps}. "
            "Largest process: getrusage(RUSAGE_CHILDREN).ru_maxrss of a fresh helper that runs "
            "bpttcheck (the checker or its worker, whichever is larger); tree: the summed RSS of "
            "all processes under the helper, polled every 20 ms.")


# ---------------------------------------------------------------------------- (f) the OS sandbox

WEAK = "BPTTCHECK_SANDBOX"  # =weak: the fallback, no bwrap (sandbox/osbox.py)


def sandbox_env(on: bool) -> dict:
    env = quiet_env()
    env.pop(WEAK, None)
    if not on:
        env[WEAK] = "weak"
    return env


def interleaved(fn, pairs: int) -> list[tuple[float, float]]:
    """(with bwrap, without) wall times of ``pairs`` pairs, run one right after the other and
    in alternating order (with-without, without-with, ...), after one untimed warm-up pair.
    On a machine shared with other work the load drifts; the two runs of a pair see nearly
    the same load, so their ratio survives it better than either time."""
    fn(True)
    fn(False)
    out = []
    for i in range(pairs):
        order = (True, False) if i % 2 == 0 else (False, True)
        got = {on: fn(on) for on in order}
        out.append((got[True], got[False]))
    return out


def pair_stats(pairs: list[tuple[float, float]]) -> dict:
    ratios = sorted(a / b for a, b in pairs)
    return {"with": med(a for a, _ in pairs), "without": med(b for _, b in pairs),
            "ratio": med(ratios), "ratio_lo": ratios[0], "ratio_hi": ratios[-1],
            "diff": med(a - b for a, b in pairs), "n": len(pairs)}


def measure_sandboxed_check(pairs: int) -> dict:
    def one(on: bool) -> float:
        p = run_measured([*bpttcheck_cmd(), "run", str(PASSING), "--spec", str(T25_SPEC),
                          "--json", "-"], KARPATHY, sandbox_env(on))
        rep = p.json() if p.rc == 0 else {}
        weak = "sandbox.weak" in [n["id"] for n in rep.get("notes", [])]
        if p.rc != 0 or weak == on:
            raise RuntimeError(f"bpttcheck run (sandbox {'on' if on else 'off'}) exited "
                               f"{p.rc}, sandbox.weak note {weak}: {p.stderr[-2000:]}")
        return p.wall
    return pair_stats(interleaved(one, pairs))


WORKER_START = r"""
import json, os, sys, time
from bpttcheck.sandbox import osbox
from bpttcheck.sandbox.session import WorkerSession
t0 = time.perf_counter()
sb = osbox.current()
probe = time.perf_counter() - t0
t1 = time.perf_counter()
with WorkerSession(sys.argv[1]) as w:
    w.load(None, {})
    started = time.perf_counter() - t1
print(json.dumps({"probe": probe, "start": started, "strong": sb.strong}))
"""


def measure_worker_start(pairs: int) -> tuple[dict, float]:
    """In a fresh process each: the probe, then a worker started and the module loaded (its
    first reply), timed inside; the interpreter's own start is left out."""
    probes: list[float] = []

    def one(on: bool) -> float:
        p = subprocess.run([sys.executable, "-c", WORKER_START, str(PASSING)], cwd=KARPATHY,
                           env=sandbox_env(on), capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"worker start (sandbox {on}) failed: {p.stderr[-2000:]}")
        got = json.loads(p.stdout)
        if got["strong"] != on:
            raise RuntimeError(f"the sandbox was {'off' if on else 'on'} when asked otherwise")
        if on:
            probes.append(got["probe"])
        return got["start"]
    stats = pair_stats(interleaved(one, pairs))
    return stats, med(probes)


def measure_sandboxed_grade(pairs: int) -> tuple[dict, dict]:
    root = Path(tempfile.mkdtemp(prefix="bench-submissions-"))
    tallies: dict[bool, dict] = {}
    try:
        subs = make_submissions(root, N_SUBMISSIONS)
        expected = {path.parent.name: e for path, e in subs}

        def one(on: bool) -> float:
            out = Path(tempfile.mkdtemp(prefix="bench-grades-"))
            try:
                p = run_measured([*bpttcheck_cmd(), "grade", str(root), "--out", str(out),
                                  "--jobs", "2", "--no-html", "-q"], env=sandbox_env(on))
                got = read_grades(out / "grades.csv", expected) if (
                    out / "grades.csv").exists() else {"rows": 0, "right": None}
                if p.rc != 0 or got["rows"] != N_SUBMISSIONS:
                    raise RuntimeError(f"grade (sandbox {on}) exited {p.rc}: {p.stderr[-2000:]}")
                tallies[on] = got
                return p.wall
            finally:
                shutil.rmtree(out, ignore_errors=True)
        return pair_stats(interleaved(one, pairs)), tallies
    finally:
        shutil.rmtree(root, ignore_errors=True)


def section_sandbox(pairs: int, grade_pairs: int) -> str:
    print("(f) the OS sandbox's cost ...", flush=True)
    probe_env = sandbox_env(True)
    p = subprocess.run([sys.executable, "-c", "from bpttcheck.sandbox import osbox; "
                        "print(osbox.current().why_weak or '')"], env=probe_env,
                       capture_output=True, text=True, check=False)
    if p.returncode != 0 or p.stdout.strip():
        return f"Not measured: the OS sandbox is not available here ({p.stdout.strip() or p.stderr[-300:]})."
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    check = measure_sandboxed_check(pairs)
    start, probe = measure_worker_start(pairs)
    grade, tallies = measure_sandboxed_grade(grade_pairs)
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cores = len(os.sched_getaffinity(0))
    per_core = max(float(load0.split()[0]), float(load1.split()[0])) / cores
    loaded = (f" The machine was busy with other work (a load average of up to "
              f"{per_core:.1f} per core): the absolute times are those of a loaded machine, "
              f"not comparable with the other sections'; the paired ratios and differences are "
              f"the figures to use, and their spread says how far to trust them."
              if per_core > 1.5 else "")

    def row(label: str, st: dict, unit: str = "s") -> list[str]:
        return [label, str(st["n"]), f"{st['with']:.3f}", f"{st['without']:.3f}",
                f"{st['diff'] * (1000 if unit == 'ms' else 1):+.{0 if unit == 'ms' else 3}f} {unit}",
                f"{st['ratio']:.2f}x ({st['ratio_lo']:.2f}-{st['ratio_hi']:.2f})"]
    rows = [row("`bpttcheck run --json -`, Karpathy size (T=25, X=Y=65, H=100), verdict pass",
                check, "ms"),
            row("a worker's start to its first reply (load), in process", start, "ms"),
            row(f"`bpttcheck grade` of {N_SUBMISSIONS} submissions, `--jobs 2 --no-html`", grade)]
    right = {on: t.get("right") for on, t in tallies.items()}
    table = md_table(["what", "pairs", "median s, bwrap", "median s, fallback",
                      "median of the differences", "median ratio of a pair (min-max)"], rows)
    return (table + f"\n\nThe probe (is bwrap usable here?) took {probe * 1000:.1f} ms, once per "
            f"process. grade's verdicts as labelled: {right.get(True)}/{N_SUBMISSIONS} with "
            f"bwrap, {right.get(False)}/{N_SUBMISSIONS} without. Each pair runs the two one "
            f"right after the other, alternating which goes first; the ratio is that of the two "
            f"runs of one pair. Load average (1, 5, 15 min) at the start / end of this section: "
            f"{load0} / {load1} ({cores} cores).{loaded}")


# ---------------------------------------------------------------------------- output

def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_section(info: dict) -> str:
    rows = [[k, str(v)] for k, v in (
        ("date", info["date"]), ("nproc", info["nproc"]), ("CPU", info["cpu"]),
        ("python", info["python"]), ("numpy", info["numpy"]), ("torch", info["torch"]),
        ("bpttcheck", f"{info['bpttcheck']} (commit {info['commit']})"),
        ("load average (1, 5, 15 min) at start / end", f"{info['load']} / {info['load_end']}"),
        ("BLAS environment", info["blas_env"]))]
    return md_table(["", ""], rows)


SANDBOX_TITLE = "(f) The OS sandbox's cost"


def replace_section(path: Path, title: str, text: str) -> str:
    """The report at ``path`` with its section ``title`` replaced by ``text`` (appended when it
    has none; a new report when there is none)."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# bpttcheck benchmarks\n"
    parts = old.split("\n## ")
    head, sections = parts[0], parts[1:]
    new = f"{title}\n\n{text}\n"
    for i, sec in enumerate(sections):
        if sec.split("\n", 1)[0].strip() == title:
            sections[i] = new
            break
    else:
        sections.append(new)
    return head.rstrip("\n") + "\n" + "".join(f"\n## {sec.rstrip()}\n" for sec in sections)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it a normal file's mode
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one repetition per measurement")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown report")
    ap.add_argument("--only", choices=["f"], help="run only this section and put it into the "
                    "existing report in place of its old version (the others stay as they are)")
    ap.add_argument("--pairs", type=int, help="(f): pairs of checks and of worker starts "
                    "(default 11, 3 with --quick)")
    ap.add_argument("--grade-pairs", type=int, help="(f): pairs of grade runs (default 3, 1 "
                    "with --quick)")
    args = ap.parse_args(argv)
    reps, reps_slow = (1, 1) if args.quick else (5, 3)
    pairs, grade_pairs = (3, 1) if args.quick else (11, 3)
    pairs, grade_pairs = args.pairs or pairs, args.grade_pairs or grade_pairs

    info = machine_info()
    t0 = time.perf_counter()
    mode = "--quick (1 repetition)" if args.quick else "full"
    if args.only == "f":
        text = section_sandbox(pairs, grade_pairs)
        text = (f"Written by `python benchmarks/bench.py --only f` ({mode}) on {info['date']}, "
                f"bpttcheck {info['bpttcheck']} (commit {info['commit']}), {info['nproc']} "
                f"cores, in {time.perf_counter() - t0:.0f} s.\n\n" + text)
        report = replace_section(Path(args.out), SANDBOX_TITLE, text)
        print("\n" + text)
        write_atomic(Path(args.out), report)
        print(f"written to {args.out}")
        return 0
    karpathy, res = section_karpathy(reps, reps_slow)
    sections = [("(a) Karpathy-size model: H=100, X=Y=65, T=25", karpathy)]
    sections.append(("(b) Failing check with full diagnosis", section_failing(
        reps, res["plain"]["wall"])))
    sections.append(("(c) Batch grading", section_grading(reps_slow)))
    sections.append(("(d) Scaling with the parameter count", section_scaling(reps_slow)))
    sections.append((SANDBOX_TITLE, section_sandbox(pairs, grade_pairs)))
    info["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sections.insert(0, ("Machine", machine_section(info)))

    head = (f"# bpttcheck benchmarks\n\nWritten by `python benchmarks/bench.py` ({mode}) in "
            f"{time.perf_counter() - t0:.0f} s. Times are wall-clock seconds; see "
            "benchmarks/README.md for what each row means.\n")
    body = "\n\n".join(f"## {title}\n\n{text}" for title, text in sections)
    report = head + "\n" + body + "\n"
    # sections (e) on are taken with zoo_diagnosis.py and print_flood.py: kept as they are
    out = Path(args.out)
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    if "\n## (e)" in old:
        report += "\n" + old[old.index("\n## (e)") + 1:]
    print("\n" + report)
    write_atomic(out, report)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
