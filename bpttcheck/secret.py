"""The grading secret (`BPTTCHECK_SECRET`): taken out of this process's environment as soon
as it is read, the probe seed derived from it and a submission's content, and the tag that
names such a hidden case in reports without revealing its seed. Standard library only: the
entry point calls it before anything else starts."""
from __future__ import annotations

import os

SECRET_VAR = "BPTTCHECK_SECRET"

_held: str | None = None  # taken by the entry point before the early worker starts


def _scrub(name: str) -> None:
    """Overwrite the variable's value where the C environment keeps it: /proc/<pid>/environ
    shows the process's original environment block, which unsetenv leaves as it was."""
    try:
        import ctypes
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, AttributeError, ValueError):
        return
    prefix = name.encode() + b"="
    i = 0
    while environ[i]:
        addr = environ[i]
        text = ctypes.string_at(addr)
        if text.startswith(prefix):
            ctypes.memset(addr + len(prefix), 0, len(text) - len(prefix))
        i += 1


def take() -> str:
    """The secret ('' when none), removed from os.environ and from the environment block, so
    no worker, compiler or reader of /proc/<this process>/environ sees it."""
    value = os.environ.get(SECRET_VAR)
    if value is None:
        return _held or ""
    _scrub(SECRET_VAR)
    os.environ.pop(SECRET_VAR, None)
    return value


def hold() -> None:
    """Take the secret now (the entry point, before the early worker starts); take() gives it."""
    global _held
    value = take()
    if value:
        _held = value


def submission_seed(secret: str, content: bytes) -> int:
    """The probe seed of a hidden case: an HMAC of the submission's content under the secret,
    so answers recorded at one submission's case do not replay on another's."""
    import hashlib  # here, not at the top: hold() runs before the early worker starts
    import hmac
    digest = hmac.new(secret.encode(), b"bpttcheck seed\0" + content, hashlib.sha256)
    return int(digest.hexdigest()[:16], 16)


def case_tag(secret: str, seed: int) -> str:
    """What reports show instead of a hidden seed: 8 hex digits that name the case (the same
    submission and secret give the same tag) and reveal nothing of the seed or the secret."""
    import hashlib
    import hmac
    digest = hmac.new(secret.encode(), b"bpttcheck case tag\0" + str(seed).encode(),
                      hashlib.sha256)
    return digest.hexdigest()[:8]
