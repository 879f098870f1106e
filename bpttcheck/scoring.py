"""Points: what each check is worth, the maximum score of an assignment, and the score card of
a run (what each scored check earned, the ones that did not run included).

Every submission of an assignment has the same maximum, whatever happened to it: the maximum
is the sum of the points of the checks a checked submission of the assignment's architecture
and style has (the *scored checks*), not of the checks that happened to run. A check outside
that set (a per-group finite-difference check, which runs on small or failing models only) is
shown but carries no points; a scored check that did not run earns none of its points."""
from __future__ import annotations

from bpttcheck.result import CheckScore, Report, Score

# the built-in architectures, for the rule when no architecture is known (README, "Points")
BUILT_IN = ("rnn", "lstm", "gru")
# recorded only when it fails: a run that settled its layout without recording it passed it
# (the gate order is the declared one, or the gates are matrices of their own)
SILENT = ("layout.gate-order",)
# errors after which nothing the code answered is trusted: it broke the sandbox's rules or
# wrote to the worker's reply pipe (CONTRACT 7), so the checks before it earn nothing either
FORFEIT = ("forbidden", "protocol")
EARNS = ("pass", "skip", "warn")  # a skipped check does not apply; a warning is no failure


def points_of(points: dict[str, float], check: str) -> float:
    """Points of a check: its own name, then its family ("grad.*"), then "default", then 1."""
    family = check.split(".", 1)[0] + ".*"
    return float(points.get(check, points.get(family, points.get("default", 1.0))))


def scored_checks(arch: str, style: str | None = None) -> tuple[str, ...]:
    """The checks a checked submission of this architecture and style has, in report order.
    The layer style's architecture is its families joined by "+" ("rnn+lstm")."""
    if style == "layers" or "+" in arch:
        from bpttcheck.layer_api import UNITS
        families = set(arch.split("+")) & {u.family for u in UNITS} or {u.family for u in UNITS}
        names: list[str] = []
        for u in UNITS:
            if u.family in families:
                names += [f"forward.{u.name}.{o}" for o in u.outputs]
                names += [f"grad.{u.name}.{g}" for g in u.grads]
                names.append(f"behaviour.{u.name}.inputs-unchanged")
                names += [f"fd.{u.name}.{g}" for g in u.grads]
        return tuple(names)
    from bpttcheck.archmeta import meta
    from bpttcheck.layout import GATE_LETTERS
    m = meta(arch)
    gated = ("layout.gate-order",) if arch in GATE_LETTERS else ()
    return (*gated, "forward.loss", *(f"forward.last_{s}" for s in m.state_names),
            *(f"grad.{p}" for p in m.param_names),
            "behaviour.inputs-unchanged", "behaviour.repeat", "probe.large-logits", "fd.all")


def max_score(points: dict[str, float], arch: str | None, style: str | None = None) -> float:
    """The maximum of an assignment. With no architecture known (no spec arch, no --arch, and
    the code failed before its architecture was seen): the largest maximum of the built-in
    architectures, so that an error is never out of fewer points than a checked submission."""
    if not arch:
        return max_score(points, largest(points, style), style if style == "layers" else None)
    return sum(points_of(points, c) for c in scored_checks(arch, style))


def largest(points: dict[str, float], style: str | None = None) -> str:
    """The built-in architecture with the largest maximum (the first on a tie)."""
    st = style if style == "layers" else None
    return max(BUILT_IN, key=lambda a: (max_score(points, a, st), -BUILT_IN.index(a)))


def assignment_arch(r: Report, arch: str | None) -> str | None:
    """The architecture that sets the maximum: the assignment's (spec or --arch), else the
    one the check found."""
    return arch or r.arch or None


def scorecard(r: Report, points: dict[str, float] | None = None, arch: str | None = None,
              style: str | None = None) -> Score:
    """What each scored check of the assignment earned on this run, out of the assignment's
    maximum. A scored check that passed, was skipped because it does not apply (fd.all when
    the gradients are truncated BPTT) or only warned earns its points; one that failed, or did
    not run (an error stopped the run before it, no last state was returned), earns none. The
    checks an error left behind keep what they earned, except after an error of FORFEIT."""
    points = points or {}
    st = style or r.style
    a = assignment_arch(r, arch)
    note = ""
    if not a:
        a = largest(points, st)
        note = (f"no architecture known (the code stopped before it was seen, and the spec sets "
                f"no assignment.arch): scored out of the largest built-in maximum, the "
                f"{a.upper()}'s")
        st = st if st == "layers" else None
    ran: dict[str, str] = {c.name: c.status for c in r.checks}
    forfeit = bool(r.error and r.error.kind in FORFEIT)
    rows = []
    for name in scored_checks(a, st):
        possible = points_of(points, name)
        status = ran.get(name) or (
            "pass" if name in SILENT and r.layout is not None else "not-run")
        earned = possible if status in EARNS and not forfeit else 0.0
        rows.append(CheckScore.model_validate({"name": name, "status": status, "earned": earned,
                                               "possible": possible}))
    got = sum(c.earned for c in rows)
    top = sum(c.possible for c in rows)
    return Score(earned=round(got, 6), possible=round(top, 6),
                 percent=round(100 * got / top, 1) if top else 0.0, checks=rows, note=note)


def rescaled(s: Score, top: float, why: str) -> Score:
    """The score card out of another maximum (a class's): every check's points scaled by the
    same factor, so the percentage stays and the checks still add up to the total."""
    if s.possible == top:
        return s
    f = top / s.possible if s.possible else 0.0
    checks = [c.model_copy(update={"earned": round(c.earned * f, 6),
                                   "possible": round(c.possible * f, 6)}) for c in s.checks]
    earned = round(s.earned * f, 6) if s.possible else 0.0
    return Score(earned=earned, possible=top, percent=s.percent if s.possible else 0.0,
                 checks=checks, note="; ".join(x for x in (s.note, why) if x))


def attach(r: Report, points: dict[str, float] | None = None, arch: str | None = None,
           style: str | None = None) -> Report:
    """The report with its score card (the JSON's ``score``, the HTML report's points)."""
    r.score = scorecard(r, points, arch, style)
    return r


def check_points(r: Report, points: dict[str, float], arch: str | None = None,
                 style: str | None = None) -> dict[str, float]:
    """Points each check of the report is worth (0 for the checks outside the scored set)."""
    a = assignment_arch(r, arch)
    scored = set(scored_checks(a, style or r.style)) if a else set()
    return {c.name: points_of(points, c.name) if c.name in scored else 0.0 for c in r.checks}


def score(r: Report, points: dict[str, float] | None = None, arch: str | None = None,
          style: str | None = None) -> tuple[float, float]:
    """(score, maximum) of a run: the score card's total (see scorecard)."""
    s = scorecard(r, points, arch, style)
    return s.earned, s.possible


# check families (the part of a check's name before the first dot) that can carry points
FAMILIES = ("forward", "grad", "fd", "behaviour", "probe", "layout", "implemented", "runs")


def known_checks(arch: str | None, style: str | None = None) -> list[str]:
    """Every check a submission of this architecture and style can have (any built-in
    architecture and the layer style when ``arch`` is None; an architecture's layer units
    too unless the style says it is a sequence style)."""
    from bpttcheck.archmeta import concat_weights, meta
    from bpttcheck.layer_api import UNITS
    archs = [arch] if arch else list(BUILT_IN)
    out: list[str] = []
    for a in archs:
        if style != "layers" and "+" not in a:
            m = meta(a)
            out += scored_checks(a, style)
            out += [f"fd.{p}" for p in m.param_names]
            out += ["layout.gate-order"] if concat_weights(m) else []
        families = set(a.split("+"))
        if style in (None, "layers") and families & {u.family for u in UNITS}:
            out += scored_checks("+".join(sorted(families)), "layers")
            out += [f"{w}.{u.name}" for u in UNITS if u.family in families
                    for w in ("implemented", "runs")]
    return list(dict.fromkeys(out))


def canonical_points(points: dict[str, float], arch: str | None, style: str | None,
                     layout) -> dict[str, float]:
    """A spec's [points] with the student's names (``layout``: the spec's bpttcheck.layout
    Layout) turned into check names: ``grad.W_f`` is ``grad.Wf``; a stacked ``grad.W``
    gives each of its gate blocks' checks the points, ``grad.W[forget]`` one of them; an
    alias the architecture knows counts too. A key naming one check outranks one naming
    several; ValueError for a key that names no check (``grad.all`` included: only
    ``fd.all`` exists), listing the valid ones."""
    from bpttcheck.archmeta import meta
    from bpttcheck.names import canonical_for
    known = known_checks(arch, style)
    params = [p for a in ([arch] if arch else BUILT_IN) if "+" not in a
              for p in meta(a).param_names]
    single: dict[str, tuple[str, float]] = {}
    several: dict[str, float] = {}
    for key, value in points.items():
        family, _, rest = key.partition(".")
        if key == "default" or (rest == "*" and family in FAMILIES) or key in known:
            checks = [key]
        elif family in ("grad", "fd") and rest:
            groups = layout.groups_named(rest, params)
            if not groups and arch and "+" not in arch:
                found = canonical_for(arch, rest)  # not a block of a stacked array
                groups = [found] if found and layout.groups_named(
                    layout.user_name(found), params) == [found] else []
            checks = [f"{family}.{g}" for g in groups if f"{family}.{g}" in known]
        else:
            checks = []
        if not checks:
            raise ValueError(_no_check(key, known, layout.user_keys(params)))
        for c in checks:
            if len(checks) > 1:
                several.setdefault(c, value)
            elif c in single and single[c][1] != value:
                raise ValueError(f"points keys {single[c][0]!r} and {key!r} both name {c!r} "
                                 f"with different points ({single[c][1]:g}, {value:g})")
            else:
                single[c] = (key, value)
    return {**several, **{c: v for c, (_, v) in single.items()}}


def _no_check(key: str, known: list[str], user_keys: list[str]) -> str:
    groups = [k.removeprefix("grad.") for k in known if k.startswith("grad.")]
    others = [k for k in known if not k.startswith(("grad.", "fd."))]
    return (f"points key {key!r} names no check. Valid keys: \"default\"; a family's "
            f"\"<family>.*\" ({', '.join(FAMILIES)}); a check's full name: "
            f"{', '.join(others)}; \"grad.<group>\" and \"fd.<group>\" for the groups "
            f"{', '.join(groups)}" + ("; \"fd.all\"" if "fd.all" in known else "")
            + (f"; your names under \"grad.\" or \"fd.\": {', '.join(user_keys)}"
               if user_keys else ""))
