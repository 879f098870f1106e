"""Grading on a Dask cluster (issue 16): a LocalCluster of two worker processes grades a class
into the same reports, index and gradebook as a local `grade`, timings apart; a submission
that kills its Dask worker ends as an error of its own while every other is graded; the
grading secret never reaches a worker."""
import csv
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="grade --cluster needs Dask distributed, an optional "
                                          "extra: pip install 'bpttcheck[cluster]' (CI installs it)")

from bpttcheck import cluster  # after the skip: only with Dask installed
from bpttcheck.errors import UsageError
from bpttcheck.grade import discover, grade
from bpttcheck.settings import settings
from conftest import REF, ROOT, ZOO

# the worker's parent is the process that runs the check: on a cluster, the Dask worker
KILLER = "import ctypes, os\nctypes.CDLL(None).kill(os.getppid(), 9)\n"
TIMEOUT = 10.0


def make_class(k: Path) -> Path:
    """Every path through a check: a pass, a named bug, a Karpathy file that reads input.txt
    beside it (a flat file's data), a folder whose model imports a helper beside it, a C file
    (compiled on the worker), a syntax error and a folder with nothing to check."""
    k.mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "alice.py")
    shutil.copy(ZOO / "rnn_dwhy_prev_h.py", k / "bob.py")
    shutil.copy(ZOO / "rnn_dwhh_current_h_karpathy.py", k / "carol.py")
    shutil.copy(REF / "input.txt", k / "input.txt")
    (k / "dan").mkdir()
    src = (REF / "rnn_functional.py").read_text()
    (k / "dan" / "helper.py").write_text("import numpy as np\n\ndef tanh(x):\n    return np.tanh(x)\n")
    (k / "dan" / "model.py").write_text("from helper import tanh\n" + src.replace("np.tanh(", "tanh("))
    shutil.copy(ROOT / "reference" / "c" / "rnn.c", k / "erin.c")
    (k / "frank.py").write_text("def loss_and_grads(p, x, y, h)\n    return 1\n")
    (k / "gina").mkdir()
    (k / "gina" / "notes.txt").write_text("not done")
    return k


def outputs(out: Path, folder: Path) -> dict[str, str]:
    """Every file under ``out`` by relative path, timings and the class folder's path made
    neutral: what must be the same wherever the class was checked."""
    found = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        text = p.read_text(encoding="utf-8").replace(str(folder), "<class>")
        rel = str(p.relative_to(out))
        if p.suffix == ".json":
            found[rel] = json.dumps(_timeless(json.loads(text)), indent=1, sort_keys=True)
        elif p.suffix == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            found[rel] = json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in rows])
        else:
            text = re.sub(r"\b\d+(\.\d+)?(e-?\d+)? s\b", "N s", text)
            found[rel] = re.sub(r'data-sort="[\d.]+">N s', 'data-sort="N">N s', text)
    return found


def _timeless(x):
    if isinstance(x, dict):
        return {k: _timeless(v) for k, v in x.items() if k not in ("timings", "seconds")}
    if isinstance(x, list):
        return [_timeless(v) for v in x]
    return x


@pytest.fixture(scope="module")
def local_grade(tmp_path_factory, _fallback_isolation):
    base = tmp_path_factory.mktemp("cluster")
    k = make_class(base / "class")
    out = base / "local"
    grade(str(k), settings(timeout=TIMEOUT), str(out), jobs=2, progress=False, tell=lambda m: None)
    return k, out


@pytest.mark.slow
def test_a_local_cluster_writes_what_a_local_grade_writes(local_grade, tmp_path):
    k, local = local_grade
    out = tmp_path / "cluster"
    res = subprocess.run([sys.executable, "-m", "bpttcheck", "grade", str(k), "--out", str(out),
                          "--cluster", "local:2", "--timeout", str(TIMEOUT)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "graded 7 submissions: 3 pass, 2 fail, 2 error" in res.stdout
    # the same progress display: one plain line per submission off a terminal
    assert len(re.findall(r"^\[\d/7\] \w+: (pass|fail|error)", res.stderr, re.M)) == 7
    mine, theirs = outputs(out, k), outputs(local, k)
    assert sorted(mine) == sorted(theirs)
    assert len(mine) == 2 * 7 + 3  # report.json and .html each, index, grades.csv and .json
    for rel in theirs:
        assert mine[rel] == theirs[rel], rel
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").read_text().splitlines())}
    assert (rows["alice"]["verdict"], rows["bob"]["verdict"], rows["frank"]["error_kind"]) == (
        "pass", "fail", "syntax")
    assert rows["bob"]["top_diagnosis"] == "rnn.dwhy-uses-prev-h"
    assert rows["carol"]["top_diagnosis"] == "rnn.dwhh-uses-current-h"
    assert rows["dan"]["verdict"] == rows["erin"]["verdict"] == "pass"  # helper shipped, C built


@pytest.fixture(scope="module", autouse=True)
def _fallback_isolation():
    """The whole module without the OS sandbox, local grades and the Dask workers alike (they
    inherit this environment when the cluster starts): under bwrap a submission cannot reach
    its Dask worker at all (tests/test_os_sandbox.py), and this module tests what the cluster
    does when a worker dies anyway."""
    old = os.environ.get("BPTTCHECK_SANDBOX")
    os.environ["BPTTCHECK_SANDBOX"] = "weak"
    yield
    if old is None:
        os.environ.pop("BPTTCHECK_SANDBOX", None)
    else:
        os.environ["BPTTCHECK_SANDBOX"] = old


@pytest.fixture(scope="module")
def scheduler(_fallback_isolation):
    """A LocalCluster of two worker processes (one thread each) as `local:N` starts it, used
    by its address as a remote cluster would be."""
    with cluster.connect("local:2") as client:
        yield client.scheduler.address


@pytest.mark.slow
def test_a_submission_that_kills_its_dask_worker_is_an_error_and_the_rest_are_graded(
        local_grade, scheduler, tmp_path):
    k, local = local_grade
    killers = tmp_path / "class"
    shutil.copytree(k, killers)
    (killers / "zed.py").write_text(KILLER + (REF / "rnn_functional.py").read_text())
    out = tmp_path / "out"
    rows = grade(str(killers), settings(timeout=TIMEOUT), str(out), progress=False,
                 tell=lambda m: None, cluster=scheduler)
    by = {r.student: r for r in rows}
    assert (by["zed"].verdict, by["zed"].error_kind, by["zed"].score) == ("error", "killed", 0.0)
    report = json.loads((out / "zed" / "report.json").read_text())
    message = report["error"]["message"]
    assert "died while checking it" in message and "with no other submission running" in message
    assert re.search(r"(\d+) times in all", message)
    mine, theirs = outputs(out, killers), outputs(local, k)
    for student in ("alice", "bob", "carol", "dan", "erin", "frank", "gina"):
        for name in ("report.json", "report.html"):
            rel = f"{student}/{name}"
            assert mine[rel] == theirs[rel], rel


@pytest.mark.slow
def test_the_secret_stays_on_the_client_and_seeds_each_check_as_locally(
        local_grade, scheduler, tmp_path, monkeypatch):
    k, _ = local_grade
    secret = "staff-only-7f3a"
    small = tmp_path / "class"
    small.mkdir()
    shutil.copy(k / "alice.py", small / "alice.py")
    shutil.copy(k / "bob.py", small / "bob.py")
    monkeypatch.setenv("BPTTCHECK_SECRET", secret)
    s = settings(timeout=TIMEOUT)
    assert s.opts.secret == secret
    for sub in discover(str(small), str(tmp_path / "x"), None):
        task = pickle.dumps(cluster.shipment(sub, s, html=False))
        assert secret.encode() not in task  # what travels to a worker
    tags = {}
    for where in ("local", scheduler):
        out = tmp_path / where.replace(":", "_").replace("/", "_")
        grade(str(small), s, str(out), jobs=2, html=False, progress=False,
              tell=lambda m: None, cluster=None if where == "local" else where)
        for student in ("alice", "bob"):
            rep = json.loads((out / student / "report.json").read_text())
            assert rep["seed"] is None and re.fullmatch(r"[0-9a-f]{8}", rep["case_tag"])
            tags.setdefault(student, set()).add((rep["case_tag"], rep["verdict"]))
    assert all(len(v) == 1 for v in tags.values()), tags  # the same case tag and verdict
    assert tags["alice"] != tags["bob"]


def test_cluster_flag_usage_errors_say_what_to_give(tmp_path):
    assert cluster.parse("local:3") == ("local", 3)
    assert cluster.parse("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:x", "10.0.0.5:8786", "scheduler", ""):
        with pytest.raises(UsageError, match="--cluster"):
            cluster.parse(bad)
    k = tmp_path / "class"
    k.mkdir()
    shutil.copy(REF / "rnn_functional.py", k / "alice.py")
    res = subprocess.run([sys.executable, "-m", "bpttcheck", "grade", str(k), "--out",
                          str(tmp_path / "o"), "--cluster", "local:2", "--jobs", "2"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--jobs" in res.stderr and "--cluster" in res.stderr
    assert not (tmp_path / "o").exists()


def test_a_worker_never_writes_outside_the_folder_it_unpacks_into(tmp_path):
    for rel in ("../evil.py", "/tmp/evil.py", "a/../../evil.py", "a//b.py"):
        with pytest.raises(ValueError, match="outside its folder"):
            cluster._unpack({rel: b"x"}, str(tmp_path / f"r{abs(hash(rel))}"))
    cluster._unpack({"a/b.py": b"x", "c.txt": b"y"}, str(tmp_path / "ok"))
    assert (tmp_path / "ok" / "a" / "b.py").read_bytes() == b"x"


def test_a_reply_that_is_not_a_row_is_bpttchecks_failure_not_a_grade():
    good = {"student": "a", "file": "a.py", "verdict": "pass", "score": 1.0, "max_score": 1.0,
            "percent": 100.0, "top_diagnosis": "", "confidence": "", "error_kind": "",
            "seconds": 0.1, "report": "a/report.html", "diagnoses": [], "top_title": "",
            "note": "", "arch": "rnn", "style": "functional", "checks": {}}
    assert cluster._row_from(good) is not None
    assert cluster._row_from({**good, "score": "1"}) is None
    assert cluster._row_from({**good, "verdict": True}) is None
    assert cluster._row_from({k: v for k, v in good.items() if k != "note"}) is None
    assert cluster._row_from("a row") is None


@pytest.mark.slow
def test_a_dask_worker_lost_mid_check_has_its_submission_checked_on_another(scheduler, tmp_path):
    """Dask's own resilience: the worker running a check is killed from outside (a node taken
    away); the scheduler runs the task again on the other worker and the row is as if nothing
    had happened."""
    import signal
    import threading
    import time

    from distributed import Client
    k = tmp_path / "class"
    k.mkdir()
    (k / "slow.py").write_text("import time\ntime.sleep(3)\n" + (REF / "rnn_functional.py").read_text())
    out = tmp_path / "out"
    done: dict = {}
    t = threading.Thread(target=lambda: done.update(rows=grade(
        str(k), settings(timeout=TIMEOUT), str(out), html=False, progress=False,
        tell=lambda m: None, cluster=scheduler)))
    t.start()
    with Client(scheduler) as client:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            busy = {w: keys for w, keys in client.processing().items()
                    if any(str(x).startswith("bpttcheck-") for x in keys)}
            victim = next(iter(busy), None)
            time.sleep(0.2)
        assert victim is not None, "the task never started"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
    t.join(timeout=300)
    (row,) = done["rows"]
    assert (row.student, row.verdict, row.error_kind) == ("slow", "pass", "")
