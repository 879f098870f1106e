"""The HTML report: one self-contained file (inline CSS and SVG, nothing loaded from the
network, readable without JavaScript, printable) for one check, and the index page of a graded
class.

Everything a template shows is computed here as plain dicts and lists: numbers already
formatted, SVG geometry already laid out. The templates (bpttcheck/templates/) only place it,
with autoescaping on, so the user's own strings (paths, messages, printed output) can never
become markup."""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from bpttcheck.formatting import natural_key, nonfinite

if TYPE_CHECKING:  # pragma: no cover
    from bpttcheck.result import GroupResult, Heatmap, Report

MAX_CELLS = 64  # a heatmap shows at most this many rows and columns (max-abs pooling)
TITLED_CELLS = 1024  # up to this many cells, each cell carries a tooltip with its value
CENTRE = "#f7f7f7"  # within tolerance
NONFINITE = "#1b1b1b"  # NaN or inf
POS_ANCHORS = ["#f4a582", "#d6604d", "#b2182b", "#67001f"]  # yours above (RdBu)
NEG_ANCHORS = ["#92c5de", "#4393c3", "#2166ac", "#053061"]  # yours below
MAX_BINS = 5  # colour bins on each side of zero

_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        import jinja2  # lazily: the CLI's startup does not pay for it

        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
    return _ENV


# ---------------------------------------------------------------------------- formatting

def sci(x: float | None, digits: int = 2) -> str:
    """A measured value as 1.23e-07 ('-' when absent)."""
    if x is None:
        return "\u2014"
    return nonfinite(x) or f"{x:.{digits}e}"


def val(x: float | None, digits: int = 6) -> str:
    """A gradient entry (six significant digits) or a loss (ten)."""
    if x is None:
        return "\u2014"
    return nonfinite(x) or f"{x:.{digits}g}"


def _tick(x: float) -> str:
    """A short axis label: 0.5, 120, 1e-3, 2.5e4."""
    if x == 0:
        return "0"
    a = abs(x)
    if 1e-3 <= a < 1e4:
        return f"{x:.4g}"
    m, e = f"{x:.1e}".split("e")
    m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def _secs(x: float) -> str:
    return f"{x:.3f} s"


def _index(ix: Sequence[int]) -> str:
    return "[" + ",".join(str(i) for i in ix) + "]"


# ---------------------------------------------------------------------------- the report

def render(report: Report) -> str:
    """The report as one self-contained HTML page."""
    return _env().get_template("report.html.j2").render(r=_view(report))


def write(report: Report, path: str) -> None:
    """Write render(report) to path atomically."""
    from bpttcheck.output import write_atomic

    write_atomic(path, render(report))


def _view(r: Report) -> dict[str, Any]:
    n_fail = sum(c.status == "fail" for c in r.checks)
    n = len(r.checks)
    n_warn = sum(c.status == "warn" for c in r.checks)
    if r.verdict == "pass":
        headline = f"All {n} checks passed" if n else "Passed"
        if n_warn:
            headline += f", {n_warn} with a warning"
    elif r.verdict == "fail":
        headline = f"{n_fail} of {n} checks failed"
    else:
        headline = "Your code could not be run" + (f" ({r.error.kind})" if r.error else "")
    top = r.diagnoses[0] if r.diagnoses else None
    meta = []
    if r.arch:
        meta.append(("architecture", r.arch.upper()))
    if r.style:
        meta.append(("style", r.style))
    if r.sizes:
        meta.append(("sizes", " ".join(f"{k}={v}" for k, v in r.sizes.items())))
    if r.dtype:
        meta.append(("dtype", r.dtype))
    groups = {g.name: g for g in r.groups}
    sections = []
    v: dict[str, Any] = {
        "verdict": r.verdict,
        "verdict_label": r.verdict.upper(),
        "headline": headline,
        "top": None if top is None else {"id": top.id, "title": top.title},
        "path": r.path,
        "file": os.path.basename(r.path) or r.path,
        "meta": meta,
        "loss": _loss(r),
        "error": None if r.error is None else {
            "kind": r.error.kind, "message": r.error.message, "line": r.error.line,
            "output": r.error.output.rstrip("\n")},
        "diagnoses": [{"id": d.id, "confidence": f"{d.confidence:.2f}", "groups": d.groups,
                       "title": d.title, "evidence": d.evidence, "fix": d.fix,
                       "exact": d.exact, "first": i == 0, "where": _where(d.location)}
                      for i, d in enumerate(r.diagnoses)],
        "warnings": [{"id": d.id, "confidence": f"{d.confidence:.2f}", "groups": d.groups,
                      "title": d.title, "evidence": d.evidence, "fix": d.fix, "exact": d.exact}
                     for d in r.warnings],
        "notes": [{"id": x.id, "title": x.title, "evidence": x.evidence} for x in r.notes],
        "groups": [_group_row(g) for g in r.groups],
        "checks": _checks(r),
        "score": _score(r),
        "n_checks": n, "n_fail": n_fail,
        "n_not_run": sum(c.status == "not-run" for c in r.checks),
        "heatmaps": _heatmaps(r.heatmaps, groups),
        "flow": _flow(r),
        "details": _details(r),
        "version": r.version,
        "withheld": " and ".join(r.withheld),  # left out by the assignment's spec
    }
    for d in v["diagnoses"] + v["warnings"]:  # the groups in the user's names
        d["groups"] = [r.shown(g) for g in d["groups"]]
    for key, title in (("error", "Error"), ("diagnoses", "Diagnosis"), ("warnings", "Warnings"),
                       ("notes", "Notes"),
                       ("groups", "Gradients"), ("heatmaps", "Heatmaps"),
                       ("flow", "Through time"), ("checks", "Checks")):
        if v[key]:  # the section's id is its key
            sections.append({"anchor": key, "title": title})
    sections.append({"anchor": "details", "title": "Run details"})
    v["sections"] = sections
    v["title"] = f"bpttcheck {r.verdict.upper()}: {v['file']}" + (f" ({r.title})" if r.title else "")
    v["assignment"] = r.title  # the spec's [assignment] title
    return v


def pts(x: float) -> str:
    """Points as a reader writes them: 2, 0.5, 0.688 (scaled points keep three decimals)."""
    return f"{round(x, 3):g}"


def _score(r: Report) -> dict | None:
    if r.score is None:
        return None
    sc = r.score
    not_run = [c.name for c in sc.checks if c.status == "not-run"]
    return {"earned": pts(sc.earned), "possible": pts(sc.possible), "percent": f"{sc.percent:g}%",
            "note": sc.note or None, "not_run": not_run}


def _checks(r: Report) -> list[dict]:
    """The checks that ran, each with its points (earned / possible) when the report has a
    score card, then the scored checks that did not run, marked so."""
    card = {c.name: c for c in r.score.checks} if r.score else {}
    rows = []
    for c in r.checks:
        sc = card.pop(c.name, None)
        rows.append({"name": c.name, "status": c.status, "label": c.status,
                     "message": c.message, "seconds": _secs(c.seconds) if c.seconds else "",
                     "points": None if r.score is None else
                     (f"{pts(sc.earned)} / {pts(sc.possible)}" if sc else "0 / 0")})
    for sc in card.values():
        ran = sc.status != "not-run"
        rows.append({"name": sc.name, "status": sc.status if ran else "notrun",
                     "label": sc.status, "seconds": "",
                     "message": "passed: the gate order is the declared one (or the gates are "
                                "matrices of their own)" if ran else
                     "did not run on your code" + (f" (it stopped first: {r.error.kind})"
                                                   if r.error else ""),
                     "points": f"{pts(sc.earned)} / {pts(sc.possible)}"})
    return rows


def _loss(r: Report) -> dict | None:
    if not r.loss:
        return None
    u, ref = r.loss.get("user"), r.loss.get("reference")
    diff = None if u is None or ref is None else abs(u - ref)
    return {"user": val(u, 10), "reference": val(ref, 10), "diff": sci(diff),
            "reduction": r.reduction or "sum"}


def _group_row(g: GroupResult) -> dict:
    row: dict[str, Any] = {
        "name": g.name, "user_name": g.user_name if g.user_name != g.name else None,
        "status": g.status, "max_abs": sci(g.max_abs_error), "max_rel": sci(g.max_rel_error),
        "bad": f"{g.n_bad} of {g.n}", "worst_index": _index(g.worst_index),
        "worst_user": val(g.worst_user), "worst_ref": val(g.worst_ref),
        "tolerance": sci(g.tolerance),
        "clipped": None if g.clipped_at is None else val(g.clipped_at),
        "fd": None,
    }
    if g.fd is not None:
        f = g.fd
        rates = ", ".join("\u2014" if x is None else f"{x:.2f}" for x in f.taylor_rates)
        row["fd"] = {"status": f.status, "analytic": sci(f.analytic, 3),
                     "numeric": sci(f.numeric, 3), "error": sci(f.error),
                     "tolerance": sci(f.tolerance), "noise": sci(f.noise),
                     "rates": rates or "\u2014", "rate_verdict": f.rate_verdict,
                     "step": sci(f.step, 1)}
    return row


def _details(r: Report) -> list[dict]:
    rows: list[dict] = [{"k": "file", "v": r.path, "mono": True}]
    for k, x in (("architecture", r.arch), ("style", r.style)):
        if x:
            rows.append({"k": k, "v": x})
    rows.append({"k": "seed", "v": str(r.seed)} if r.seed is not None else
                {"k": "hidden case", "v": str(r.case_tag), "mono": True})
    if r.sizes:
        rows.append({"k": "sizes", "v": ", ".join(f"{k} = {v}" for k, v in r.sizes.items())})
    for k, x in (("dtype", r.dtype), ("loss over time", r.reduction), ("layout", r.layout)):
        if x:
            rows.append({"k": k, "v": x})
    if r.loss:
        rows.append({"k": "loss",
                     "v": ", ".join(f"{k} {val(x, 10)}" for k, x in r.loss.items())})
    if r.tolerances:
        rows.append({"k": "tolerances",
                     "v": ", ".join(f"{k} = {sci(x)}" for k, x in r.tolerances.items())})
    rows.append({"k": "evaluations", "v": f"{r.evaluations} calls of your code"})
    if r.timings:
        rows.append({"k": "timings",
                     "v": ", ".join(f"{k} {_secs(x)}" for k, x in r.timings.items())})
    rows.append({"k": "bpttcheck", "v": r.version or "\u2014"})
    for row in rows:
        row.setdefault("mono", False)
    return rows


# ---------------------------------------------------------------------------- heatmaps

def _pool(m: list[list[float]], fr: int, fc: int) -> list[list[float]]:
    """Max-abs pooling over fr x fc blocks, keeping the sign; a NaN anywhere wins."""
    if fr == 1 and fc == 1:
        return m
    rows, cols = len(m), len(m[0]) if m else 0
    out = []
    for i0 in range(0, rows, fr):
        line = []
        for j0 in range(0, cols, fc):
            best = 0.0
            for i in range(i0, min(i0 + fr, rows)):
                for x in m[i][j0:j0 + fc]:
                    if x != x:  # NaN
                        best = x
                        break
                    if abs(x) > abs(best):
                        best = x
                if best != best:
                    break
            line.append(best)
        out.append(line)
    return out


def _interp(anchors: list[str], t: float) -> str:
    """Colour at t in [0, 1] along the anchors (linear in RGB)."""
    if len(anchors) == 1:
        return anchors[0]
    x = t * (len(anchors) - 1)
    i = min(int(x), len(anchors) - 2)
    f = x - i
    a = [int(anchors[i][k:k + 2], 16) for k in (1, 3, 5)]
    b = [int(anchors[i + 1][k:k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{round(p + (q - p) * f):02x}" for p, q in zip(a, b, strict=True))


class Scale:
    """A diverging colour scale in units of a tolerance: |value| <= 1 unit is near-white; beyond,
    bins of `step` decades each (the last one open), red where the value is positive, blue
    where negative."""

    def __init__(self, max_ratio: float):
        d = math.log10(max_ratio) if max_ratio > 1 and math.isfinite(max_ratio) else 1.0
        self.step = max(1, math.ceil(d / MAX_BINS))
        self.bins = max(1, min(MAX_BINS, math.ceil(d / self.step)))
        ts = [0.5] if self.bins == 1 else [k / (self.bins - 1) for k in range(self.bins)]
        self.pos = [_interp(POS_ANCHORS, t) for t in ts]
        self.neg = [_interp(NEG_ANCHORS, t) for t in ts]

    def colour(self, v: float, unit: float) -> str:
        if not math.isfinite(v):
            return NONFINITE
        r = abs(v) / unit if unit > 0 else (math.inf if v else 0.0)
        if r <= 1:
            return CENTRE
        k = int(math.log10(r) // self.step) if math.isfinite(r) else self.bins - 1
        k = min(max(k, 0), self.bins - 1)
        return (self.pos if v > 0 else self.neg)[k]

    def edge(self, k: int) -> str:
        """Label of the lower edge of bin k (in units)."""
        e = k * self.step
        return "1" if e == 0 else f"1e{e}"

    def legend(self, what: str, unit_name: str, has_nonfinite: bool) -> dict:
        """Swatches from most negative to most positive, labelled at their boundaries; in
        percent of the legend's width, so the labels keep their size on a phone."""
        items = [*reversed(self.neg), CENTRE, *self.pos]
        n, nb = len(items), self.bins
        w = 100 / n
        labels = []
        for k in range(nb):  # -1e(k*step) and +1e(k*step) between the swatches
            labels.append({"x": f"{(nb - k) * w:.3f}%", "text": "\u2212" + self.edge(k)})
            labels.append({"x": f"{(nb + 1 + k) * w:.3f}%", "text": self.edge(k)})
        return {"swatches": [{"x": f"{i * w:.3f}%", "w": f"{w:.3f}%", "fill": c}
                             for i, c in enumerate(items)],
                "labels": labels, "h": 14, "label_y": 28, "height": 32,
                "max_width": 44 * n, "title": f"{what}, in units of {unit_name}",
                "nonfinite": NONFINITE if has_nonfinite else None}


def _ratio_max(m: list[list[float]] | None, unit: float) -> float:
    if not m or unit <= 0:
        return 1.0
    best = 1.0
    for row in m:
        for x in row:
            if math.isfinite(x):
                best = max(best, abs(x) / unit)
    return best


def _fd_unit(hm: Heatmap, g: GroupResult | None) -> tuple[float, str]:
    """What a finite difference may differ by without meaning anything: the group's
    finite-difference tolerance when the report has one, else fd_step^2 x the gradient's size."""
    if hm.fd_tolerance:
        return max(hm.fd_tolerance, hm.tolerance), "measured finite-difference accuracy"
    if g is not None and g.fd is not None and g.fd.tolerance > 0:
        return max(g.fd.tolerance, hm.tolerance), "finite-difference tolerance"
    if hm.fd_step and g is not None and g.scale > 0:
        return max(hm.fd_step ** 2 * g.scale, hm.tolerance), "step\u00b2 \u00d7 gradient size"
    return hm.tolerance, "tolerance"


RELATIVE = 1e-3  # a failing group's map: one unit is 0.1% of its largest reference entry


def _diff_unit(hm: Heatmap, g: GroupResult | None) -> tuple[float, str]:
    """The unit of a "yours - reference" map. A passing group: its tolerance, so the map shows
    how close it came. A failing one: a thousandth of its largest reference entry, so its
    errors show their pattern (a row, a column, one time step) instead of all saturating."""
    if g is not None and g.status == "fail" and g.scale > 0 and math.isfinite(g.scale):
        return max(RELATIVE * g.scale, hm.tolerance), "relative"
    return hm.tolerance, "tolerance"


def _heatmaps(hms: list[Heatmap], groups: dict[str, GroupResult]) -> dict | None:
    if not hms:
        return None
    units = [_fd_unit(hm, groups.get(hm.group)) if hm.fd_minus_user is not None else None
             for hm in hms]
    dunits = [_diff_unit(hm, groups.get(hm.group)) for hm in hms]
    scales = {kind: Scale(max([_ratio_max(hm.diff, u) for hm, (u, k) in zip(hms, dunits, strict=True)
                               if k == kind] or [1.0]))
              for kind in ("tolerance", "relative")}
    fd_scale = Scale(max([_ratio_max(hm.fd_minus_user, u[0]) for hm, u in zip(hms, units, strict=True)
                          if u is not None] or [1.0]))
    items = []
    for hm, fu, (du, kind) in zip(hms, units, dunits, strict=True):
        g = groups.get(hm.group)
        rows = len(hm.diff)
        cols = len(hm.diff[0]) if rows else 0
        panels = [_panel(hm, hm.diff, du, scales[kind], "yours \u2212 reference",
                         "tolerance" if kind == "tolerance" else "\u2030 of the largest entry")]
        if hm.fd_minus_user is not None and fu is not None:
            panels.append(_panel(hm, hm.fd_minus_user, fu[0], fd_scale,
                                 "finite differences \u2212 yours", fu[1]))
        items.append({
            "group": hm.group, "user_name": hm.user_name if hm.user_name != hm.group else None,
            "status": g.status if g else None, "shape": f"{rows}\u00d7{cols}",
            "panels": panels,
            "fd_note": None if hm.fd_minus_user is not None else
            "no entry-wise finite differences (too many entries)",
            "fd_step": sci(hm.fd_step, 1) if hm.fd_step else None,
        })
    legends = []
    for kind, title in (("tolerance", "the group's tolerance (passing groups)"),
                        ("relative", "0.1% of the group's largest reference entry (failing "
                                     "groups: the pattern of the error)")):
        mine = [hm for hm, (_, k) in zip(hms, dunits, strict=True) if k == kind]
        if mine:
            legends.append(scales[kind].legend("yours \u2212 reference", title,
                                               any(_has_nonfinite(hm.diff) for hm in mine)))
    if any(u is not None for u in units):
        fd_units = {u[1] for u in units if u is not None}
        legends.append(fd_scale.legend(
            "finite differences \u2212 yours",
            f"the group's {fd_units.pop()}" if len(fd_units) == 1 else "the unit under each map",
            any(_has_nonfinite(hm.fd_minus_user) for hm in hms if hm.fd_minus_user)))
    return {"items": items, "legends": legends}


def _has_nonfinite(m: list[list[float]] | None) -> bool:
    return m is not None and any(not math.isfinite(x) for row in m for x in row)


def _panel(hm: Heatmap, m: list[list[float]], unit: float, scale: Scale, what: str,
           unit_name: str) -> dict:
    rows = len(m)
    cols = len(m[0]) if rows else 0
    fr = max(1, math.ceil(rows / MAX_CELLS))
    fc = max(1, math.ceil(cols / MAX_CELLS))
    p = _pool(m, fr, fc)
    pr, pc = len(p), len(p[0]) if p else 0
    n_beyond = sum(1 for row in m for x in row if not math.isfinite(x) or abs(x) > unit)
    n_nonfinite = sum(1 for row in m for x in row if not math.isfinite(x))
    worst = max((abs(x) for row in m for x in row if math.isfinite(x)), default=0.0)

    cs = max(4, min(28, 520 // max(pc, 1), 420 // max(pr, 1)))
    rl = [hm.row_labels[i] if i < len(hm.row_labels) else str(i) for i in range(0, rows, fr)]
    cl = [hm.col_labels[j] if j < len(hm.col_labels) else str(j) for j in range(0, cols, fc)]
    show_rows = any(x for x in rl)
    row_w = max((len(x) for x in rl), default=0) * 6.6 + 8 if show_rows else 0
    row_title = 18 if (hm.row_axis and show_rows) else 0
    left = 8 + row_title + row_w
    col_len = max((len(x) for x in cl), default=0)
    vertical = col_len * 6.6 + 4 > cs
    col_h = (col_len * 6.6 + 6) if vertical else 16
    top = 6
    gw, gh = pc * cs, pr * cs
    # tick strides: labels at least 13 px apart (or their own width apart when horizontal)
    rstride = max(1, math.ceil(13 / cs))
    cstride = max(1, math.ceil((13 if vertical else col_len * 6.6 + 6) / cs))
    row_ticks = [{"y": round(top + i * cs + cs / 2 + 4, 1), "text": rl[i]}
                 for i in range(0, pr, rstride)] if show_rows else []
    col_ticks = [{"x": round(left + j * cs + cs / 2, 1), "text": cl[j]}
                 for j in range(0, pc, cstride)]
    y_cols = top + gh + 4
    y_col_title = y_cols + col_h + 12
    title_w = len(hm.col_axis) * 6.9
    col_title_x = max(left + gw / 2, title_w / 2 + 4)
    width = max(left + gw + 8, col_title_x + title_w / 2 + 4, 210)
    height = y_col_title + 8

    titled = pr * pc <= TITLED_CELLS and fr == 1 and fc == 1
    cells: list[dict[str, Any]] = []
    for i, row in enumerate(p):
        if titled:
            for j, x in enumerate(row):
                ix = f"[{j}]" if rows == 1 and not hm.row_axis else f"[{i},{j}]"
                label = ", ".join(s for s in (rl[i], cl[j]) if s)
                cells.append({"x": left + j * cs, "y": top + i * cs, "w": cs,
                              "fill": scale.colour(x, unit),
                              "title": f"{ix} {label}: {sci(x)} ({_times(x, unit)} {unit_name})"})
            continue
        j = 0
        while j < pc:  # horizontal runs of one colour as one rectangle; near-white is the ground
            c = scale.colour(row[j], unit)
            k = j + 1
            while k < pc and scale.colour(row[k], unit) == c:
                k += 1
            if c != CENTRE:
                cells.append({"x": left + j * cs, "y": top + i * cs, "w": (k - j) * cs,
                              "fill": c, "title": None})
            j = k
    pooled = None
    if fr > 1 or fc > 1:
        pooled = (f"{rows}\u00d7{cols} pooled to {pr}\u00d7{pc} cells: each shows the entry "
                  f"of largest |value| in its {fr}\u00d7{fc} block")
    return {
        "what": what, "unit": sci(unit), "unit_name": unit_name,
        "unit_note": None if unit_name in ("tolerance", "finite-difference tolerance")
        else unit_name,
        "n_beyond": n_beyond, "n": rows * cols, "worst": sci(worst), "nonfinite": n_nonfinite,
        "pooled": pooled,
        "width": round(width), "height": round(height),
        "grid": {"x": left, "y": top, "w": gw, "h": gh, "fill": CENTRE},
        "cells": cells, "cs": cs,
        "row_ticks": row_ticks, "row_tick_x": round(left - 5, 1),
        "col_ticks": col_ticks, "col_vertical": vertical, "col_tick_y": round(y_cols + 9, 1),
        "row_title": hm.row_axis if row_title else "",
        "row_title_x": 12, "row_title_y": round(top + gh / 2, 1),
        "col_title": hm.col_axis, "col_title_x": round(col_title_x, 1),
        "col_title_y": round(y_col_title, 1),
        "aria": f"Heatmap of {hm.group}: {what}",
    }


def _times(x: float, unit: float) -> str:
    if not math.isfinite(x):
        return "non-finite"
    if unit <= 0:
        return "\u2014"
    return f"{x / unit:.2g} \u00d7"


# ---------------------------------------------------------------------------- charts

def _nice_step(span: float, n: int) -> float:
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _axis(values: Iterable[float], log: bool, zero: bool, n: int = 5) -> tuple:
    """(lo, hi, ticks) of a y axis; on log scale lo/hi/ticks are log10 values."""
    vs = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    lo: float
    hi: float
    if log:
        lo, hi = math.floor(math.log10(min(vs))), math.ceil(math.log10(max(vs)))
        if hi == lo:
            hi += 1
        stride = max(1, math.ceil((hi - lo) / 6))
        return lo, hi, [(e, f"1e{e}" if e not in (0, 1) else ("1" if e == 0 else "10"))
                        for e in range(lo, hi + 1, stride)]
    lo = min(vs + ([0.0] if zero else []))
    hi = max(vs + ([0.0] if zero else []))
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice_step(hi - lo, n)
    lo = math.floor(lo / step + 1e-9) * step
    hi = math.ceil(hi / step - 1e-9) * step
    k = round((hi - lo) / step)
    return lo, hi, [(lo + i * step, _tick(lo + i * step)) for i in range(k + 1)]


def _frame(T: int, W: int, H: int, lo: float, hi: float, yticks: list, x_label: str,
           y_label: str, left: int = 64, bars: bool = False) -> dict:
    top, right, bottom = 12, 14, 50
    pw, ph = W - left - right, H - top - bottom

    def xs(t: float) -> float:
        if bars:
            return left + (t + 0.5) * pw / max(T, 1)
        return left + (t * pw / (T - 1) if T > 1 else pw / 2)

    def ys(y: float) -> float:
        return top + ph - (y - lo) / (hi - lo) * ph

    xstride = max(1, math.ceil(T / 12))
    return {
        "W": W, "H": H, "left": left, "top": top, "pw": pw, "ph": ph,
        "xticks": [{"x": round(xs(t), 1), "text": str(t)} for t in range(0, T, xstride)],
        "yticks": [{"y": round(ys(y), 1), "text": s} for y, s in yticks],
        "x_label": x_label, "y_label": y_label,
        "x_label_x": round(left + pw / 2, 1), "x_label_y": H - 6,
        "y_label_x": 14, "y_label_y": round(top + ph / 2, 1),
        "xs": xs, "ys": ys,
    }


def _line_chart(series: list[dict], x_label: str, y_label: str, W: int = 500,
                H: int = 260) -> dict | None:
    """series: {"name", "cls", "values": [float|None]}; None or a non-positive value on a log
    scale is a gap."""
    allv = [v for s in series for v in s["values"]
            if v is not None and math.isfinite(v)]
    if not allv:
        return None
    T = max(len(s["values"]) for s in series)
    pos = [v for v in allv if v > 0]
    log = bool(pos) and len(pos) == len(allv) and max(pos) / min(pos) > 100
    lo, hi, yt = _axis(allv, log, zero=not log)
    f = _frame(T, W, H, lo, hi, yt, x_label, y_label)
    out = []
    for s in series:
        segs: list[list] = []
        cur: list = []
        pts: list = []
        for t, v in enumerate(s["values"]):
            ok = v is not None and math.isfinite(v) and (v > 0 or not log)
            if not ok:
                if cur:
                    segs.append(cur)
                cur = []
                continue
            y = f["ys"](math.log10(v) if log else v)
            p = (round(f["xs"](t), 1), round(y, 1))
            cur.append(p)
            pts.append({"x": p[0], "y": p[1], "title": f"t = {t}: {sci(v)}"})
        if cur:
            segs.append(cur)
        paths = ["M" + " L".join(f"{x} {y}" for x, y in seg) for seg in segs if len(seg) > 1]
        out.append({"name": s["name"], "cls": s["cls"], "paths": paths, "points": pts,
                    "gaps": sum(1 for v in s["values"] if v is None)})
    f.pop("xs"), f.pop("ys")
    f.update({"series": out, "log": log, "r": 3.2 if T <= 40 else 2})
    return f


def _bar_chart(values: list[float], x_label: str, y_label: str, W: int = 500,
               H: int = 260) -> dict | None:
    fin = [v for v in values if math.isfinite(v)]
    if not fin:
        return None
    lo, hi, yt = _axis(fin, False, zero=True, n=3)
    T = len(values)
    f = _frame(T, W, H, lo, hi, yt, x_label, y_label, bars=True)
    bw = max(1.0, f["pw"] / T * 0.7)
    bars = []
    for t, v in enumerate(values):
        if not math.isfinite(v):
            continue
        y0, y1 = f["ys"](0.0), f["ys"](v)
        bars.append({"x": round(f["xs"](t) - bw / 2, 1), "y": round(min(y0, y1), 1),
                     "w": round(bw, 1), "h": round(max(abs(y1 - y0), 0.5), 1),
                     "title": f"t = {t}: loss {val(v)}"})
    f.pop("xs"), f.pop("ys")
    f["bars"] = bars
    f["log"] = False
    return f


def _flow(r: Report) -> dict | None:
    fl = r.flow
    if fl is None or not (fl.reference or fl.loss_steps):
        return None
    out: dict[str, Any] = {"dh": None, "pre": None, "loss": None, "dh_caption": None,
                           "pre_caption": None, "loss_caption": None}
    if fl.reference:
        out["dh"] = _line_chart([{"name": "reference |dL/dh\u209c|", "cls": "ref",
                                  "values": fl.reference}], "time step t", "|dL/dh\u209c|")
        vs = [v for v in fl.reference if math.isfinite(v) and v > 0]
        if vs:
            out["dh_caption"] = (f"from {sci(fl.reference[-1])} at the last step t = "
                                 f"{len(fl.reference) - 1} to {sci(fl.reference[0])} at t = 0; "
                                 f"range {sci(min(vs))} to {sci(max(vs))}")
    has_pre = any(v is not None for v in fl.user_preact) or \
        any(v is not None for v in fl.reference_preact)
    if has_pre:
        out["pre"] = _line_chart(
            [{"name": "reference", "cls": "ref", "values": fl.reference_preact},
             {"name": "yours", "cls": "user", "values": fl.user_preact}],
            "time step t", "|dL/da\u209c|")
        worst, at = 0.0, None
        for t, (u, rf) in enumerate(zip(fl.user_preact, fl.reference_preact, strict=False)):
            if u is None or rf is None:
                continue
            d = abs(u - rf) / max(abs(rf), 1e-300) if math.isfinite(u) else math.inf
            if d > worst or at is None:
                worst, at = d, t
        gaps = [t for t, (u, rf) in enumerate(zip(fl.user_preact, fl.reference_preact, strict=False))
                if u is None or rf is None]
        cap = [] if at is None else [f"largest relative difference {sci(worst)} at t = {at}"]
        if gaps:
            cap.append("no value at t = " + ", ".join(map(str, gaps)) +
                       " (the step's token repeats, so its column mixes steps)")
        out["pre_caption"] = "; ".join(cap)
    if fl.loss_steps:
        out["loss"] = _bar_chart(fl.loss_steps, "time step t", "loss")
        out["loss_caption"] = f"total {val(sum(fl.loss_steps))} over {len(fl.loss_steps)} steps"
    return out if any(out[k] for k in ("dh", "pre", "loss")) else None


# ---------------------------------------------------------------------------- class index

def _href(h: str | None) -> str | None:
    """A relative path to a report as a URL: every character that could start a scheme
    (javascript:, http:) or break out of the path is percent-encoded."""
    if not h:
        return None
    from urllib.parse import quote

    return quote(h.replace(os.sep, "/"), safe="/")


def render_index(entries: list[dict], title: str, subtitle: str | None = None) -> str:
    """The class page of `bpttcheck grade`: summary, the problems the class hit most, how many
    students failed each scored check, and a table of students (sorted by student; a click on a
    header re-sorts it where JavaScript runs). Each entry: student, report (relative path of
    the student's report), verdict, score, max_score, top_diagnosis, top_title, diagnoses,
    error_kind, seconds, and optionally note and checks (scored check -> status)."""
    es = sorted(entries, key=lambda e: natural_key(str(e.get("student", ""))))
    counts = {"pass": 0, "fail": 0, "error": 0}
    for e in es:
        counts[e.get("verdict", "error")] = counts.get(e.get("verdict", "error"), 0) + 1
    scored = [e for e in es if e.get("score") is not None]
    mean = None
    if scored:
        maxes = {e.get("max_score") for e in scored}
        if len(maxes) == 1 and None not in maxes:
            m = sum(float(e["score"]) for e in scored) / len(scored)
            mean = f"{m:.2f} of {float(cast(float, maxes.pop())):g}"
        elif all(e.get("max_score") for e in scored):  # different maxima: compare fractions
            m = sum(float(e["score"]) / float(e["max_score"]) for e in scored) / len(scored)
            mean = f"{100 * m:.1f}%"
        else:
            mean = f"{sum(float(e['score']) for e in scored) / len(scored):.2f}"
    hits: dict[str, int] = {}
    for e in es:
        for d in _problems(e):
            hits[d] = hits.get(d, 0) + 1
    ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))
    rows = []
    for i, e in enumerate(es):
        sc, mx = e.get("score"), e.get("max_score")
        secs = float(e.get("seconds") or 0.0)
        top = e.get("top_diagnosis")
        rows.append({
            "student": str(e.get("student", "")), "href": _href(e.get("report")),
            "verdict": e.get("verdict", "error"),
            "verdict_rank": {"pass": 0, "fail": 1, "error": 2}.get(str(e.get("verdict")), 3),
            "score": "\u2014" if sc is None else (pts(float(sc)) + ("" if mx is None else
                                                                    f" / {pts(float(mx))}")),
            "score_key": "" if sc is None else (float(sc) / float(mx) if mx else float(sc)),
            "top": top or (f"error: {e['error_kind']}" if e.get("error_kind") else None),
            "top_is_error": not top and bool(e.get("error_kind")),
            "top_title": e.get("top_title"),
            "others": [d for d in (e.get("diagnoses") or []) if d != top],
            "note": e.get("note"),
            "seconds": f"{secs:.2f} s", "seconds_key": secs, "order": i,
        })
    return _env().get_template("index.html.j2").render(
        title=title, subtitle=subtitle, rows=rows, counts=counts, n=len(es), mean=mean,
        n_scored=len(scored), chart=_hbar_chart(ranked, len(es)), per_check=_per_check(es))


def _problems(e: dict) -> set[str]:
    """What a student's row counts towards "most common problems": every diagnosis named with
    confidence, the top diagnosis whatever its confidence (``unmatched`` too), and an error
    as ``error: <kind>``."""
    out = set(e.get("diagnoses") or [])
    if e.get("top_diagnosis"):
        out.add(str(e["top_diagnosis"]))
    if e.get("error_kind"):
        out.add(f"error: {e['error_kind']}")
    return out


def _per_check(es: list[dict]) -> list[dict] | None:
    """Per scored check, in the order the reports list them: how many students failed it, how
    many it did not run for, and how many passed it."""
    order: dict[str, dict[str, int]] = {}
    for e in es:
        for name, status in (e.get("checks") or {}).items():
            c = order.setdefault(name, {"fail": 0, "not-run": 0, "pass": 0})
            key = status if status in ("fail", "not-run") else "pass"
            c[key] += 1
    if not order:
        return None
    n = len(es)
    out = []
    for name, c in order.items():
        c["not-run"] = n - c["fail"] - c["pass"]  # a row without the check did not run it
        out.append({"name": name, "fail": c["fail"], "not_run": c["not-run"], "pass": c["pass"],
                    "fail_w": f"{100 * c['fail'] / max(n, 1):.1f}%",
                    "not_run_w": f"{100 * c['not-run'] / max(n, 1):.1f}%",
                    "title": f"{name}: {c['fail']} failed, {c['not-run']} not run, "
                             f"{c['pass']} passed of {n} students"})
    return out


def _hbar_chart(items: list[tuple[str, int]], total: int) -> dict | None:
    """Bars as percentages of the chart's width, each under its label: the SVG takes the page's
    width without a viewBox, so its text keeps its size on a phone."""
    if not items:
        return None
    row, bar = 44, 14
    mx = max(c for _, c in items)
    bars = []
    for i, (k, c) in enumerate(items):
        y = 4 + i * row
        pct = max(0.5, 75 * c / mx)
        bars.append({"label": k, "y": y + 13, "by": y + 19, "w": f"{pct:.2f}%",
                     "cx": f"{pct + 1.2:.2f}%", "cy": y + 31,
                     "text": f"{c} of {total} ({100 * c / max(total, 1):.0f}%)",
                     "title": f"{k}: {c} of {total} students"})
    return {"H": 4 + len(items) * row, "bar": bar, "bars": bars}


def _where(loc) -> dict | None:
    """A diagnosis's location as the page shows it: the sentence, and the user's code around
    the line (three lines either side) with that line marked and the expected value beside it."""
    if loc is None:
        return None
    lines = []
    if loc.file and loc.line:
        import linecache
        src = linecache.getlines(loc.file)
        for n in range(max(1, loc.line - 3), min(len(src), loc.line + 3) + 1):
            lines.append({"n": n, "code": src[n - 1].rstrip("\n"), "hit": n == loc.line})
    return {"text": loc.text(), "lines": lines, "expected": loc.expected, "step": loc.step}
