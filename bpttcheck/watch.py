"""`bpttcheck watch FILE`: check again on every save and say what changed since the last check.

The checker stays up with everything imported, and a spare worker (an interpreter with numpy
and the adapters imported) is started ahead of each save; the saved files are staged into it
(WorkerSession.restage) when the save is seen, so a re-check costs the check itself, not two
process start-ups. Saves are seen by polling the file and the sources it imports (their
mtime, size and inode; a content hash decides whether anything changed): no dependency, and an
editor's write-to-a-temporary-then-rename is seen like any other save."""
from __future__ import annotations

import atexit
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bpttcheck.check import engine
from bpttcheck.result import Report
from bpttcheck.sandbox import session
from bpttcheck.sandbox.staging import imported_sources, stage_root

POLL_SECONDS = 0.01  # how often the files are looked at
SETTLE_SECONDS = 0.005  # a save is checked once two looks this far apart agree
GONE_GRACE_SECONDS = 0.5  # a file missing this long is gone, not between a write and a rename


@dataclass
class Outcome:
    """One check of the watch: its report (None while the file is missing), what changed since
    the previous check, and when the save was seen and the verdict ready (perf_counter)."""
    report: Report | None
    changes: list[str] = field(default_factory=list)
    seen_at: float = 0.0
    done_at: float = 0.0
    gone: bool = False


def watched_files(path: str, run_from: str | None) -> list[str]:
    """The file and the sources it imports that would be staged with it (staging.py)."""
    path = os.path.abspath(path)
    if not path.endswith(".py"):
        return [path]
    return [path, *imported_sources(path, stage_root(path, run_from))]


def _look(files: list[str]) -> tuple:
    out: list[tuple[int, int, int] | None] = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


def _content(files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        try:
            with open(f, "rb") as fh:
                h.update(fh.read())
        except OSError:
            h.update(b"\0missing\0")
        h.update(f.encode() + b"\0")
    return h.hexdigest()


def changes(before: Report | None, after: Report) -> list[str]:
    """What differs between two checks of the same file, for a student: groups that now pass
    or fail (and those still failing, with why), checks newly failing or passing, diagnoses
    that appeared, went or moved to another line, and errors."""
    if before is None:
        return []
    out: list[str] = []
    if before.error and not after.error:
        out.append(f"the {before.error.kind} error is gone")
    if after.error and (before.error is None or before.error.message != after.error.message):
        line = f" ({after.error.line})" if after.error.line else ""
        out.append(f"now an error ({after.error.kind}): {after.error.message}{line}")
    old_groups = {g.name: g for g in before.groups}
    for g in after.groups:
        was = old_groups.get(g.name)
        if g.status == "fail":
            why = (f"max abs error {g.max_abs_error:.3g} > bound {g.tolerance:.2g} at "
                   f"{list(g.worst_index)}")
            if was is not None and was.status == "fail":
                out.append(f"{g.user_name} still fails: {why}")
            else:
                out.append(f"{g.user_name} now fails: {why}")
        elif was is not None and was.status == "fail" and g.status == "pass":
            out.append(f"{g.user_name} now passes")
    group_checks = {f"grad.{g.name}" for g in after.groups} | {f"fd.{g.name}"
                                                               for g in after.groups}
    old_checks = {c.name: c.status for c in before.checks}
    for c in after.checks:
        if c.name in group_checks:
            continue
        status = old_checks.get(c.name)
        if c.status == "fail" and status != "fail":
            out.append(f"{c.name} now fails: {c.message}")
        elif c.status == "pass" and status == "fail":
            out.append(f"{c.name} now passes")
    old_diag = {d.id: d for d in before.diagnoses}
    new_ids = {d.id for d in after.diagnoses}
    for d in after.diagnoses:
        seen = old_diag.get(d.id)
        where = f" at {d.location.text()}" if d.location else ""
        if seen is None:
            out.append(f"new diagnosis: {d.title}{where}")
        elif _line(seen) != _line(d):
            out.append(f"{d.title}: now located at {d.location.text() if d.location else 'no line'}")
    for d in before.diagnoses:
        if d.id not in new_ids:
            out.append(f"no longer diagnosed: {d.title}")
    if before.verdict != after.verdict:
        out.insert(0, f"verdict {before.verdict.upper()} -> {after.verdict.upper()}")
    return out


def _line(d) -> tuple | None:
    return None if d.location is None else (d.location.file, d.location.line)


class Watch:
    """A watch of one file: check() checks it now with a spare worker; changed() says whether
    a save happened since the last check (waiting out a save in progress)."""

    def __init__(self, path: str, opts: engine.Options,
                 present: Callable[[Report], Report] = lambda r: r):
        self.path = os.path.abspath(path)
        self.opts = opts
        self.present = present  # what the student is shown (feedback.for_student)
        self.files = watched_files(self.path, opts.limits.run_from)
        self.seen = _look(self.files)
        self.content = ""
        self.last: Report | None = None
        self.spare: session.WorkerSession | None = None
        self._prepare()

    def _prepare(self) -> None:
        """Start the next check's worker now, while nothing is waiting for it."""
        if self.spare is not None or not self.path.endswith((".py", ".ipynb", ".so")):
            return
        if not os.path.isfile(self.path):
            return
        session.prestart(self.path, self.opts.limits)
        self.spare = session.prestarted(self.path, self.opts.limits)

    def check(self, seen_at: float | None = None) -> Outcome:
        seen_at = time.perf_counter() if seen_at is None else seen_at
        self.files = watched_files(self.path, self.opts.limits.run_from)  # imports may change
        self.seen = _look(self.files)
        self.content = _content(self.files)
        if not os.path.isfile(self.path):
            return Outcome(None, [f"{os.path.basename(self.path)} is gone; waiting for it to "
                                  "come back"], seen_at, time.perf_counter(), gone=True)
        spare = self.spare
        if spare is not None:
            if spare.proc.poll() is None and session.prestarted(self.path, self.opts.limits):
                spare.restage()
            else:  # it died while waiting: the engine starts a fresh one
                self._drop_spare()
        report = self.present(engine.check(self.path, self.opts))
        done = time.perf_counter()
        if spare is not None:
            atexit.unregister(spare.close)  # the engine has closed it
            self.spare = None
        out = Outcome(report, changes(self.last, report), seen_at, done)
        self.last = report
        return out

    def changed(self) -> float | None:
        """When a save was seen (perf_counter), once the files have settled; None if no file
        changed. A file that vanishes is given GONE_GRACE_SECONDS to come back (a save by
        rename), after which its absence is itself the change."""
        now = _look(self.files)
        if now == self.seen:
            return None
        seen_at = time.perf_counter()
        deadline = seen_at + GONE_GRACE_SECONDS
        while True:
            time.sleep(SETTLE_SECONDS)
            again = _look(self.files)
            missing = again[0] is None
            if again == now and (not missing or time.perf_counter() > deadline):
                break
            now = again
        if _content(watched_files(self.path, self.opts.limits.run_from)) == self.content:
            self.seen = now  # touched, not changed
            return None
        return seen_at

    def _drop_spare(self) -> None:
        if self.spare is not None:
            # out of the early-worker registry, so the engine never takes it
            session._PRESTARTED.pop(session._key(self.path, self.opts.limits), None)
            self.spare.close()
            atexit.unregister(self.spare.close)
            self.spare = None

    def close(self) -> None:
        self._drop_spare()


def watch(path: str, opts: engine.Options, stop: Callable[[], bool] = lambda: False,
          poll: float = POLL_SECONDS,
          present: Callable[[Report], Report] = lambda r: r) -> Iterator[Outcome]:
    """The first check of ``path``, then one per save until ``stop()`` is true (or the
    caller stops iterating). Each outcome is yielded as soon as the check ends; the worker
    for the next check starts after that. ``present`` turns each report into what the
    student is shown before anything is compared or rendered."""
    w = Watch(path, opts, present)
    try:
        out = w.check()
        yield out
        w._prepare()
        while not stop():
            seen_at = w.changed()
            if seen_at is None:
                time.sleep(poll)
                continue
            out = w.check(seen_at)
            yield out
            w._prepare()
    finally:
        w.close()


def render(out: Outcome, verbose: bool = False) -> str:
    """What the terminal shows for one check: the verdict first (with how long after the save
    it came), then the report, then what changed since the previous check."""
    from bpttcheck import report_terminal
    if out.report is None:
        return "\n".join(out.changes) + "\n"
    r = out.report
    took = out.done_at - out.seen_at
    head = (f"== {r.verdict.upper()} {os.path.basename(r.path)} "
            f"({time.strftime('%H:%M:%S')}, {took:.2f} s after the save)\n")
    body = report_terminal.render(r, verbose)
    tail = ""
    if out.changes:
        tail = "changed since the last check:\n" + "".join(f"  - {c}\n" for c in out.changes)
    return head + body + tail
