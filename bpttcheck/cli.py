"""The command line: parse, call the engine, write the reports. Nothing else lives here."""
from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from bpttcheck.errors import BpttcheckError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Check hand-written backpropagation through time against a float64 "
                       "reference and finite differences, and name the bug.")


@app.command()
def run(
    path: str = typer.Argument(..., help="Your model: a .py file, a .c file (compiled for you) or a .so."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the JSON report here ('-' for stdout)."),
    junit: Optional[str] = typer.Option(None, "--junit", help="Write a JUnit XML report (one testcase per check)."),
    gradescope: Optional[str] = typer.Option(None, "--gradescope", help="Write a Gradescope results.json."),
    spec: Optional[str] = typer.Option(None, "--spec", help="Assignment spec (TOML)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="rnn, lstm or gru (default: inferred)."),
    style: Optional[str] = typer.Option(None, "--style", help="karpathy, functional or split (default: detected)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the probe case."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds allowed per call of your code (default 10)."),
    memory_mb: Optional[int] = typer.Option(None, "--memory-mb", help="Memory limit of the worker in MiB (default 4096)."),
    sanitize: bool = typer.Option(False, "--sanitize", help="C only: build with AddressSanitizer and UBSan and report the first error with its line."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every check, not only failures."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No terminal summary."),
) -> None:
    """Check one implementation. Exit 0 pass, 1 a check failed, 2 usage, 3 your code could not be run, 4 internal error."""
    from bpttcheck import engine, report_json, report_terminal
    from bpttcheck.case import Dims
    from bpttcheck.output import write_atomic
    from bpttcheck.runner import Limits

    if os.path.isdir(path):
        raise UsageError(f"{path} is a folder: give the file that defines your model (.py, .c or .so)")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if not path.endswith((".py", ".c", ".so")):
        raise UsageError(f"{path}: bpttcheck checks .py, .c and .so files")
    if arch is not None and arch not in ("rnn", "lstm", "gru"):
        raise UsageError(f"--arch must be rnn, lstm or gru, not {arch!r}")
    opts = engine.Options()
    points: dict = {}
    if spec:
        from bpttcheck.spec import load_spec
        s = load_spec(spec)
        opts.arch, opts.style, opts.seed = s.assignment.arch, s.assignment.style, s.assignment.seed
        opts.adapter_options = s.adapter_options()
        points = dict(s.points)
        if s.sizes:
            opts.dims = Dims(**s.sizes.model_dump())
        opts.limits = Limits(call_timeout=s.limits.timeout, load_timeout=s.limits.timeout,
                             memory_mb=s.limits.memory_mb)
    if arch:
        opts.arch = arch
    if style:
        opts.style = style
    if seed is not None:
        opts.seed = seed
    opts.sanitize = sanitize
    if timeout is not None:
        opts.limits.call_timeout = opts.limits.load_timeout = timeout
    if memory_mb is not None:
        opts.limits.memory_mb = memory_mb
    report = engine.check(path, opts)
    if json_out:
        write_atomic(json_out, report_json.render(report))
    if junit:
        from bpttcheck import report_junit
        write_atomic(junit, report_junit.render(report))
    if gradescope:
        from bpttcheck import report_gradescope
        write_atomic(gradescope, report_gradescope.render(report, points))
    if not quiet and json_out != "-":
        sys.stdout.write(report_terminal.render(report, verbose))
    raise typer.Exit(report.exit_code)


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
    from bpttcheck.compile import include_dir
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
        sys.stderr.write(f"bpttcheck: {e}\n")
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001
        if hasattr(e, "format_message") and getattr(e, "exit_code", None) == 2:
            sys.stderr.write(f"bpttcheck: {e.format_message()}\n")  # a usage error of the parser
            sys.exit(2)
        if type(e).__name__ == "Abort":
            sys.exit(2)
        import traceback  # anything else is our bug: say so, exit 4
        sys.stderr.write("bpttcheck: internal error (please report it with this output):\n")
        traceback.print_exc()
        sys.exit(4)
    sys.exit(rc or 0)
