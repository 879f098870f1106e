"""The worker's limits: what a spec and the flags allow, and how they are applied to the
worker process between fork and exec (resource limits, death with the checker, no network)."""
from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass


@dataclass
class Limits:
    call_timeout: float = 10.0  # seconds for one call of the user's function
    load_timeout: float = 20.0  # seconds for importing the module
    memory_mb: int = 4096  # address space of the worker
    output_cap: int = 64 << 10  # bytes of the user's prints kept
    preload: str | None = None  # a sanitizer runtime to LD_PRELOAD (C code built with --sanitize)
    # "folder": the submission's folder is copied; "data": only the file and the data files
    # beside it (a class folder of one file per student: the others' code is not copied)
    copy: str = "folder"
    # the folder the user runs bpttcheck from (`run`): its Python sources are staged too, so
    # imports resolve as they would for `python FILE` run there (staging.py)
    run_from: str | None = None


def limits_for(spec_limits: dict | None, timeout: float | None, memory_mb: int | None) -> Limits:
    """The worker's limits from a spec's [limits] table (already validated, or raw TOML for
    the prestart) and the --timeout / --memory-mb flags, which win."""
    lim = Limits()
    if spec_limits is not None:
        t, m = spec_limits.get("timeout"), spec_limits.get("memory_mb", lim.memory_mb)
        if t is not None:
            lim.call_timeout = lim.load_timeout = float(t)
        lim.memory_mb = int(m)
    if timeout is not None:
        lim.call_timeout = lim.load_timeout = timeout
    if memory_mb is not None:
        lim.memory_mb = memory_mb
    return lim


CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
NOFILE = 256  # open files of the worker
NPROC_MARGIN = 64  # tasks the worker may add to its user's count (threads count too)
_libc_cache: list = []


def disable_namespaces() -> None:
    """Start later workers without libc's prctl/unshare (no network namespace, no death
    signal, no subreaper): what a platform without them gets. For tests of the fallbacks."""
    _libc_cache[:] = [None]


def libc():
    """libc through ctypes (Linux), resolved in the checker before a fork; or None."""
    if not _libc_cache:
        lib = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                lib = ctypes.CDLL(None, use_errno=True)
                lib.unshare, lib.prctl  # noqa: B018 - resolve the symbols now, not in the child
            except (OSError, AttributeError):
                lib = None
        _libc_cache.append(lib)
    return _libc_cache[0]

def cpu_seconds(limits: Limits) -> int:
    """CPU time of the whole worker: generous (the wall clock of each request is the real
    limit), but a busy loop that escaped it still dies."""
    return int(limits.load_timeout + 50 * limits.call_timeout) + 1

def nproc(uid: int) -> int | None:
    """An RLIMIT_NPROC for a worker of ``uid``: the tasks that user runs now plus a margin, so
    a fork bomb stops early. None for root, whom the kernel does not hold to it."""
    if uid == 0 or not sys.platform.startswith("linux"):
        return None
    import psutil  # here, not at the top: the early worker's start should not wait for it

    n = 0
    for p in psutil.process_iter(["uids", "num_threads"]):
        uids, threads = p.info["uids"], p.info["num_threads"]  # None: gone or not ours to read
        if uids is not None and uids.real == uid:
            n += threads or 1
    return n + NPROC_MARGIN


def preexec(limits: Limits, nproc: int | None = None, libc=None, namespaces: bool = True):
    """The worker's preexec_fn (after fork, before exec): resource limits; dies with the
    checker; adopts its orphaned descendants (so close() finds them); no network. Under the
    OS sandbox (osbox.py) the process is bwrap: the limits hold for it and everything it
    starts, and ``namespaces`` is False, since bwrap makes its own (a user namespace made
    here would leave bwrap unable to map its users)."""
    memory_mb = 0 if limits.preload else limits.memory_mb  # ASan reserves terabytes of address
    cpu = cpu_seconds(limits)                                # space for its shadow: no RLIMIT_AS

    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb:
            b = memory_mb << 20
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))  # SIGXCPU, then SIGKILL
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        n = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # a network namespace of its own has nothing but a loopback that is down; without
        # root, a user namespace may allow it; otherwise guard.py still refuses sockets
        if libc is not None and namespaces and libc.unshare(CLONE_NEWNET) != 0:
            libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)
    return apply

def worker_env(home: str) -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env
