"""Grading a class on a Dask cluster (`bpttcheck grade DIR --cluster ADDRESS`): each
submission's check is a task on a Dask worker, checked there exactly as a local `grade` checks
it (grade.check_one and grade.finish_one: a bpttcheck worker process in its sandbox, below the
Dask worker), and its row and report texts come back to be written here.

No shared file system is assumed: the client stages each submission as a local check would
(sandbox/staging.py, within its limits) and sends the staged files as bytes; the worker
unpacks them into a folder of its own, checks, renders the reports and removes the folder. The
grading secret stays here: a task carries its submission's derived seed and case tag
(secret.py), never the secret. A Dask worker that dies while checking is replaced and its task
re-run by Dask (the scheduler's `allowed-failures`); a task Dask gives up on is run again alone
once the others are done, and a submission that kills its worker then too is graded as an
error of kind `killed`.

Dask is an optional extra (`pip install 'bpttcheck[cluster]'`): only the client's functions
import it, so a worker needs no more than bpttcheck and Dask's own worker."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, fields, replace

from bpttcheck.errors import BpttcheckError, UsageError
from bpttcheck.grade import Progress, Row, Submission, check_one, finish_one, grade_one
from bpttcheck.output import write_atomic
from bpttcheck.settings import Settings

KILLED = "killed"  # the error kind of a submission whose check kills the worker running it
LOCAL_ALLOWED_FAILURES = 1  # `local:N`: a task is re-run once on another worker, then given up
WINDOW_MIN, WINDOW_PER_THREAD = 1000, 8  # submissions in flight at once (see _window)
_INSTALL = "pip install 'bpttcheck[cluster]'"
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|ucx)://\S+")
_LOCAL = re.compile(r"local:(\d+)")


class ClusterError(BpttcheckError):
    """The cluster failed the whole grade (lost scheduler, workers that cannot run bpttcheck):
    no student's fault, so no row is written as if it were (exit 4)."""

    exit_code = 4


def parse(spec: str) -> tuple[str, str | int]:
    """``("local", N)`` for ``local:N``; ``("address", spec)`` for a scheduler's address."""
    m = _LOCAL.fullmatch(spec.strip())
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 512:
            raise UsageError(f"--cluster local:N starts N local Dask workers; N must be 1 to "
                             f"512, not {n}")
        return "local", n
    if _ADDRESS.fullmatch(spec.strip()):
        return "address", spec.strip()
    raise UsageError(f"--cluster {spec!r} is neither a Dask scheduler's address "
                     f"(tcp://HOST:8786) nor local:N (N local workers), e.g. --cluster "
                     f"tcp://scheduler.example.org:8786 or --cluster local:4")


def require() -> None:
    """A usage error, before anything is graded, when Dask distributed is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"--cluster needs Dask distributed, which is not installed: "
                         f"{_INSTALL}") from None


@contextlib.contextmanager
def connect(spec: str) -> Iterator:
    """A Dask client of the scheduler ``spec`` names (``local:N``: a LocalCluster of N worker
    processes with one thread each, started here and closed at the end)."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(f"--cluster needs Dask distributed, which is not installed: "
                         f"{_INSTALL}") from None
    kind, where = parse(spec)
    if kind == "local":
        # one thread a worker: a submission that kills its Dask worker takes no neighbour
        # with it; the scheduler re-runs a task whose worker died once on another worker
        # and no statistical profiler sampling each check's thread every 10 ms: nobody reads
        # its profiles here, and on few cores it takes time from the checks
        with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
                              "distributed.worker.profile.enabled": False}), \
                LocalCluster(n_workers=int(where), threads_per_worker=1, processes=True,
                             dashboard_address=None, silence_logs=50) as lc, \
                Client(lc) as client:
            yield client
        return
    try:
        client = Client(str(where), timeout="20s")
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--cluster {where}: cannot reach the Dask scheduler there ({e}); is "
                         f"it running, and is its port open from here?") from None
    with client:
        yield client


def check_on_cluster(spec: str, subs: list[Submission], s: Settings, out: str, html: bool,
                     progress: bool) -> list[Row]:
    """A row for every submission, in order, each checked on the cluster ``spec`` names and
    its reports written under ``out`` (grade.grade writes the class's files from the rows)."""
    with connect(spec) as client:
        _same_bpttcheck(client)
        with Progress(len(subs)) if progress else contextlib.nullcontext() as bar:
            return _Run(client, subs, s, out, html, bar).rows()


def _same_bpttcheck(client) -> None:
    """Every worker there is now runs this version of bpttcheck (a worker that joins later is
    told by its first task): a report must not depend on which worker wrote it."""
    from bpttcheck import __version__
    try:
        found = client.run(_worker_version)
    except Exception as e:  # noqa: BLE001 - a worker that cannot import us fails to unpickle
        raise ClusterError(f"the Dask workers cannot run bpttcheck ({type(e).__name__}: "
                           f"{str(e)[:200]}): install bpttcheck {__version__} on every "
                           f"worker ({_INSTALL})") from None
    other = {w: v for w, v in found.items() if v != __version__}
    if other:
        listed = ", ".join(f"{w} has {v}" for w, v in sorted(other.items())[:5])
        raise ClusterError(f"the Dask workers must run bpttcheck {__version__}, as this "
                           f"client does: {listed}")


def _worker_version() -> str:
    """The worker's bpttcheck version, the modules every check needs imported on the way
    (once per worker process, before its first task rather than during it)."""
    from bpttcheck import __version__, report_html, report_json  # noqa: F401
    from bpttcheck.check import engine  # noqa: F401
    return __version__


class _Run:
    """One grading on a cluster: submissions staged and sent a window at a time, rows taken
    as they come back, lost tasks re-run alone at the end."""

    def __init__(self, client, subs: list[Submission], s: Settings, out: str, html: bool,
                 bar: Progress | None):
        self.client, self.subs, self.s, self.out, self.html, self.bar = (
            client, subs, s, out, html, bar)
        self.found: dict[int, Row] = {}
        self.deaths: dict[int, int] = {}  # submission -> workers that died running it
        self.tag = uuid.uuid4().hex[:8]

    def rows(self) -> list[Row]:
        todo = []
        for i, sub in enumerate(self.subs):
            if sub.path is None:  # nothing to check: its error report is written here
                self._done(i, grade_one(sub, self.s, self.out, self.html))
            else:
                todo.append(i)
        lost = self._batch(todo, self._window())
        for i in lost:  # alone, nothing else of ours running: was it this submission?
            first = self.deaths.pop(i)
            if self._batch([i], 1):
                self._done(i, self._killed(self.subs[i], (first, self.deaths[i])))
        return [self.found[i] for i in range(len(self.subs))]

    def _window(self) -> int:
        """How many submissions are sent before their rows come back: enough to keep every
        worker thread busy (and an adaptive cluster growing), few enough that a class of
        100,000 is never held in the scheduler's memory at once."""
        threads = sum(self.client.nthreads().values())
        return max(WINDOW_MIN, WINDOW_PER_THREAD * threads)

    def _batch(self, todo: list[int], window: int) -> list[int]:
        """Check ``subs[i]`` for each i in ``todo``, at most ``window`` in flight; returns
        the ones Dask gave up on because the workers running them died."""
        from distributed import KilledWorker, as_completed
        queue = list(reversed(todo))
        running: dict = {}
        lost: list[int] = []
        pending = as_completed()
        while queue or running:
            while queue and len(running) < window:
                i = queue.pop()
                fut = self.client.submit(check_shipped, self._task(i), pure=False,
                                         key=f"bpttcheck-{self.tag}-{i}-{uuid.uuid4().hex[:6]}")
                running[fut.key] = i
                pending.add(fut)
            fut = next(pending)
            i = running.pop(fut.key)
            try:
                data = fut.result()
            except KilledWorker as e:
                self.deaths[i] = e.allowed_failures + 1
                lost.append(i)
                continue
            except Exception as e:  # noqa: BLE001 - the cluster's failure, not the student's
                self._cluster_failed(e)
            finally:
                fut.release()
            self._done(i, self._received(self.subs[i], data))
        return lost

    def _cluster_failed(self, e: Exception) -> None:
        from concurrent.futures import CancelledError
        if isinstance(e, CancelledError):
            raise ClusterError("the Dask scheduler dropped this grading's tasks (was it "
                               "restarted, or the connection lost?); no grades.csv was "
                               "written: grade again") from None
        raise ClusterError(f"a Dask task failed outside bpttcheck ({type(e).__name__}: "
                           f"{str(e)[:300]}); no grades.csv was written") from None

    def _task(self, i: int) -> dict:
        return shipment(self.subs[i], self.s, self.html)

    def _done(self, i: int, row: Row) -> None:
        self.found[i] = row
        if self.bar:
            self.bar.step(row)

    def _received(self, sub: Submission, data) -> Row:
        """The row a worker sent, its report texts written under out/<folder>/; a reply that
        is not what check_shipped sends is bpttcheck's failure on this submission."""
        row = _row_from(data.get("row") if isinstance(data, dict) else None)
        files = data.get("files") if isinstance(data, dict) else None
        names = {"report.json", "report.html"} if self.html else {"report.json"}
        if isinstance(data, dict) and isinstance(data.get("internal"), str):
            why = data["internal"]
        elif row is None or not isinstance(files, dict) or set(files) != names or not all(
                isinstance(v, str) for v in files.values()):
            why = "the Dask worker's reply is not a row and its reports"
        else:
            for name in sorted(names):
                write_atomic(os.path.join(self.out, sub.folder, name), files[name])
            row.report = f"{sub.folder}/report.html" if self.html else f"{sub.folder}/report.json"
            return row
        internal = replace(sub, path=None, kind="internal",
                           problem=f"bpttcheck failed on this submission on a Dask worker: {why}")
        row = grade_one(internal, self.s, self.out, self.html)
        row.file = sub.path or ""
        return row

    def _killed(self, sub: Submission, deaths: tuple[int, int]) -> Row:
        first, alone = deaths
        message = (f"the Dask worker checking this submission died while checking it, "
                   f"{first + alone} times in all, on another worker each time: {first} while "
                   f"the class was checked, then {alone} with no other submission running. Its "
                   f"code ended the process that ran bpttcheck (a signal to a parent process, "
                   f"or to every process it could see). A submission may only compute; it is "
                   f"graded as an error")
        row = grade_one(replace(sub, path=None, kind=KILLED, problem=message), self.s, self.out,
                        self.html)
        row.file = sub.path or ""
        return row


# ---------------------------------------------------------------- what travels, both ends

def shipment(sub: Submission, s: Settings, html: bool) -> dict:
    """The task for one submission: its staged files as bytes by relative path (what a local
    check would copy, within staging's budget), the settings without the secret (its seed and
    case tag derived here instead), and where the files came from (for the report's paths)."""
    from bpttcheck import __version__
    from bpttcheck.sandbox.staging import copy_submission, root_of
    assert sub.path is not None
    mode = "data" if sub.flat else s.opts.limits.copy
    run_from = s.opts.limits.run_from
    opts = s.opts
    if opts.secret:
        from bpttcheck.secret import case_tag, submission_seed
        try:
            with open(sub.path, "rb") as f:
                content = f.read()
        except OSError:
            content = b""  # as engine._hidden_case: the check says what is wrong with the file
        seed = submission_seed(opts.secret, content)
        opts = replace(opts, seed=seed, case_tag=case_tag(opts.secret, seed))
    opts = replace(opts, secret=None, so_cache=None)
    tmp = tempfile.mkdtemp(prefix="bpttcheck-ship-")
    try:
        staged = copy_submission(sub.path, tmp, mode, run_from)
        files = {}
        for root, _, names in os.walk(tmp):
            for n in names:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    files[os.path.relpath(p, tmp)] = f.read()
        rel = os.path.relpath(staged, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"version": __version__, "sub": asdict(sub), "file": rel, "files": files,
            "origin": root_of(sub.path, mode, run_from), "settings": replace(s, opts=opts),
            "html": html}


def check_shipped(task: dict) -> dict:
    """On the Dask worker: unpack the submission into a folder of its own, check it as a
    local grade does, and return its row and report texts (plain JSON data)."""
    from bpttcheck import __version__
    if task.get("version") != __version__:
        return {"internal": f"this Dask worker runs bpttcheck {__version__}, the client "
                            f"{task.get('version')}: install the same version on every worker"}
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="bpttcheck-task-")
    try:
        root = os.path.join(tmp, "submission")
        _unpack(task["files"], root)
        sub = Submission(**task["sub"])
        here = replace(sub, path=os.path.join(root, task["file"]))
        s: Settings = task["settings"]
        so = os.path.join(tmp, "so")
        os.mkdir(so, 0o700)  # C builds of this task only
        s = replace(s, opts=replace(s.opts, so_cache=so))
        report = _relocated(check_one(here, s, task["html"]), here.path or "", sub.path or "",
                            root, task["origin"])
        files: dict[str, str] = {}
        row = finish_one(sub, s, report, "", task["html"], t0, files)
        return {"row": asdict(row), "files": files}
    except Exception as e:  # noqa: BLE001 - our bug or this worker's disk: that row only
        return {"internal": f"{type(e).__name__}: {e}"[:500]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unpack(files: dict, root: str) -> None:
    """Write the shipped files below ``root``: relative paths that stay inside it only."""
    os.makedirs(root)
    for rel, data in files.items():
        parts = rel.split("/") if isinstance(rel, str) else [""]
        if (not isinstance(data, bytes) or os.path.isabs(rel)
                or any(p in ("", ".", "..") for p in parts)):
            raise ValueError(f"a shipped file with a path outside its folder: {rel!r}")
        dest = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)


def _relocated(report, worker_path: str, client_path: str, root: str, origin: str):
    """The report as a local check writes it: the submission's path as the client gave it,
    and the worker's folder replaced by the client's in every message (tracebacks, compiler
    output, the located file)."""
    from bpttcheck.result import Report

    def swap(x):
        if isinstance(x, str):
            return x.replace(root, origin)
        if isinstance(x, list):
            return [swap(v) for v in x]
        if isinstance(x, dict):
            return {k: swap(v) for k, v in x.items()}
        return x

    data = swap(report.model_dump(mode="python"))
    if report.path == worker_path:
        data["path"] = client_path
    return Report.model_validate(data)


_ROW_TYPES = {"str": (str,), "float": (int, float), "list": (list,), "str | None": (str, type(None)),
              "dict[str, str]": (dict,)}


def _row_from(data) -> Row | None:
    """A Row from a worker's reply, or None when the reply is not one (a worker is trusted
    as far as Dask trusts it; a row is still checked field by field before it is written)."""
    kinds = {f.name: str(f.type) for f in fields(Row)}
    if not isinstance(data, dict) or set(data) != set(kinds):
        return None
    for name, kind in kinds.items():
        ok = _ROW_TYPES.get(kind)
        v = data[name]
        if ok is None or not isinstance(v, ok) or isinstance(v, bool):
            return None
    return Row(**data)

