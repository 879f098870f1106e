"""Turning a spec file and command-line overrides into engine options (shared by `run` and
`grade`, so both read a spec the same way)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bpttcheck.check.engine import Options
from bpttcheck.errors import SpecError, UsageError
from bpttcheck.feedback import Feedback
from bpttcheck.secret import SECRET_VAR, take  # noqa: F401 - SECRET_VAR: its old home


@dataclass
class Settings:
    opts: Options
    points: dict[str, float] = field(default_factory=dict)
    entry: str | None = None  # the file to check inside a student's folder (spec: assignment.file)
    # what the student is shown: apply with feedback.for_student before writing any report
    feedback: Feedback = field(default_factory=Feedback)
    title: str = ""  # the assignment's title (spec: assignment.title), on grade's index page


def _hide_environment() -> None:
    """Make this process undumpable, so code running as the same (non-root) user cannot read
    the secret from /proc/<checker>/environ or its memory (Linux; elsewhere nothing)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


def settings(spec: str | None = None, arch: str | None = None, style: str | None = None,
             seed: int | None = None, timeout: float | None = None,
             memory_mb: int | None = None, sanitize: bool = False,
             require_sandbox: bool = False) -> Settings:
    from bpttcheck.check.cases import Dims
    from bpttcheck.plugins import architecture_names, unknown_arch
    from bpttcheck.sandbox.limits import limits_for

    secret = take()  # out of the environment before any worker or compiler starts
    if arch is not None and arch not in architecture_names():
        raise UsageError(f"--arch: {unknown_arch(arch)}")
    s = Settings(Options())
    opts = s.opts
    spec_limits = None
    if spec:
        from bpttcheck.spec import load_spec
        sp = load_spec(spec)
        opts.arch, opts.style, opts.seed = sp.assignment.arch, sp.assignment.style, sp.assignment.seed
        opts.adapter_options = sp.adapter_options()
        opts.checks = dict(sp.checks)
        opts.require_standard = sp.assignment.model == "standard"
        opts.forbid_numerical_gradients = sp.assignment.forbid_numerical_gradients
        s.points, s.entry = dict(sp.points), sp.assignment.file
        s.feedback = Feedback(title=sp.assignment.title, **sp.feedback.model_dump())
        opts.tolerances = {k: v for k, v in sp.tolerances.model_dump().items() if v is not None}
        s.title = sp.assignment.title or ""
        if sp.sizes:
            opts.dims = Dims(**sp.sizes.model_dump())
        spec_limits = sp.limits.model_dump()
        opts.require_sandbox = sp.limits.require_sandbox
    if arch:
        opts.arch = arch
    if style:
        opts.style = style
    if opts.seed < 0:
        raise SpecError(f"spec {spec}: assignment.seed must be 0 or more, not {opts.seed}")
    if seed is not None and seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {seed}")
    if seed is not None:
        opts.seed = seed
    elif secret:  # hidden cases: the engine derives each submission's seed from the secret
        opts.secret = secret
    if secret:
        _hide_environment()
    opts.sanitize = sanitize
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout}")
    if memory_mb is not None and memory_mb < 64:
        raise UsageError(f"--memory-mb must be at least 64, not {memory_mb}")
    opts.limits = limits_for(spec_limits, timeout, memory_mb)
    opts.require_sandbox = opts.require_sandbox or require_sandbox
    from bpttcheck.sandbox import osbox
    if opts.require_sandbox:  # before any submission runs: a grade run stops here, whole
        osbox.require()
    else:
        osbox.current()  # probed once here: `grade`'s pool processes inherit the answer
    return s
