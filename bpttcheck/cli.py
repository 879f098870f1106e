"""The command line: parse, call the engine, write the reports. Nothing else lives here."""
from __future__ import annotations

import os
import sys

import typer

from bpttcheck.errors import BpttcheckError, UsageError
from bpttcheck.runcheck import failure_exit
from bpttcheck.sandbox.limits import Limits  # light: the default limits for --help

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Check hand-written backpropagation through time against a float64 "
                       "reference and finite differences, and name the bug.")


@app.command()
def run(
    path: str = typer.Argument(..., help="Your model: a .py file, a Jupyter notebook (.ipynb), a .c file (compiled for you) or a .so."),
    json_out: str | None = typer.Option(None, "--json", help="Write the JSON report here ('-' for stdout)."),
    junit: str | None = typer.Option(None, "--junit", help="Write a JUnit XML report (one testcase per check)."),
    gradescope: str | None = typer.Option(None, "--gradescope", help="Write a Gradescope results.json."),
    html: str | None = typer.Option(None, "--html", help="Write a self-contained HTML report (heatmaps, gradient flow)."),
    spec: str | None = typer.Option(None, "--spec", help="Assignment spec (TOML)."),
    arch: str | None = typer.Option(None, "--arch", help="rnn, lstm, gru or an installed plugin's architecture (default: inferred)."),
    style: str | None = typer.Option(None, "--style", help="karpathy, functional, split, layers, wildml, dlai, dlai-char, dlfs2, c or c-globals (default: detected)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the probe case."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds allowed per call of your code (default 10)."),
    memory_mb: int | None = typer.Option(None, "--memory-mb", help=f"Memory limit of the worker in MiB (default {Limits.memory_mb})."),
    sanitize: bool = typer.Option(False, "--sanitize", help="C only: build with AddressSanitizer and UBSan and report the first error with its line."),
    write_fixed: str | None = typer.Option(None, "--write-fixed", help="Python: write your file with the verified repair applied here (never over your file)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every check, not only failures."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No terminal summary."),
    require_sandbox: bool = typer.Option(False, "--require-sandbox", help="Refuse to run (exit 4) where the OS sandbox (bubblewrap) is not available, instead of running with a sandbox.weak note."),
) -> None:
    """Check one implementation. Exit 0 pass, 1 a check failed, 2 usage, 3 your code could not be run, 4 internal error."""
    from bpttcheck.runcheck import run_check  # entry.py calls it without typer, usually
    raise typer.Exit(run_check(path, json_out, junit, gradescope, html, spec, arch, style, seed,
                               timeout, memory_mb, sanitize, write_fixed, verbose, quiet,
                               require_sandbox))


@app.command()
def grade(
    folder: str = typer.Argument(..., help="The class folder: one .py/.c/.so file or one folder per student."),
    names: list[str] | None = typer.Argument(None, show_default=False, metavar="[NAME...]", help="More students for --only (--only alice bob)."),  # noqa: B008 - typer's way
    out: str = typer.Option(..., "--out", help="Folder for the reports, index.html and grades.csv."),
    spec: str | None = typer.Option(None, "--spec", help="Assignment spec (TOML): sizes, layout, points, limits, assignment.file."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Submissions checked at once (default: number of cores)."),
    arch: str | None = typer.Option(None, "--arch", help="rnn, lstm or gru (default: inferred per submission)."),
    style: str | None = typer.Option(None, "--style", help="Adapter style (default: detected per submission)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the probe case."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds allowed per call of a submission's code."),
    memory_mb: int | None = typer.Option(None, "--memory-mb", help="Memory limit per submission in MiB."),
    no_html: bool = typer.Option(False, "--no-html", help="Write JSON reports and the CSV only (faster)."),
    fail_under: float | None = typer.Option(None, "--fail-under", help="Exit 1 if any submission scores below this percentage."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    only: list[str] | None = typer.Option(None, "--only", help="Regrade only these students (grades.csv's student column) and merge them into the grades already in --out: --only alice bob."),  # noqa: B008 - typer's way
    failed: bool = typer.Option(False, "--failed", help="Regrade the students whose row in --out's grades.csv is not pass (and any new submission), merged as with --only."),
    csv_bom: bool = typer.Option(False, "--csv-bom", help="Start grades.csv with a UTF-8 byte-order mark, so Excel reads non-ASCII names right."),
    require_sandbox: bool = typer.Option(False, "--require-sandbox", help="Refuse to grade (exit 4, before any submission runs) where the OS sandbox (bubblewrap) is not available."),
    cluster: str | None = typer.Option(None, "--cluster", help="Check on a Dask cluster: a scheduler's address (tcp://HOST:8786) or local:N for N local workers (pip install 'bpttcheck[cluster]'; docs/cluster.md)."),
) -> None:
    """Check every submission in a folder; write a report each, index.html, grades.csv and grades.json. Exit 0 once every output is written; 4 if bpttcheck itself failed on any submission."""
    from bpttcheck.grade import grade as run_grade
    from bpttcheck.settings import settings

    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    if cluster is not None:
        from bpttcheck.cluster import parse, require
        parse(cluster)  # usage errors before any submission is looked at
        require()
        if jobs is not None:
            raise UsageError("--jobs sets how many local processes check at once; with "
                             "--cluster the workers' threads decide it: give one or the other")
    if fail_under is not None and not 0 <= fail_under <= 100:
        raise UsageError(f"--fail-under is a percentage from 0 to 100, not {fail_under:g}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file: give a folder (it is created if missing)")
    if names and not only:
        raise UsageError(f"unexpected name(s) after the class folder: {' '.join(names)}; to "
                         f"regrade some students, give them after --only (--only "
                         f"{' '.join(names)})")
    picked = [*(only or []), *(names or [])] or None
    s = settings(spec, arch, style, seed, timeout, memory_mb, require_sandbox=require_sandbox)
    rows = run_grade(folder, s, out, jobs, html=not no_html, progress=not quiet, only=picked,
                     failed=failed, csv_bom=csv_bom, cluster=cluster)
    counts = {v: sum(r.verdict == v for r in rows) for v in ("pass", "fail", "error")}
    what = f"{len(rows)} rows after the regrade" if picked or failed else \
        f"graded {len(rows)} submissions"
    typer.echo(f"{what}: {counts['pass']} pass, {counts['fail']} fail, "
               f"{counts['error']} error; wrote {os.path.join(out, 'grades.csv')}"
               + ("" if no_html else f" and {os.path.join(out, 'index.html')}"))
    ours = [r.student for r in rows if r.error_kind == "internal"]
    if ours:  # every output is written, but a grade with bpttcheck's own failures is no grade
        typer.echo(f"bpttcheck failed on {len(ours)} submission{'s' if len(ours) > 1 else ''} "
                   f"(error kind internal: " + ", ".join(ours[:20]) + (" ..." if len(ours) > 20
                   else "") + "); their rows are not grades. Please report it with their "
                   "report.json", err=True)
        raise typer.Exit(4)
    if fail_under is not None:
        low = [r for r in rows if r.percent < fail_under]
        if low:
            typer.echo(f"{len(low)} below {fail_under:g}%: " + ", ".join(r.student for r in low[:20])
                       + (" ..." if len(low) > 20 else ""), err=True)
            raise typer.Exit(1)
    raise typer.Exit(0)


@app.command()
def init(
    path: str = typer.Argument(..., help="Your model file (.py or .ipynb) with a class bpttcheck has no style for."),
    force: bool = typer.Option(False, "--force", help="Replace a wrapper that `bpttcheck init` wrote earlier (never any other file)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds allowed to import your module (default 20)."),
) -> None:
    """Write <stem>_bpttcheck.py next to PATH: a functional-style wrapper around your class, pre-filled from what the file defines. Exit 0 written, 2 usage, 3 your code could not be loaded or wrapped."""
    from bpttcheck import __version__, glue
    from bpttcheck.errors import ErrorKind, UserCodeError
    from bpttcheck.output import write_atomic
    from bpttcheck.sandbox.session import WorkerSession

    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if not path.endswith((".py", ".ipynb")):
        raise UsageError(f"{path}: bpttcheck init writes wrappers for Python (.py, .ipynb)")
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.endswith("_bpttcheck"):
        raise UsageError(f"{path} is a wrapper already: run it with `bpttcheck run {path}`")
    if not path.endswith(".py"):
        raise UsageError(f"{path}: export the notebook as a .py file first (the wrapper imports "
                         "it); `bpttcheck run` checks notebooks of a known style as they are")
    out = os.path.join(os.path.dirname(path), f"{stem}_bpttcheck.py")
    if os.path.exists(out):
        with open(out, encoding="utf-8", errors="replace") as f:
            ours = glue.written_by_init(f.read(len(glue.HEADER)))
        if not (force and ours):
            raise UsageError(f"{out} exists; bpttcheck never writes over it" + (
                " (add --force to replace this wrapper, which bpttcheck init wrote)" if ours
                else " (it was not written by bpttcheck init): move it away first"))
    limits = Limits()
    if timeout is not None:
        limits.load_timeout = limits.call_timeout = timeout
    limits.run_from = os.getcwd()
    with WorkerSession(path, limits) as w:
        found, _ = w.inspect()
    try:
        text, marks = glue.render(found, os.path.basename(path), __version__)
    except glue.NoClass as e:
        from bpttcheck.inspection import message
        raise UserCodeError(ErrorKind.INTERFACE, f"{e}. {message(found)}") from None
    write_atomic(out, text)
    typer.echo(f"wrote {out}: a wrapper around class {glue.pick(found)[0]['name']} of "
               f"{os.path.basename(path)} in the functional style")
    if marks:
        typer.echo(f"{len(marks)} line(s) marked `# bpttcheck init: check this`: "
                   + "; ".join(marks))
    typer.echo(f"next: bpttcheck run {out}")
    raise typer.Exit(0)


@app.command()
def watch(
    path: str = typer.Argument(..., help="Your model (.py, .ipynb, .c or .so); the Python files it imports are watched too."),
    spec: str | None = typer.Option(None, "--spec", help="Assignment spec (TOML)."),
    arch: str | None = typer.Option(None, "--arch", help="rnn, lstm, gru or an installed plugin's architecture (default: inferred)."),
    style: str | None = typer.Option(None, "--style", help="Adapter style (default: detected)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the probe case."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds allowed per call of your code (default 10)."),
    memory_mb: int | None = typer.Option(None, "--memory-mb", help=f"Memory limit of the worker in MiB (default {Limits.memory_mb})."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every check, not only failures."),
) -> None:
    """Check PATH now and again on every save, printing the verdict and what changed since the last check. Ctrl-C stops it (exit 0)."""
    from bpttcheck.feedback import for_student
    from bpttcheck.settings import settings
    from bpttcheck.watch import render
    from bpttcheck.watch import watch as watching

    s = settings(spec, arch, style, seed, timeout, memory_mb)
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if not path.endswith((".py", ".ipynb", ".c", ".so")):
        raise UsageError(f"{path}: bpttcheck checks .py, .ipynb, .c and .so files")
    s.opts.limits.run_from = os.getcwd()  # imports resolve as for `python FILE` run from here
    typer.echo(f"watching {path} (Ctrl-C to stop)")
    try:
        for out in watching(path, s.opts, present=lambda r: for_student(r, s.feedback)):
            sys.stdout.write(render(out, verbose))
            sys.stdout.flush()
    except KeyboardInterrupt:
        typer.echo("stopped watching")
    raise typer.Exit(0)


def _version(value: bool) -> None:
    if value:
        from bpttcheck import __version__
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


@app.command()
def include() -> None:
    """Print the compiler flag that finds bpttcheck.h (cc $(bpttcheck include) -shared ...)."""
    from bpttcheck.sandbox.compile import include_dir
    typer.echo(f"-I{include_dir()}")


@app.command()
def version() -> None:
    """Print the version."""
    from bpttcheck import __version__
    typer.echo(__version__)


def main() -> None:
    try:
        rc = app(standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except BpttcheckError as e:
        sys.exit(failure_exit(e))
    except Exception as e:  # noqa: BLE001 - the parser's errors, else our bug (exit 4)
        if hasattr(e, "format_message") and getattr(e, "exit_code", None) == 2:
            sys.stderr.write(f"bpttcheck: {e.format_message()}\n")  # a usage error of the parser
            sys.exit(2)
        if type(e).__name__ == "Abort":
            sys.exit(2)
        sys.exit(failure_exit(e))  # anything else is our bug: say so, exit 4
    sys.exit(rc or 0)
