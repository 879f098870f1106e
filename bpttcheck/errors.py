"""bpttcheck's errors: one small hierarchy, each message says what to do; and the kinds of
error a report names (``error.kind`` in the JSON, CONTRACT §5 and §7)."""
from __future__ import annotations

import os
from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a check could not finish. The values are the strings the JSON report carries."""

    CRASH = "crash"  # the worker died of a signal (SIGSEGV, abort, ...)
    TIMEOUT = "timeout"  # a call, a batch or the import did not finish in time
    EXCEPTION = "exception"  # the user's code raised
    INTERFACE = "interface"  # it returned something bpttcheck cannot read, or has no entry point
    NOT_IMPLEMENTED = "not-implemented"  # the entry point is still a stub
    EXIT = "exit"  # sys.exit / os._exit / C exit() instead of returning
    MEMORY = "memory"  # MemoryError, or killed at the memory limit
    SYNTAX = "syntax"  # the file does not parse (or is not text)
    IMPORT = "import"  # importing it failed on an import of its own
    COMPILE = "compile"  # the C file does not compile
    SANITIZER = "sanitizer"  # AddressSanitizer / UBSan stopped the C code
    FORBIDDEN = "forbidden"  # a process, the network, or bpttcheck's reference (sandbox/guard.py)
    MISSING = "missing"  # grade: no model file in a student's folder
    AMBIGUOUS = "ambiguous"  # grade: several candidate model files
    INTERNAL = "internal"  # bpttcheck's own bug
    PLUGIN = "plugin"  # an installed plugin (adapter or architecture) is broken
    PROTOCOL = "protocol"  # a reply the worker never sends: forged by user code, or garbled
    KILLED = "killed"  # grade: the process checking it died twice, the second time alone


def source_line(path: str, lineno: int, text: str | None = None) -> str:
    """``model.py:42: dh = Why @ dy``: how every message points at a line of the user's code.
    ``text`` is the line when the caller has it (a traceback frame); otherwise it is read from
    ``path``, and left empty when the file cannot be read."""
    if text is None and lineno >= 1:
        try:
            with open(path, errors="replace") as f:
                text = f.read().splitlines()[lineno - 1]
        except (OSError, IndexError, ValueError):
            text = ""
    return f"{os.path.basename(path)}:{lineno}: {(text or '').strip()}"


class BpttcheckError(Exception):
    """Base class: something stopped the check."""

    exit_code = 4


class UsageError(BpttcheckError):
    """The command line or a spec file is wrong (exit 2)."""

    exit_code = 2


class SpecError(UsageError):
    """An assignment spec does not validate."""


class UserCodeError(BpttcheckError):
    """The user's code could not be loaded or run (exit 3)."""

    exit_code = 3

    def __init__(self, kind: str, message: str, line: str | None = None, output: str = ""):
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message
        self.line = line  # "model.py:42: dh = Why @ dy" where we know it
        self.output = output  # the tail of what the code printed


class PluginError(BpttcheckError):
    """An installed plugin is broken: it does not import, lacks what hookspecs.py requires, or
    raises in its own code (exit 4). Never the student's fault; the message names the plugin
    and its entry point so the person who installed it can fix or remove it."""

    exit_code = 4
    kind = ErrorKind.PLUGIN

    def __init__(self, group: str, name: str, value: str, problem: str):
        self.group, self.name, self.value, self.problem = group, name, value, problem
        self.message = (f"plugin error: the {group} entry point {name!r} ({value}) {problem}. "
                        f"This is not a problem with the code being checked: fix or uninstall "
                        f"the package that provides this plugin")
        super().__init__(self.message)


class InterfaceError(Exception):
    """User code returned something we cannot read (raised inside the worker)."""
