"""Grading a class: every submission in a folder checked in parallel, a report per student,
an index page and a CSV gradebook. A crashing or hanging submission costs only its own limits."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from typing import TextIO

from bpttcheck.errors import BpttcheckError, UsageError
from bpttcheck.formatting import csv_cell, natural_key
from bpttcheck.output import write_atomic
from bpttcheck.settings import Settings

CODE = (".py", ".ipynb", ".c", ".so")  # .ipynb_checkpoints/ copies are hidden folders: skipped
ENTRY_HINTS = ("def lossFun", "def loss_and_grads", "def loss_fun", "def forward", "def backward",
               "def rnn_step_forward", "def rnn_forward", "def lstm_forward", "def lstm_step_forward",
               "bpttcheck_", "lossFun", "def rnn_cell_forward", "def lstm_cell_forward",
               "def rnn_backward", "def bptt", "class TimeRNN", "class TimeLSTM")
CSV_FIELDS = ("student", "file", "verdict", "score", "max_score", "percent", "top_diagnosis",
              "confidence", "error_kind", "seconds", "report")


@dataclass
class Submission:
    student: str
    path: str | None  # None: nothing to check was found in the student's folder
    problem: str = ""
    flat: bool = False  # a file at the top of the class folder, not a folder of its own
    kind: str = "missing"  # why path is None: "missing", "ambiguous" or "forbidden"
    folder: str = ""  # its report folder under --out: distinct for every submission


@dataclass
class Row:
    student: str
    file: str
    verdict: str
    score: float
    max_score: float
    percent: float
    top_diagnosis: str
    confidence: str
    error_kind: str
    seconds: float
    report: str
    diagnoses: list
    top_title: str


def discover(folder: str, out: str, entry: str | None) -> list[Submission]:
    """One submission per code file at the top of the folder and one per sub-folder (the
    student's folder: its model file is ``entry`` if given, else the one code file that looks
    like a model). Hidden files, our output folder and data files are skipped."""
    out_real = os.path.realpath(out)
    subs: list[Submission] = []
    seen: dict[str, int] = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if name.startswith((".", "_")) or os.path.realpath(p) == out_real:
            continue
        if os.path.islink(p) and (os.path.isdir(p) or name.endswith(CODE)):
            stem = name if os.path.isdir(p) else os.path.splitext(name)[0]
            subs.append(Submission(stem, None, _link_problem(name, p, "its own place in the class folder"),
                                   kind="forbidden"))
        elif os.path.isdir(p):
            subs.append(_in_folder(name, p, entry))
        elif name.endswith(CODE) and os.path.isfile(p):
            if name.endswith(".so") and os.path.exists(p[:-3] + ".c"):
                continue  # a build product next to its source
            stem = os.path.splitext(name)[0]
            subs.append(Submission(stem, p, flat=True))
    for s in subs:  # alice.py and alice.c: keep both, named apart
        seen[s.student] = seen.get(s.student, 0) + 1
    for s in subs:
        if seen[s.student] > 1 and s.path:
            s.student = os.path.basename(s.path)
    _name_folders(subs)
    return subs


def _name_folders(subs: list[Submission]) -> None:
    """A report folder per submission, readable and distinct: the student's name made safe
    (_safe), with a short hash of the exact name added when two names make the same folder
    (``alice.py`` and ``alice..py``; also names that differ in case only, for file systems
    that ignore it) to every name but one whose folder is its name unchanged. The hash depends
    only on the name: the same class gets the same folders."""
    taken: dict[str, int] = {}
    for s in subs:
        base = _safe(s.student)
        taken[base.casefold()] = taken.get(base.casefold(), 0) + 1
    used = {"grades.csv", "index.html"}  # the class's own files beside the report folders
    for s in subs:
        base = _safe(s.student)
        name = base
        if (taken[base.casefold()] > 1 and s.student != base) or base.casefold() in used:
            digest = hashlib.sha256(s.student.encode("utf-8", "surrogateescape")).hexdigest()
            n = 6
            name = f"{base}-{digest[:n]}"
            while name.casefold() in used:  # never in practice; kept total all the same
                n += 2
                name = f"{base}-{digest[:n]}" if n <= 64 else f"{base}-{digest}-{n}"
        used.add(name.casefold())
        s.folder = name


def _link_problem(shown: str, link: str, where: str) -> str:
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return (f"{shown} is a symbolic link to {target}, outside {where}: a submission is graded "
            f"on its own files only, never on another student's or on a file elsewhere; copy "
            f"the file in instead of linking it")


def _links_out(folder: str, limit: int = 20_000) -> list[str]:
    """The symbolic links in a student's folder (as deep as staging copies it) whose target
    lies outside the folder: staging would copy another student's file, or any file the
    grader can read, as this student's."""
    from bpttcheck.sandbox.staging import MAX_DEPTH
    real = os.path.realpath(folder)
    bad, seen = [], 0
    for root, dirs, names in os.walk(folder):
        depth = root.count(os.sep) - folder.count(os.sep)
        for n in dirs + names:
            seen += 1
            p = os.path.join(root, n)
            if os.path.islink(p):
                target = os.path.realpath(p)
                if target != real and not target.startswith(real + os.sep):
                    bad.append(p)
        dirs[:] = [d for d in dirs if depth < MAX_DEPTH]
        if seen > limit:
            break
    return bad


def _in_folder(student: str, folder: str, entry: str | None) -> Submission:
    links = _links_out(folder)
    if links:
        first = os.path.relpath(links[0], os.path.dirname(folder))
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        return Submission(student, None, _link_problem(first, links[0], f"{student}/") + more,
                          kind="forbidden")
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")) and
                         root.count(os.sep) - folder.count(os.sep) < 2)
        found += [os.path.join(root, n) for n in sorted(names) if n.endswith(CODE)
                  and not n.startswith(("test_", "_", "."))]
    if entry:
        named = [p for p in found if os.path.basename(p) == entry]
        if named:
            return Submission(student, named[0])
        return Submission(student, None, f"no file named {entry} in {student}/ "
                                         f"(the spec's assignment.file)")
    if len(found) == 1:
        return Submission(student, found[0])
    models = [p for p in found if _looks_like_model(p)]
    if len(models) == 1:
        return Submission(student, models[0])
    if models:
        listed = ", ".join(os.path.relpath(p, folder) for p in models)
        return Submission(student, None, f"{len(models)} files in {student}/ define an entry "
                                         f"point ({listed}): bpttcheck will not guess which one "
                                         f"is meant; name it in the spec (assignment.file)",
                          kind="ambiguous")
    if not found:
        return Submission(student, None, f"no .py, .ipynb, .c or .so file in {student}/")
    return Submission(student, None, f"{len(found)} code files in {student}/ and none defines a "
                                     f"known entry point; name the file in the spec "
                                     f"(assignment.file)")


def _looks_like_model(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(200_000).decode("utf-8", "replace")
    except OSError:
        return False
    return any(h in head for h in ENTRY_HINTS)


def _safe(name: str) -> str:
    """A folder name made of letters, digits, ``-``, ``_`` and ``.``, never starting with
    ``-`` (an option to a shell command, a formula to a spreadsheet) nor ``.`` (hidden)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    keep = keep.strip(".")
    if keep.startswith("-"):
        keep = "_" + keep[1:]
    return keep or "submission"


def grade_one(sub: Submission, s: Settings, out: str, html: bool) -> Row:
    """Check one submission and write its reports (runs in a pool process)."""
    from bpttcheck import report_json, scoring
    from bpttcheck.check import engine
    from bpttcheck.result import ErrorInfo, Report

    t0 = time.perf_counter()
    if sub.path is None:
        report = Report(verdict="error", path=sub.student,
                        error=ErrorInfo(kind=sub.kind, message=sub.problem))
    else:
        # a class's reports skip the entry-wise finite-difference maps (4 calls per parameter):
        # `bpttcheck run FILE --html` draws them for the one submission someone looks into
        opts = engine.Options(**{**s.opts.__dict__, "views": html, "views_fd": False})
        if sub.flat:  # one file per student side by side: copy the data files, not the others' code
            opts.limits = replace(opts.limits, copy="data")
        try:
            report = engine.check(sub.path, opts)
        except Exception as e:  # noqa: BLE001 - our bug: record it, grade the others
            report = Report(verdict="error", path=sub.path,
                            error=ErrorInfo(kind="internal",
                                            message=f"bpttcheck failed on this submission: "
                                                    f"{type(e).__name__}: {e}"))
    folder = sub.folder or _safe(sub.student)
    d = os.path.join(out, folder)
    write_atomic(os.path.join(d, "report.json"), report_json.render(report))
    href = f"{folder}/report.json"
    if html:
        from bpttcheck import report_html
        write_atomic(os.path.join(d, "report.html"), report_html.render(report))
        href = f"{folder}/report.html"
    score, max_score = scoring.score(report, s.points, s.opts.arch, s.opts.style)
    top = report.diagnoses[0] if report.diagnoses else None
    return Row(student=sub.student, file=sub.path or "", verdict=report.verdict,
               score=round(score, 3), max_score=round(max_score, 3),
               percent=round(100 * score / max_score, 1) if max_score else 0.0,
               top_diagnosis=top.id if top else "",
               confidence=f"{top.confidence:.2f}" if top else "",
               error_kind=report.error.kind if report.error else "",
               seconds=round(time.perf_counter() - t0, 3), report=href,
               diagnoses=[x.id for x in report.diagnoses if x.confidence >= 0.5],
               top_title=top.title if top else (_clip(report.error.message) if report.error else ""))


class Progress:
    """Where `grade` says how far it is: on a terminal, rich's live bar with a line per finished
    submission above it; anywhere else (a CI log, a file) one plain line per submission, free of
    control characters. A context manager: the bar is stopped however grading ends."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.bar = None
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar
            # drawn when told (step, refresh), never by a thread of its own: grading forks a
            # process per submission, and a fork must not copy a lock another thread holds
            self.bar = Bar(TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=Console(file=self.stream),
                           auto_refresh=False)
            self.task = self.bar.add_task("grading", total=total)

    def __enter__(self) -> Progress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def step(self, row: Row) -> None:
        self.done += 1
        what = row.top_diagnosis or row.error_kind or ""
        line = _printable(f"[{self.done}/{self.total}] {row.student}: {row.verdict} {what}".rstrip())
        if self.bar:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
            self.bar.advance(self.task)
            self.bar.refresh()
        else:
            self.stream.write(line + "\n")
            self.stream.flush()


    def refresh(self) -> None:
        """Redraw the bar (its elapsed time) between steps."""
        if self.bar:
            self.bar.refresh()


def _printable(text: str) -> str:
    """A student's name is a file name, which may hold any character but / and NUL."""
    return "".join(c if c.isprintable() else "?" for c in text)


def grade(folder: str, s: Settings, out: str, jobs: int | None = None, html: bool = True,
          progress: bool = True) -> list[Row]:
    if not os.path.isdir(folder):
        raise UsageError(f"{folder} is not a folder of submissions")
    if os.path.realpath(out) == os.path.realpath(folder):
        raise UsageError("--out must not be the submissions folder: reports would be written "
                         "among the students' files. Give a new folder, e.g. --out graded")
    subs = discover(folder, out, s.entry)
    if not subs:
        raise UsageError(f"{folder} holds no submissions (.py, .c or .so files, or one folder "
                         f"per student)")
    os.makedirs(out, exist_ok=True)
    jobs = max(1, jobs or os.cpu_count() or 1)
    # C builds of this run go to a folder only this run writes (mode 0700, removed at the
    # end), never to the user's cache, which earlier code run as the same user could have
    # written to; one student's build cannot stand in for another's
    so_cache = tempfile.mkdtemp(prefix="bpttcheck-so-")
    run = replace(s, opts=replace(s.opts, so_cache=so_cache))
    try:
        with Progress(len(subs)) if progress else nullcontext() as bar:
            rows = _collect(subs, run, out, html, min(jobs, len(subs)), bar)
    finally:
        shutil.rmtree(so_cache, ignore_errors=True)

    rows = one_maximum(rows, s)
    rows.sort(key=lambda r: natural_key(r.student))
    write_atomic(os.path.join(out, "grades.csv"), _csv(rows))
    if html:
        from bpttcheck import report_html
        entries = [{"student": r.student, "report": r.report, "verdict": r.verdict,
                    "score": r.score, "max_score": r.max_score,
                    "top_diagnosis": r.top_diagnosis or None, "top_title": r.top_title or None,
                    "diagnoses": r.diagnoses, "error_kind": r.error_kind or None,
                    "seconds": r.seconds} for r in rows]
        write_atomic(os.path.join(out, "index.html"),
                     report_html.render_index(entries, f"bpttcheck: {os.path.basename(os.path.abspath(folder))}"))
    return rows


class GradeError(BpttcheckError):
    """The class could not be graded to the end (exit 4): no row is written as if it were."""


def _collect(subs: list[Submission], run: Settings, out: str, html: bool, jobs: int,
             bar: Progress | None) -> list[Row]:
    """A row for every submission, in order. Each is checked in a process of its own (forked:
    numpy and bpttcheck already imported), at most ``jobs`` at a time, so a submission that
    kills the process checking it, or a neighbour's, costs no other student anything. A
    submission whose process died without its row is checked again alone, once the others
    are done, with nothing else running; a second death is its own doing (error ``killed``).
    This process is a subreaper: what a dead check leaves behind comes back here and is
    killed (sandbox/proctree.py)."""
    from bpttcheck.sandbox import proctree
    _warm(html)
    since = proctree.now_ticks()
    proctree.become_subreaper()
    rows: dict[int, Row] = {}
    lost = _run_batch(list(range(len(subs))), subs, run, out, html, jobs, bar, rows, since)
    killed = {}
    for i in lost:
        killed.update(_run_batch([i], subs, run, out, html, 1, bar, rows, since))
    if len(killed) == len(subs) >= 3:  # not a class of saboteurs: this machine kills them
        raise GradeError(f"the process checking each of the {len(subs)} submissions died, "
                         f"twice ({next(iter(killed.values()))}); that is no student's doing "
                         f"(out of memory? a process limit?). No grades.csv was written")
    for i, how in killed.items():
        rows[i] = _killed_row(subs[i], run, out, html, how)
        if bar:
            bar.step(rows[i])
    proctree.kill_strays(since)
    return [rows[i] for i in range(len(subs))]


def _warm(html: bool) -> None:
    """Import once, before the forks, what every check imports on the way (the checking room,
    the reference, numpy.random, psutil): each forked process would pay for it again."""
    import importlib
    import pkgutil

    import numpy.random  # noqa: F401
    import psutil  # noqa: F401

    import bpttcheck.check
    import bpttcheck.oracle
    from bpttcheck import plugins, report_json, scoring  # noqa: F401
    from bpttcheck.sandbox import protocol  # noqa: F401
    for pkg in (bpttcheck.check, bpttcheck.oracle):
        for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(m.name)
    plugins.adapters()
    plugins.architectures()
    if html:
        from bpttcheck import report_html  # noqa: F401


def _run_batch(todo: list[int], subs: list[Submission], run: Settings, out: str, html: bool,
               jobs: int, bar: Progress | None, rows: dict[int, Row],
               since: int) -> dict[int, str]:
    """Check ``subs[i]`` for each i in ``todo`` (at most ``jobs`` processes at a time) and put
    the rows that come back in ``rows``; returns {i: how its process ended} for those whose
    process ended without one."""
    from multiprocessing.connection import wait

    from bpttcheck.sandbox import proctree
    ctx = multiprocessing.get_context("fork")
    queue = list(reversed(todo))
    running: dict = {}  # the pipe a row comes back on -> (index, process)
    lost: dict[int, str] = {}
    while queue or running:
        while queue and len(running) < jobs:
            i = queue.pop()
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_check_in_child, args=(send, subs[i], run, out, html),
                               daemon=True)
            try:
                proc.start()
            except OSError as e:
                raise GradeError(f"grade could not start a process to check {subs[i].student} "
                                 f"({e}); no grades.csv was written. Free some memory or "
                                 f"processes, or lower --jobs, and run it again") from None
            send.close()
            proctree.started(proc.pid or 0)
            running[receive] = (i, proc)
        for conn in wait(list(running), timeout=1.0):
            i, proc = running.pop(conn)
            row = _receive(conn, subs[i])
            conn.close()  # type: ignore[union-attr]  # a Connection: the keys of running
            proc.join(timeout=30)
            if proc.exitcode is None:  # sent its row and hangs on the way out
                proc.kill()
                proc.join()
            proctree.ended(proc.pid)
            proctree.kill_strays(since)  # what it left, if it died before its own clean-up
            if row is None:
                lost[i] = _ended(proc.exitcode)
                continue
            rows[i] = row
            if bar:
                bar.step(row)
        if bar:
            bar.refresh()
    return lost


def _check_in_child(conn, sub: Submission, run: Settings, out: str, html: bool) -> None:
    """In the forked process: grade one submission, send its row back as JSON (never a
    pickle: the pipe is no more trusted than the submission's own process)."""
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # not the parent's live bar
    try:
        data: dict = asdict(grade_one(sub, run, out, html))
    except Exception as e:  # noqa: BLE001 - our bug (a report that cannot be written): that row only
        data = {"internal": f"{type(e).__name__}: {e}"}
    conn.send_bytes(json.dumps(data).encode("utf-8"))
    conn.close()


_ROW_TYPES = {"str": (str,), "float": (int, float), "list": (list,), "int": (int,),
              "bool": (bool,)}


def _receive(conn, sub: Submission) -> Row | None:
    """The row a child sent, or None when it sent none (it died) or something that is not
    a row (something else wrote to the pipe)."""
    try:
        data = json.loads(conn.recv_bytes(maxlength=16 << 20).decode("utf-8"))
    except (EOFError, OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("internal"), str) and len(data) == 1:
        return Row(sub.student, sub.path or "", "error", 0.0, 0.0, 0.0, "", "", "internal",
                   0.0, "", [], f"bpttcheck failed on this submission: {data['internal']}")
    names = {f.name: f.type for f in fields(Row)}
    if not isinstance(data, dict) or set(data) != set(names):
        return None
    for name, kind in names.items():
        ok = _ROW_TYPES.get(str(kind))
        if ok and (not isinstance(data[name], ok) or
                   (isinstance(data[name], bool) and bool not in ok)):
            return None
    return Row(**data)


def _ended(code: int | None) -> str:
    """How a process ended, for a message."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _killed_row(sub: Submission, run: Settings, out: str, html: bool, how: str) -> Row:
    """The row (and report) of a submission whose checking process died twice, the second
    time with nothing else running."""
    from bpttcheck.errors import ErrorKind
    message = (f"the process bpttcheck checked this submission in ended without a result "
               f"({how}), twice: the second time it was checked alone, with no other "
               f"submission running. Its code ended bpttcheck's own process (a signal to a "
               f"parent process, or to every process it could see). A submission may only "
               f"compute; it is graded as an error")
    row = grade_one(replace(sub, path=None, kind=ErrorKind.KILLED, problem=message), run, out,
                    html)
    row.file = sub.path or ""
    return row


def _clip(text: str, n: int = 200) -> str:
    """At most n characters, cut at a word, with an ellipsis when cut."""
    if len(text) <= n:
        return text
    return text[:n].rsplit(" ", 1)[0] + " …"


def one_maximum(rows: list[Row], s: Settings) -> list[Row]:
    """Every row of a class out of the same maximum. With the assignment's architecture known
    (spec or --arch) the rows already agree. Without it, the class maximum is the one most
    checked submissions have (the largest on a tie; with none checked, the rule of
    scoring.max_score); a row checked against another maximum (a class mixing RNNs and LSTMs)
    keeps its percentage, its score rescaled to the class maximum."""
    from bpttcheck import scoring
    checked = [r.max_score for r in rows if not r.error_kind]
    if checked:
        top = max(set(checked), key=lambda m: (checked.count(m), m))
    else:
        top = round(scoring.max_score(s.points, s.opts.arch, s.opts.style), 3)
    for r in rows:
        if r.max_score != top:
            r.score = round(r.score * top / r.max_score, 3) if r.max_score else 0.0
            r.max_score = top  # the percentage stays as it was
    return rows


def _csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_cell(v) for k, v in asdict(r).items()})
    return buf.getvalue()
