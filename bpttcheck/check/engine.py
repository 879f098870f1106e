"""The engine: build and load the user's code in a worker, then hand it to the checker of its
kind (a sequence function or layer units), each of which compares it with the float64
reference and with finite differences of the user's own loss."""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bpttcheck import __version__
from bpttcheck.check import severity
from bpttcheck.check.findings import Observation  # noqa: F401 - re-exported: its old home
from bpttcheck.check.recorder import Recorder
from bpttcheck.errors import UserCodeError
from bpttcheck.oracle.common import Dims
from bpttcheck.result import ErrorInfo, Report
from bpttcheck.sandbox import osbox
from bpttcheck.sandbox.limits import Limits
from bpttcheck.sandbox.session import WorkerSession, session

if TYPE_CHECKING:
    from bpttcheck.check.layers import LayerChecker
    from bpttcheck.check.sequence import SequenceChecker


@dataclass
class Options:
    style: str | None = None  # adapter name, None = detect
    arch: str | None = None
    seed: int = 0
    dims: Dims | None = None
    adapter_options: dict = field(default_factory=dict)  # names, layout, ... (spec/BPTTCHECK)
    limits: Limits = field(default_factory=Limits)
    diagnose: bool = True
    sanitize: bool = False  # C only: build with AddressSanitizer and UBSan
    views: bool = False  # heatmaps and gradient flow of the user's code (for --html)
    views_fd: bool = True  # ... with entry-wise finite differences when a group fails
    # a forward that is no standard model (nor a variant of one) fails, instead of being
    # judged by finite differences of its own loss (spec: model = "standard")
    require_standard: bool = False
    # gradients by finite differences or the complex step of the user's own loss fail
    # behaviour.numerical-gradients (spec: forbid_numerical_gradients; check/numgrad.py)
    forbid_numerical_gradients: bool = False
    # severity per check or finding id ("probe.large-logits", "softmax.unstable",
    # "bptt.truncated" -> "fail" | "warning"; spec [checks], check/severity.py)
    checks: dict[str, str] = field(default_factory=dict)
    # spec [tolerances]: "loss_rtol", "grad_rtol", "fd_rtol" -> the value that replaces the
    # one derived from the code's dtype in the checks that decide the verdict (checks.py)
    tolerances: dict[str, float] = field(default_factory=dict)
    # BPTTCHECK_SECRET (settings.py): each submission's seed is derived from it and its
    # content, and reports show a case tag instead of that seed
    secret: str | None = field(default=None, repr=False)
    # a hidden case whose seed (in `seed`) was derived where the secret is kept: `grade
    # --cluster` sends each check its seed and tag, never the secret; reports show this tag
    case_tag: str | None = None
    # where C builds are kept: None, the user's cache; `grade` gives a folder of its own
    so_cache: str | None = None
    # refuse to run user code without the OS sandbox (--require-sandbox, [limits]
    # require_sandbox; sandbox/osbox.py): SandboxError, exit 4
    require_sandbox: bool = False


def check(path: str, opts: Options | None = None) -> Report:
    # a copy: the run fills in the style and the sanitizer's preload, which must not carry
    # over into the caller's next run with the same Options
    opts = copy.deepcopy(opts or Options())
    if opts.require_sandbox:
        osbox.require()
    t0 = time.perf_counter()
    tag = _hidden_case(path, opts)
    rec = Recorder(Report(verdict="pass", path=path, seed=None if tag else opts.seed,
                          case_tag=tag, version=__version__))
    r, worker = rec.report, None
    try:
        lib = _compile(path, opts, rec)
        with session(path, opts.limits) as worker:
            _check_loaded(path, opts, rec, worker, lib)
            r.evaluations = worker.evaluations
    except UserCodeError as e:
        r.verdict = "error"
        r.error = ErrorInfo(kind=e.kind, message=e.message, line=e.line, output=e.output)
        r.evaluations = getattr(worker, "evaluations", 0)
    # the sandbox the code ran in (or would have: a C file that does not compile)
    weak = osbox.weak_note(worker.sandbox if worker is not None else osbox.current())
    if weak:
        rec.note(*weak)
    r.timings["total"] = round(time.perf_counter() - t0, 4)
    if r.verdict != "error":
        severity.apply(r, opts.checks)
        r.verdict = "pass" if all(c.status != "fail" for c in r.checks) else "fail"
    if r.verdict == "pass":
        r.diagnoses = []
    return r


def _hidden_case(path: str, opts: Options) -> str | None:
    """With a secret: this submission's seed (from the secret and the file's bytes) into
    opts.seed, and the case tag reports show instead of it."""
    if opts.case_tag:
        return opts.case_tag
    if not opts.secret:
        return None
    from bpttcheck.secret import case_tag, submission_seed
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError:
        content = b""  # the check itself says what is wrong with the file
    opts.seed = submission_seed(opts.secret, content)
    return case_tag(opts.secret, opts.seed)


def _check_loaded(path: str, opts: Options, rec: Recorder, w: WorkerSession,
                  lib: str | None) -> None:
    options = dict(opts.adapter_options)
    if opts.arch:
        options["arch"] = opts.arch
    if path.endswith(".so"):
        lib = w.user_path
    if "c_globals" in options:
        options["c_globals"] = _globals_sizes(path, options["c_globals"])
        opts.style = opts.style or "c-globals"
    with rec.timed("load"):
        info = w.load(opts.style, options, lib)
    rec.report.style, rec.report.arch = info["adapter"], info["arch"]
    for skipped in info.get("skipped", []):
        rec.note("load.skipped-loop", "Top-level training loop not run",
                 f"bpttcheck did not run {skipped} while importing your module.")
    for n in info.get("notes", []):  # the loader's and the adapter's
        rec.note(n["id"], n["title"], n["evidence"])
    checker: LayerChecker | SequenceChecker
    if info["capabilities"]["kind"] == "units":  # batched step/sequence functions
        from bpttcheck.check.layers import LayerChecker
        checker, timing = LayerChecker(rec, w, info, opts), "layers"
    else:
        from bpttcheck.check.sequence import SequenceChecker
        checker, timing = SequenceChecker(rec, w, info, opts), None  # it times its parts
    try:
        with rec.timed(timing) if timing else contextlib.nullcontext():
            checker.run()
    except UserCodeError as e:
        # the checks that passed before the error are no verdict: say which did not run
        rec.not_run(checker.expected_checks(), f"the check stopped at the {e.kind} error "
                    "above before it ran")
        raise


def _compile(path: str, opts: Options, rec: Recorder) -> str | None:
    """Build a .c file (before the worker starts: a sanitizer build changes how it starts)."""
    if not path.endswith(".c"):
        return None
    from bpttcheck.sandbox.compile import compile_c, sanitizer_runtime
    with rec.timed("compile"):
        lib = compile_c(path, sanitize=opts.sanitize, cache=opts.so_cache)
        if opts.sanitize:
            rt = sanitizer_runtime()
            if rt is None:
                raise UserCodeError("compile", "--sanitize needs the AddressSanitizer runtime "
                                    "(libasan) of your compiler; install it (Debian: libasan8)")
            opts.limits.preload = rt
            rec.note("c.sanitize", "Built with AddressSanitizer and UBSan",
                     "the first out-of-bounds access or undefined behaviour stops the check")
    return lib


def _globals_sizes(path: str, g: dict) -> dict:
    """Sizes of a globals-style C file, read from its #defines."""
    from bpttcheck.adapters.c_globals import sizes_from_defines
    from bpttcheck.errors import InterfaceError
    src = path[:-3] + ".c" if path.endswith(".so") else path
    try:
        with open(src, errors="replace") as f:
            g = dict(g, sizes=sizes_from_defines(f.read(), g["sizes_from"]))
    except (OSError, InterfaceError) as e:
        raise UserCodeError("interface", f"cannot read the sizes of {src}: {e}") from None
    return g
