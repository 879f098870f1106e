"""Grading a class: every submission in a folder checked in parallel, a report per student,
an index page and a CSV gradebook. A crashing or hanging submission costs only its own limits."""
from __future__ import annotations

import ast
import csv
import difflib
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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
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
              "confidence", "error_kind", "seconds", "report", "note")
GRADEBOOK = "grades.json"  # every row as data, and what the run was: what a regrade merges into
BOM = "\ufeff"  # --csv-bom: how spreadsheet programs on Windows recognise UTF-8


@dataclass
class Submission:
    student: str
    path: str | None  # None: nothing to check was found in the student's folder
    problem: str = ""
    flat: bool = False  # a file at the top of the class folder, not a folder of its own
    kind: str = "missing"  # why path is None: "missing", "ambiguous" or "forbidden"
    folder: str = ""  # its report folder under --out: distinct for every submission
    note: str = ""  # how the file was chosen, when it is not the one the spec names


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
    note: str = ""  # e.g. the spec's file was missing and the one code file there was graded
    arch: str | None = None  # the architecture the check found (None: it stopped before)
    style: str | None = None  # the style the check found (None: it stopped before)
    checks: dict[str, str] = field(default_factory=dict)  # scored check -> status, "not-run" too


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
    used = {"grades.csv", "index.html", GRADEBOOK}  # the class's own files beside the report folders
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
    return model_in_folder(student, folder, entry)


def model_in_folder(student: str, folder: str, entry: str | None) -> Submission:
    """The file to check in a student's folder (also `bpttcheck run FOLDER`): ``entry`` (the
    spec's assignment.file) when it is there; else the one code file; else the one that
    defines a known entry point, leaving out helpers when several do (a .py file another code
    file of the folder imports). When ``entry`` is missing and one file is so found, that
    file is checked and ``note`` says so."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")) and
                         root.count(os.sep) - folder.count(os.sep) < 2)
        found += [os.path.join(root, n) for n in sorted(names) if n.endswith(CODE)
                  and not n.startswith(("test_", "_", "."))]
    models = [p for p in found if _looks_like_model(p)]
    mains = [p for p in models if p not in _helpers(models)] if len(models) > 1 else models
    one = found[0] if len(found) == 1 else mains[0] if len(mains) == 1 else None
    if entry:
        named = [p for p in found if os.path.basename(p) == entry]
        if named:
            return Submission(student, named[0])
        if one:
            rel = os.path.relpath(one, folder)
            why = "the one code file there" if len(found) == 1 else (
                f"the one of its {len(found)} code files that defines an entry point"
                + (" and no other imports" if len(models) > 1 else ""))
            return Submission(student, one, note=(
                f"no {entry} (the spec's assignment.file) in {student}/: graded {rel}, {why}"))
        listed = ", ".join(os.path.relpath(p, folder) for p in found[:8]) or "none"
        return Submission(student, None, f"no file named {entry} in {student}/ (the spec's "
                                         f"assignment.file); code files there: {listed}")
    if one:
        return Submission(student, one)
    if models:
        amb = mains or models  # models that import each other: none is only a helper
        listed = ", ".join(os.path.relpath(p, folder) for p in amb)
        return Submission(student, None, f"{len(amb)} files in {student}/ define an entry "
                                         f"point ({listed}): bpttcheck will not guess which one "
                                         f"is meant; name it in the spec (assignment.file)",
                          kind="ambiguous")
    if not found:
        return Submission(student, None, f"no .py, .ipynb, .c or .so file in {student}/")
    return Submission(student, None, f"{len(found)} code files in {student}/ and none defines a "
                                     f"known entry point; name the file in the spec "
                                     f"(assignment.file)")


def _helpers(paths: list[str]) -> set[str]:
    """The .py files among ``paths`` that another of them imports (read, never run): a helper
    module beside the model (``from utils import softmax``, ``from . import layers``) is not a
    submission of its own."""
    by_module = {os.path.splitext(os.path.basename(p))[0]: p for p in paths if p.endswith(".py")}
    out: set[str] = set()
    for p in paths:
        if not p.endswith(".py"):
            continue
        for name in _imports(p):
            q = by_module.get(name)
            if q and q != p:
                out.add(q)
    return out


def _imports(path: str) -> set[str]:
    """Module names a Python file imports, the relative ones included (``from .x import y``:
    x; ``from . import x``: x)."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(1_000_000))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                names.add(node.module.split(".")[0])
            elif node.level:
                names |= {a.name for a in node.names}
    return names


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
    t0 = time.perf_counter()
    return finish_one(sub, s, check_one(sub, s, html), out, html, t0)


def check_one(sub: Submission, s: Settings, html: bool):
    """The engine's report on one submission (and its verified repair), before scoring: an
    error report naming the problem when nothing was found to check."""
    from bpttcheck.check import engine
    from bpttcheck.result import ErrorInfo, Report

    if sub.path is None:
        return Report(verdict="error", path=sub.student,
                      error=ErrorInfo(kind=sub.kind, message=sub.problem))
    # a class's reports skip the entry-wise finite-difference maps (4 calls per parameter):
    # `bpttcheck run FILE --html` draws them for the one submission someone looks into
    opts = engine.Options(**{**s.opts.__dict__, "views": html, "views_fd": False})
    if sub.flat:  # one file per student side by side: copy the data files, not the others' code
        opts.limits = replace(opts.limits, copy="data")
    try:
        report = engine.check(sub.path, opts)
        from bpttcheck import repair
        repair.attach(report, sub.path, opts)
    except Exception as e:  # noqa: BLE001 - our bug: record it, grade the others
        report = Report(verdict="error", path=sub.path,
                        error=ErrorInfo(kind="internal",
                                        message=f"bpttcheck failed on this submission: "
                                                f"{type(e).__name__}: {e}"))
    return report


def finish_one(sub: Submission, s: Settings, report, out: str, html: bool, t0: float,
               files: dict[str, str] | None = None) -> Row:
    """Score the report, apply what the spec lets the student see, write the reports (into
    ``files``, name -> text, instead when given: a cluster worker sends them back) and make
    the row."""
    from bpttcheck import scoring
    from bpttcheck.feedback import for_student
    from bpttcheck.result import Note

    if sub.note:
        report.notes.insert(0, Note(id="grade.other-file", title="Not the file the spec names",
                                    evidence=sub.note))
    scoring.attach(report, s.points, s.opts.arch, s.opts.style)
    report = for_student(report, s.feedback)  # the student's reports show what the spec lets
    folder = sub.folder or _safe(sub.student)
    href = _write_reports(report, out, folder, html, files)
    top = report.diagnoses[0] if report.diagnoses else None
    row = Row(student=sub.student, file=sub.path or "", verdict=report.verdict,
              score=0.0, max_score=0.0, percent=0.0,
              top_diagnosis=top.id if top else "",
              confidence=f"{top.confidence:.2f}" if top else "",
              error_kind=report.error.kind if report.error else "",
              seconds=round(time.perf_counter() - t0, 3), report=href,
              diagnoses=[x.id for x in report.diagnoses if x.confidence >= 0.5],
              top_title=top.title if top else (_clip(report.error.message) if report.error else ""),
              note=sub.note, arch=report.arch, style=report.style)
    return _scored(row, report)


def _write_reports(report, out: str, folder: str, html: bool,
                   files: dict[str, str] | None = None) -> str:
    """A student's report.json (and report.html), atomically, or their texts into ``files``
    by file name; the href the index links."""
    from bpttcheck import report_json
    texts = {"report.json": report_json.render(report)}
    if html:
        from bpttcheck import report_html
        texts["report.html"] = report_html.render(report)
    if files is not None:
        files.update(texts)
    else:
        for name, text in texts.items():
            write_atomic(os.path.join(out, folder, name), text)
    return f"{folder}/report.html" if html else f"{folder}/report.json"


def _scored(row: Row, report) -> Row:
    """The row's score, maximum, percentage and per-check statuses from the report's card."""
    card = report.score
    row.score, row.max_score = round(card.earned, 3), round(card.possible, 3)
    row.percent = card.percent
    row.checks = {c.name: c.status for c in card.checks}
    return row


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
          progress: bool = True, only: list[str] | None = None, failed: bool = False,
          csv_bom: bool = False, tell: Callable[[str], None] | None = None,
          cluster: str | None = None) -> list[Row]:
    """Grade the class in ``folder`` into ``out``; return every row of its grades.csv.

    ``only`` (student names) and ``failed`` (the rows of out's grades.csv that are not pass)
    regrade those submissions and merge them into the grades, index and report folders already
    in ``out``, every other row kept as it was. A plain run replaces what ``out`` held, and
    says so through ``tell`` (default: standard error) when that was another class folder or
    had students who are no longer there. ``cluster`` (``tcp://HOST:PORT`` or ``local:N``):
    the checks run as tasks on Dask workers (cluster.py) instead of local processes."""
    if not os.path.isdir(folder):
        raise UsageError(f"{folder} is not a folder of submissions")
    if os.path.realpath(out) == os.path.realpath(folder):
        raise UsageError("--out must not be the submissions folder: reports would be written "
                         "among the students' files. Give a new folder, e.g. --out graded")
    subs = discover(folder, out, s.entry)
    if not subs:
        raise UsageError(f"{folder} holds no submissions (.py, .c or .so files, or one folder "
                         f"per student)")
    say = tell or _to_stderr
    book = read_gradebook(out)
    kept: list[Row] = []
    if only is not None or failed:
        subs, kept = _regrade(subs, book, folder, out, s, only or [], failed, say, html)
        if not subs:
            say(f"every row of {os.path.join(out, 'grades.csv')} passes: nothing to regrade")
            return kept
        csv_bom = csv_bom or bool(book and book.get("csv_bom"))
    else:
        _replacing(book, subs, folder, out, say)
    os.makedirs(out, exist_ok=True)
    if cluster:
        from bpttcheck.cluster import check_on_cluster
        rows = check_on_cluster(cluster, subs, s, out, html, progress)
        return _write_class(folder, s, out, html, rows, kept, csv_bom)
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

    return _write_class(folder, s, out, html, rows, kept, csv_bom)


def _write_class(folder: str, s: Settings, out: str, html: bool, new: list[Row],
                 kept: list[Row], csv_bom: bool) -> list[Row]:
    """One maximum over the new and the kept rows, the reports whose score that changed
    rewritten, then grades.json, grades.csv and index.html."""
    before = {id(r): r.max_score for r in new + kept}
    rows = one_maximum(new + kept, s)
    top = rows[0].max_score if rows else 0.0
    arch, style = _class_model(rows, before, top)
    fresh = {id(r) for r in new}
    for r in rows:
        unknown = id(r) in fresh and r.arch is None and (arch or style)
        if r.max_score != before[id(r)] or unknown:
            _rescore(r, s, out, html, arch, style)
    rows.sort(key=lambda r: natural_key(r.student))
    write_gradebook(out, folder, s, rows, csv_bom, html)
    write_atomic(os.path.join(out, "grades.csv"), (BOM if csv_bom else "") + _csv(rows))
    if html:
        from bpttcheck import report_html
        entries = [{"student": r.student, "report": r.report, "verdict": r.verdict,
                    "score": r.score, "max_score": r.max_score,
                    "top_diagnosis": r.top_diagnosis or None, "top_title": r.top_title or None,
                    "diagnoses": r.diagnoses, "error_kind": r.error_kind or None,
                    "seconds": r.seconds, "note": r.note or None, "checks": r.checks}
                   for r in rows]
        name = os.path.basename(os.path.abspath(folder))
        write_atomic(os.path.join(out, "index.html"), report_html.render_index(
            entries, s.title or f"bpttcheck: {name}",
            subtitle=f"bpttcheck: {name}" if s.title else None))
    return rows


def _class_model(rows: list[Row], before: dict[int, float], top: float
                 ) -> tuple[str | None, str | None]:
    """The architecture and style of the class maximum: those most checked submissions out of
    that maximum have (None when no submission was checked)."""
    seen = [(r.arch, r.style) for r in rows if r.arch and not r.error_kind
            and before[id(r)] == top]
    if not seen:
        return None, None
    return max(sorted(set(seen), key=str), key=seen.count)


def _rescore(r: Row, s: Settings, out: str, html: bool, arch: str | None,
             style: str | None) -> None:
    """A row whose maximum is the class's, not its own (no assignment arch: an error before
    the architecture was seen, or a class mixing architectures): its report's score card made
    over again, for the class's architecture when its own is not known, scaled to the class
    maximum, and the report rewritten, so the student reads what the gradebook says. A
    report that stopped before its architecture or style was seen is scored as the class's."""
    from bpttcheck import scoring
    from bpttcheck.result import Report
    if not r.report:
        return
    folder = os.path.dirname(r.report)
    try:
        with open(os.path.join(out, folder, "report.json"), encoding="utf-8") as f:
            report = Report.model_validate_json(f.read())
    except (OSError, ValueError):
        return  # a pool process died before writing it: the row's numbers stand alone
    card = scoring.scorecard(report, s.points, s.opts.arch or report.arch or arch,
                             s.opts.style or report.style or style)
    if card.possible != r.max_score:
        card = scoring.rescaled(card, r.max_score, (
            f"scaled by {r.max_score:g}/{card.possible:g} to the class's maximum, the one most "
            f"checked submissions have (a spec's assignment.arch scores every submission "
            f"against the assignment's architecture)"))
    report.score = card
    _write_reports(report, out, folder, html)
    _scored(r, report)


def _to_stderr(message: str) -> None:
    sys.stderr.write(f"bpttcheck: {_printable(message)}\n")


# ---------------------------------------------------------------- regrading and the gradebook

def settings_key(s: Settings) -> dict:
    """What decides a row's grade besides the submission (limits aside: a regrade may allow a
    slow submission more time): a regrade must match the run it merges into."""
    o = s.opts
    key = {"points": s.points, "arch": o.arch, "style": o.style,
           "seed": None if o.secret else o.seed, "hidden_cases": bool(o.secret),
           "sizes": asdict(o.dims) if o.dims else None, "layout": o.adapter_options,
           "checks": o.checks, "model": "standard" if o.require_standard else "any",
           "file": s.entry}
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def read_gradebook(out: str) -> dict | None:
    """OUT/grades.json as written by write_gradebook, its rows as Row; None when there is none;
    {"broken": reason} when it cannot be read."""
    path = os.path.join(out, GRADEBOOK)
    if not os.path.isfile(path):
        return None
    names = {f.name for f in fields(Row)}
    try:
        with open(path, encoding="utf-8") as f:
            book = json.load(f)
        book["rows"] = [Row(**{k: v for k, v in x.items() if k in names}) for x in book["rows"]]
        if not isinstance(book.get("folder"), str):
            raise ValueError("no class folder")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return {"broken": f"{type(e).__name__}: {e}"[:200]}
    return book


def write_gradebook(out: str, folder: str, s: Settings, rows: list[Row], csv_bom: bool,
                    html: bool = True) -> None:
    from bpttcheck import __version__
    book = {"bpttcheck": __version__, "folder": os.path.realpath(folder),
            "title": s.title, "settings": settings_key(s), "csv_bom": csv_bom, "html": html,
            "rows": [asdict(r) for r in rows]}
    write_atomic(os.path.join(out, GRADEBOOK), json.dumps(book, indent=1, ensure_ascii=False) + "\n")


def _regrade(subs: list[Submission], book: dict | None, folder: str, out: str, s: Settings,
             only: list[str], failed: bool, say: Callable[[str], None], html: bool = True
             ) -> tuple[list[Submission], list[Row]]:
    """The submissions to check again and the rows to keep, or a usage error that says why a
    regrade into ``out`` cannot merge."""
    again = f"grade the whole class: bpttcheck grade {folder} --out {out}"
    if book is None:
        raise UsageError(f"--only and --failed merge into an earlier grading, and {out} holds "
                         f"no {GRADEBOOK} from one; {again}")
    if "broken" in book:
        raise UsageError(f"{os.path.join(out, GRADEBOOK)} cannot be read ({book['broken']}); "
                         f"{again}")
    if book["folder"] != os.path.realpath(folder):
        raise UsageError(f"{out} holds the grades of {book['folder']}, not of {folder}: regrade "
                         f"with that folder, or grade {folder} into another --out")
    now = settings_key(s)
    differ = sorted(k for k in set(now) | set(book.get("settings") or {})
                    if now.get(k) != (book.get("settings") or {}).get(k))
    if differ:
        raise UsageError(f"the spec or options differ from the grading in {out} "
                         f"({', '.join(differ)}): a regrade grades like the rows it joins; to "
                         f"change them, {again}")
    if book.get("html", True) != html:
        had = "with HTML reports" if book.get("html", True) else "with --no-html"
        raise UsageError(f"{out} was graded {had}: regrade the same way, so that every "
                         f"student's report and the index stay of one kind")
    by_name = {x.student: x for x in subs}
    chosen: list[Submission | None] = [_named(n, subs) for n in only]
    unknown = [n for n, x in zip(only, chosen, strict=True) if x is None]
    if unknown:
        raise UsageError(_no_such(unknown, subs, folder))
    picked = [x for x in chosen if x is not None]
    if failed:
        prev = {r.student: r for r in book["rows"]}
        picked += [x for x in subs if x.student not in prev or prev[x.student].verdict != "pass"]
    names = list(dict.fromkeys(x.student for x in picked))
    kept = [r for r in book["rows"] if r.student not in names]
    if names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        say(f"regrading {len(names)} of {len(subs)} submissions ({shown}); the other "
            f"{len(kept)} rows of {os.path.join(out, 'grades.csv')} are kept as they were")
    gone = [r.student for r in kept if r.student not in by_name]
    if gone:
        say(f"{len(gone)} row(s) kept whose submission is no longer in {folder}: "
            + ", ".join(gone[:10]) + (" ..." if len(gone) > 10 else ""))
    return [by_name[n] for n in names], kept


def _named(name: str, subs: list[Submission]) -> Submission | None:
    """The submission a --only name means: its student name exactly, else the one whose name,
    report folder or file name matches it ignoring case."""
    for x in subs:
        if x.student == name:
            return x
    hits = [x for x in subs if name.casefold() in (
        x.student.casefold(), x.folder.casefold(), os.path.basename(x.path or "").casefold())]
    return hits[0] if len(hits) == 1 else None


def _no_such(names: list[str], subs: list[Submission], folder: str) -> str:
    students = [x.student for x in subs]
    lines = []
    for n in names:
        close = difflib.get_close_matches(n, students, n=5, cutoff=0.6)
        close += [x for x in students if n.casefold() in x.casefold() and x not in close][:5]
        lines.append(f"--only {n!r}: no submission of that name in {folder}"
                     + (f"; close: {', '.join(close[:5])}" if close else ""))
    lines.append(f"the names are grades.csv's student column ({len(students)} submissions, "
                 f"e.g. {', '.join(students[:3])})")
    return "\n".join(_printable(x) for x in lines)


def _replacing(book: dict | None, subs: list[Submission], folder: str, out: str,
               say: Callable[[str], None]) -> None:
    """A plain run replaces the grades in ``out``; say so when they were another class's or
    name students this run does not have."""
    if not book:
        return
    if "broken" in book:
        say(f"{os.path.join(out, GRADEBOOK)} could not be read ({book['broken']}): replaced")
        return
    old = book["rows"]
    if book["folder"] != os.path.realpath(folder):
        say(f"{out} held the grades of {book['folder']} ({len(old)} rows): replaced by the "
            f"grades of {folder}")
    now = {x.student for x in subs}
    gone = [r for r in old if r.student not in now]
    if gone:
        folders = sorted({os.path.dirname(r.report) for r in gone if r.report})
        say(f"{len(gone)} student(s) graded in {out} before are not in {folder} now ("
            + ", ".join(r.student for r in gone[:10]) + (" ..." if len(gone) > 10 else "")
            + "): their rows leave grades.csv and index.html; their report folders ("
            + ", ".join(folders[:10]) + (" ..." if len(folders) > 10 else "")
            + ") are left in place, linked from nowhere; to regrade some students and keep "
              "the others, use --only or --failed")


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
    import shutil
    import tempfile

    from bpttcheck.sandbox import proctree
    _warm(html)
    since = proctree.now_ticks()
    proctree.become_subreaper()
    rows: dict[int, Row] = {}
    # the checks' session folders go below one folder of this grading's, removed at the end:
    # a check killed by its submission never removes its own
    scratch = tempfile.mkdtemp(prefix="bpttcheck-grade-")
    try:
        lost = _run_batch(list(range(len(subs))), subs, run, out, html, jobs, bar, rows,
                          since, scratch)
        killed = {}
        for i in lost:
            killed.update(_run_batch([i], subs, run, out, html, 1, bar, rows, since, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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
               since: int, scratch: str) -> dict[int, str]:
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
            proc = ctx.Process(target=_check_in_child,
                               args=(send, subs[i], run, out, html, scratch), daemon=True)
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


def _check_in_child(conn, sub: Submission, run: Settings, out: str, html: bool,
                    scratch: str) -> None:
    """In the forked process: grade one submission, send its row back as JSON (never a
    pickle: the pipe is no more trusted than the submission's own process). Its temporary
    folders go below ``scratch``, which the grading removes."""
    import tempfile
    tempfile.tempdir = scratch
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
