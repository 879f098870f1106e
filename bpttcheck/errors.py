"""bpttcheck's errors: one small hierarchy, each message says what to do."""


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
        self.kind = kind  # crash | timeout | exception | interface | exit | memory | import | ...
        self.message = message
        self.line = line  # "model.py:42: dh = Why @ dy" where we know it
        self.output = output  # the tail of what the code printed


class InterfaceError(Exception):
    """User code returned something we cannot read (raised inside the worker)."""
