"""The work of `bpttcheck run FILE`, apart from the command-line framework: entry.py calls
run_check straight from a command line it parsed itself (the common case), cli.run from
typer's parse (anything unusual: --help, a malformed value, an option entry.py does not
know). Typer is skipped on the common path because it costs about a fifth of a passing
Karpathy-size check's wall time, most of it building a pydantic validator for each of the
command's fifteen parameters (benchmarks/startup.py)."""
from __future__ import annotations

import os
import sys

from bpttcheck.errors import BpttcheckError, UsageError


def run_check(path: str, json_out: str | None = None, junit: str | None = None,
              gradescope: str | None = None, html: str | None = None, spec: str | None = None,
              arch: str | None = None, style: str | None = None, seed: int | None = None,
              timeout: float | None = None, memory_mb: int | None = None,
              sanitize: bool = False, write_fixed: str | None = None, verbose: bool = False,
              quiet: bool = False, require_sandbox: bool = False) -> int:
    """Check one implementation, write the reports asked for; the exit code (CONTRACT §3)."""
    from bpttcheck import report_json, report_terminal
    from bpttcheck.check import engine
    from bpttcheck.feedback import for_student
    from bpttcheck.output import write_atomic
    from bpttcheck.settings import settings

    s = settings(spec, arch, style, seed, timeout, memory_mb, sanitize, require_sandbox)
    note = ""
    if os.path.isdir(path):
        path, note = model_in(path, s.entry)
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if not path.endswith((".py", ".ipynb", ".c", ".so")):
        raise UsageError(f"{path}: bpttcheck checks .py, .ipynb, .c and .so files")
    if [json_out, junit, gradescope, html].count("-") > 1:
        raise UsageError("only one report can go to stdout ('-'); give the others a file name")
    outputs = [o for o in (json_out, junit, gradescope, html) if o and o != "-"]
    for o in outputs:
        if os.path.isdir(o):
            raise UsageError(f"{o} is a folder: give a file name for the report, e.g. "
                             f"{os.path.join(o, 'report.json')}")
    if write_fixed:
        outputs.append(write_fixed)
    if os.path.abspath(path) in map(os.path.abspath, outputs):
        raise UsageError(f"an output file is your model {path}: bpttcheck never writes over it")
    opts, points = s.opts, s.points
    opts.views = bool(html)
    opts.limits.run_from = os.getcwd()  # imports resolve as for `python FILE` run from here
    report = engine.check(path, opts)
    from bpttcheck import repair
    repair.attach(report, path, opts, write_fixed)
    if note:
        from bpttcheck.result import Note
        report.notes.insert(0, Note(id="run.folder", title="The model file was chosen in the "
                                    "folder", evidence=note))
    from bpttcheck import scoring
    scoring.attach(report, points, opts.arch, opts.style)
    # what the student may see (spec [feedback]): every report below renders this copy
    report = for_student(report, s.feedback)
    if json_out:
        write_atomic(json_out, report_json.render(report))
    if junit:
        from bpttcheck import report_junit
        write_atomic(junit, report_junit.render(report))
    if gradescope:
        from bpttcheck import report_gradescope
        write_atomic(gradescope, report_gradescope.render(report, points, s.feedback.visibility,
                                                          arch=opts.arch, style=opts.style))
    if html:
        from bpttcheck import report_html
        write_atomic(html, report_html.render(report))
    if not quiet and "-" not in (json_out, junit, gradescope, html):  # stdout holds a report
        sys.stdout.write(report_terminal.render(report, verbose))
    return report.exit_code


def model_in(folder: str, entry: str | None) -> tuple[str, str]:
    """`run FOLDER`: the model file in the folder, chosen as `grade` chooses it in a student's
    folder (the spec's assignment.file, else the one model file, helpers it imports aside);
    the folder is copied whole, so the model imports its helpers as `python FILE` would."""
    from bpttcheck.grade import model_in_folder
    name = os.path.basename(os.path.abspath(folder))
    sub = model_in_folder(name, folder, entry)
    if sub.path is None:
        raise UsageError(f"{folder} is a folder, and bpttcheck cannot tell which file is the "
                         f"model: {sub.problem}. Give the file (bpttcheck run "
                         f"{os.path.join(folder, 'model.py')}), or grade a class folder with "
                         f"`bpttcheck grade {folder} --out graded`")
    note = sub.note or (f"{folder} is a folder: checked {os.path.relpath(sub.path, folder)}, "
                        f"the file in it that defines the model; the other files of the folder "
                        f"are importable as for `python {sub.path}`")
    sys.stderr.write(f"bpttcheck: {note}\n")
    return sub.path, note


def failure_exit(e: Exception) -> int:
    """Say what stopped a command (a BpttcheckError: its message; anything else is our bug:
    the traceback) and return the exit code."""
    if isinstance(e, BpttcheckError):
        sys.stderr.write(f"bpttcheck: {e}\n")
        return e.exit_code
    import traceback
    sys.stderr.write("bpttcheck: internal error (please report it with this output):\n")
    traceback.print_exception(e)
    return 4
