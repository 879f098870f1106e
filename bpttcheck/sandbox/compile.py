"""Compiling a user's C file into a shared library (cached by content hash), with compiler
errors shown against the user's own file and lines."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from bpttcheck.errors import ErrorKind, UserCodeError, source_line

FLAGS = ["-O2", "-shared", "-fPIC", "-Wall"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]


def include_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "include")


def compiler() -> str | None:
    for cc in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def sanitizer_runtime() -> str | None:
    """The AddressSanitizer runtime to preload into the worker: a Python that was not built
    with ASan must load it before anything else for an instrumented library to work."""
    cc = compiler()
    if cc is None:
        return None
    try:
        out = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return os.path.realpath(out) if out and os.path.isabs(out) and os.path.exists(out) else None


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = os.path.join(base, "bpttcheck", "so")
    try:
        os.makedirs(d, exist_ok=True)
        return d
    except OSError:
        return tempfile.mkdtemp(prefix="bpttcheck-so-")


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _verified(out: str) -> bool:
    """Whether the cached library is the one the checker built: the hash of its bytes equals
    the one recorded when it was written. A library written over (by code that can reach the
    cache, such as an earlier submission's) or without a record is built again."""
    try:
        with open(out + ".sha256") as f:
            recorded = f.read().strip()
    except OSError:
        return False
    return bool(recorded) and _digest(out) == recorded


def compile_c(path: str, sanitize: bool = False, timeout: float = 60.0,
              cache: str | None = None) -> str:
    """Path of the shared library built from ``path``; UserCodeError('compile') on failure.
    ``cache``: the folder builds are kept in (``grade`` gives one of its own for the run);
    by default the user's cache (cache_dir()). A cached library is used only if its bytes
    hash to what was recorded when the checker built it."""
    cc = compiler()
    if cc is None:
        raise UserCodeError(ErrorKind.COMPILE, "no C compiler found (tried $CC, gcc, cc, clang): install "
                            "gcc (Debian: apt-get install gcc) or pass a prebuilt .so")
    flags = FLAGS + (SANITIZE if sanitize else [])
    with open(path, "rb") as f:
        src = f.read()
    with open(os.path.join(include_dir(), "bpttcheck.h"), "rb") as f:
        header = f.read()
    key = hashlib.sha256(src + header + " ".join([cc, *flags]).encode()).hexdigest()[:20]
    out = os.path.join(cache or cache_dir(), f"{key}.so")
    if os.path.exists(out) and _verified(out):
        return out
    tmp = out + f".{os.getpid()}.tmp"
    cmd = [cc, *flags, "-I" + include_dir(), os.path.abspath(path), "-o", tmp, "-lm"]
    try:
        # gcc quotes the source as it is: a Latin-1 comment must not make us crash
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise UserCodeError(ErrorKind.COMPILE, f"compiling {os.path.basename(path)} took more than "
                            f"{timeout:g} s") from None
    if res.returncode != 0:
        text = res.stderr.replace(os.path.abspath(path), os.path.basename(path))
        errors = [ln for ln in text.splitlines() if ": error:" in ln]
        m = re.match(r"([^:]+):(\d+):", errors[0]) if errors else None
        line = None
        if m:
            n = int(m.group(2))
            lines = src.decode(errors="replace").splitlines()
            line = source_line(path, n, lines[n - 1] if 0 < n <= len(lines) else "")
        first = "\n".join(errors[:5]) or text.strip()[-2000:]
        raise UserCodeError(ErrorKind.COMPILE, f"{os.path.basename(path)} does not compile:\n{first}",
                            line, text[-8000:])
    digest = _digest(tmp)
    os.replace(tmp, out)
    record = out + f".{os.getpid()}.sha256.tmp"
    with open(record, "w") as f:
        f.write(f"{digest}\n")
    os.replace(record, out + ".sha256")
    return out
