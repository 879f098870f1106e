"""The `bpttcheck` command's entry point. For `bpttcheck run FILE`, the worker that will run
FILE is started first, so its start-up (an interpreter, numpy, the adapters) overlaps with
this process importing pydantic and the engine; a command line of `run` that parse_run reads
whole then goes straight to runcheck.run_check, without typer. Everything else is
cli.main()."""
from __future__ import annotations

import os
import re
import sys

# the options of `run` that take a value, by the name of run_check's parameter (cli.run
# declares them for typer; tests/test_watch.py keeps the two lists equal)
RUN_OPTIONS = {"--json": "json_out", "--junit": "junit", "--gradescope": "gradescope",
               "--html": "html", "--spec": "spec", "--arch": "arch", "--style": "style",
               "--write-fixed": "write_fixed", "--seed": "seed", "--timeout": "timeout",
               "--memory-mb": "memory_mb"}
RUN_FLAGS = {"--sanitize": "sanitize", "--verbose": "verbose", "-v": "verbose",
             "--quiet": "quiet", "-q": "quiet", "--require-sandbox": "require_sandbox"}
# numbers written the plain way; anything else (a sign, an exponent, "inf") goes to typer,
# so a value is read here only where typer would read it the same
_NUMBERS = {"seed": (int, re.compile(r"(0|[1-9][0-9]*)")),
            "memory_mb": (int, re.compile(r"(0|[1-9][0-9]*)")),
            "timeout": (float, re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?"))}
_VALUED = set(RUN_OPTIONS)


def parse_run(argv: list[str]) -> dict | None:
    """run_check's arguments for a command line `run FILE [options]` that is plain: every
    option known, given once, with a value that needs no interpretation; else None (typer
    parses it, and says what is wrong)."""
    if len(argv) < 2 or argv[0] != "run":
        return None
    args: dict = {}
    i = 1
    while i < len(argv):
        a = argv[i]
        name, eq, value = a.partition("=")
        if name in RUN_OPTIONS:
            if not eq:
                i += 1
                if i >= len(argv):
                    return None
                value = argv[i]
            key = RUN_OPTIONS[name]
            if key in args or (value.startswith("-") and value != "-"):
                return None
            if key in _NUMBERS:
                kind, form = _NUMBERS[key]
                if not form.fullmatch(value):
                    return None
                value = kind(value)
            args[key] = value
        elif a in RUN_FLAGS:
            args[RUN_FLAGS[a]] = True
        elif a.startswith("-") or "path" in args:
            return None
        else:
            args["path"] = a
        i += 1
    return args if "path" in args else None


def _peek(argv: list[str]) -> dict | None:
    """FILE and the options that decide the worker's limits, or None when unsure."""
    if len(argv) < 2 or argv[0] != "run":
        return None
    found: dict = {"path": None, "spec": None, "timeout": None, "memory_mb": None,
                   "sanitize": False}
    i = 1
    while i < len(argv):
        a = argv[i]
        name, eq, value = a.partition("=")
        if a == "--sanitize":
            found["sanitize"] = True
        elif name in _VALUED:
            if not eq:
                i += 1
                if i >= len(argv):
                    return None
                value = argv[i]
            key = {"--spec": "spec", "--timeout": "timeout", "--memory-mb": "memory_mb"}.get(name)
            if key:
                found[key] = value
        elif a.startswith("-"):
            if a not in ("-v", "-q", "--verbose", "--quiet", "--require-sandbox"):
                return None
        elif found["path"] is None:
            found["path"] = a
        else:
            return None
        i += 1
    try:
        found["timeout"] = None if found["timeout"] is None else float(found["timeout"])
        found["memory_mb"] = None if found["memory_mb"] is None else int(found["memory_mb"])
    except ValueError:
        return None
    return found if found["path"] else None


def _run(args: dict) -> int:
    """`bpttcheck run` from parse_run's arguments, ending as cli.main ends a run through
    typer: the same messages and exit codes (130 on Ctrl-C, 1 when stdout is a closed pipe, 2
    on end of input, 4 with a traceback for our own bugs)."""
    from bpttcheck.runcheck import failure_exit, run_check
    try:
        return run_check(**args)
    except KeyboardInterrupt:
        return 130
    except EOFError:
        sys.stderr.write("\n")
        return 2
    except BrokenPipeError:
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - until the exit
        return 1
    except Exception as e:  # noqa: BLE001 - a usage error, the user's code, or our bug
        return failure_exit(e)


def main() -> None:
    # the grading secret leaves the environment before the early worker (or anything) starts
    from bpttcheck.secret import hold
    hold()
    seen = _peek(sys.argv[1:])
    if seen is not None:
        from bpttcheck.sandbox.prestart import prestart_for
        prestart_for(seen["path"], seen["spec"], seen["sanitize"], seen["timeout"],
                     seen["memory_mb"])
    plain = parse_run(sys.argv[1:])
    try:
        if plain is not None:
            sys.exit(_run(plain))
        from bpttcheck.cli import main as cli_main
        cli_main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            sys.stderr.write(f"{e.code}\n")
        # every output is written and closed by now: run the exit hooks (the early worker's
        # clean-up), flush, and skip the interpreter's teardown of numpy and pydantic
        # (about a tenth of a second of a passing check)
        import atexit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
