"""How much a finding weighs: a failed check fails the run unless its severity is "warning".

Correct code never fails. A softmax without max-subtraction computes the right gradient
wherever its logits stay below ~709 (Karpathy's own min-char-rnn is such code): the
large-logit probe that catches it is a warning, shown in every report, not a failure.
Truncated BPTT is a training technique, reported as a note. A function that writes into the
state, the upstream gradient or the cache it was handed, with its gradients right, warns: the
caller's array changes (a gradient check that reuses it then fails), the gradients do not. A spec's ``[checks]`` table
changes either: a check's full name or a warning's id -> "fail" | "warning"."""
from __future__ import annotations

from bpttcheck.result import Report

Severity = str  # "fail" | "warning"
SEVERITIES = ("fail", "warning")

# check -> the id its finding is reported under, for checks that warn by default
WARNING_OF = {"probe.large-logits": "softmax.unstable"}
DEFAULT = {"probe.large-logits": "warning"}
# findings that are notes, not checks, and that a spec may make fail: id -> what "fail" means
NOTE_FINDINGS = {"bptt.truncated": "truncated BPTT is judged against full BPTT and fails"}


def warning_id(check: str) -> str | None:
    """The id a check's failure is reported under when it warns."""
    if check.endswith("inputs-unchanged"):  # behaviour.inputs-unchanged, behaviour.<unit>...
        return "grad.inputs-modified"
    return WARNING_OF.get(check)


def severity(overrides: dict[str, str], check: str, warns: bool = False) -> Severity:
    """The severity of a failed check: the spec's word for the check itself, then for the
    warning id it reports under, then the default ("fail" for every check but the probes,
    and but a check whose result says its failure warns: ``CheckResult._warns``)."""
    if check in overrides:
        return overrides[check]
    wid = warning_id(check)
    if wid and wid in overrides:
        return overrides[wid]
    return DEFAULT.get(check, "warning" if warns else "fail")


def allows(overrides: dict[str, str], finding: str) -> bool:
    """Is a note-finding (``NOTE_FINDINGS``) accepted, i.e. not made to fail by the spec?"""
    return overrides.get(finding, "warning") != "fail"


def apply(r: Report, overrides: dict[str, str]) -> None:
    """Failed checks whose severity is "warning" become "warn"; the diagnoses they explain move
    to ``warnings``. When nothing fails any more, every diagnosis is a warning's."""
    warned = set()
    for c in r.checks:
        if c.status == "fail" and severity(overrides, c.name, c._warns) == "warning":
            c.status = "warn"
            warned.add(warning_id(c.name) or c.name)
    if not warned:
        return
    _parts_again(r)
    if all(c.status != "fail" for c in r.checks):
        r.warnings, r.diagnoses = r.diagnoses, []
        return
    r.warnings = [d for d in r.diagnoses if d.id in warned]
    r.diagnoses = [d for d in r.diagnoses if d.id not in warned]


def known_key(key: str) -> str | None:
    """Why a ``[checks]`` key names no check or warning, or None."""
    from bpttcheck.spec import _unknown_check
    if key in WARNING_OF.values() or key in NOTE_FINDINGS:
        return None
    if key == "default" or key.endswith(".*"):
        return (f"checks key {key!r}: name one check (\"probe.large-logits\", "
                f"\"behaviour.repeat\") or a warning's id (\"softmax.unstable\", "
                f"\"bptt.truncated\")")
    problem = _unknown_check(key)
    if problem:
        return problem.replace("points key", "checks key")
    family = key.split(".", 1)[0]
    if family in ("forward", "behaviour", "probe", "layout") and key not in _named_checks():
        return (f"checks key {key!r} names no check (e.g. \"probe.large-logits\", "
                f"\"behaviour.repeat\", \"forward.loss\", \"layout.gate-order\")")
    return None


def _named_checks() -> set[str]:
    """The forward, behaviour, probe and layout checks of every built-in style."""
    from bpttcheck.scoring import BUILT_IN, scored_checks
    names = {"layout.gate-order"}
    for arch in BUILT_IN:
        names |= set(scored_checks(arch))
    names |= set(scored_checks("+".join(BUILT_IN), "layers"))
    return names


def _parts_again(r: Report) -> None:
    """The layer style's verdict a family (``parts``), once warnings no longer fail: a family
    stays "fail" while one of its units' checks fails or did not run."""
    if not r.parts:
        return
    from bpttcheck.check.layers import unit_of
    from bpttcheck.layer_api import BY_NAME
    for fam, verdict in list(r.parts.items()):
        if verdict != "fail":
            continue
        mine = [c for c in r.checks if (u := BY_NAME.get(unit_of(c.name))) and u.family == fam]
        if any(c.status == "warn" for c in mine) and all(
                c.status in ("pass", "warn", "skip") for c in mine):
            r.parts[fam] = "pass"
