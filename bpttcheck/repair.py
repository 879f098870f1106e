"""Verified repairs: rewrite the line a diagnosis points at, check the rewritten copy, and say
what the change fixes.

The candidates come first from the locator (check/rewrite.py, locate.value_checked): rewrites
of the located statement the worker ran in place of the line, kept when they gave the
reference's value there. Then the catalogue's edits of the located line(s) — an index one
step over (``h[t]`` → ``h[t+1]``) on a block of lines, a transpose added or dropped, ``=`` →
``+=``, a nonlinearity applied once too often taken off, a slice taken from the other end, a
missing factor or term written with the user's own names (the tracer saw which of their
expressions holds ``h``, ``f``, ``dh_next``), a sign flipped. Each is applied to a copy of the
user's folder (never to their files) and the copy is checked in the sandbox like any
submission; the first that passes every check is offered as a verified repair. One that
fixes some checks only is kept as the base of a second search, at the next located line of
the rewritten copy (a second bug); it is never offered alone."""
from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bpttcheck.check.rewrite import STEP_INDEX, index_shifts, split_comment
from bpttcheck.result import Diagnosis, Location, Repair, Report

MAX_TRIES = 8  # checks of rewritten copies per report
BUDGET_S = 10.0  # ... and seconds
UNWRAP = ("sigmoid", "np.tanh", "tanh", "np.exp", "exp", "softmax")
FACTORS = {  # quantity -> the factor it lacks, in terms of the user's expressions
    "dh_raw": "(1 - {h_cur}**2)", "dc": "(1 - np.tanh({c_cur})**2)", "dc_next": "{f}",
}
TERMS = {"dh": "{dh_next}"}  # quantity -> a term it lacks
REPAIRED_WARNINGS = ("grad.inputs-modified",)  # warnings a rewrite of the line can remove


@dataclass
class Edit:
    lines: dict[int, str]  # line number -> the new text of that line (indentation kept)
    why: str
    by_value: bool = False  # seen to give the located variable the reference's value there


def attach(report: Report, path: str, opts, write_fixed: str | None = None) -> None:
    """Try repairs for the first located diagnosis of a failing Python report, and put the
    best on it (``Diagnosis.repair``); ``write_fixed``: write the repaired file there."""
    # a failing report's first located diagnosis; a passing one's in-place write (a warning:
    # the gradients are right, the caller's array is not) is repaired the same way
    pool = report.diagnoses if report.verdict == "fail" else [
        w for w in report.warnings if w.id in REPAIRED_WARNINGS]
    d = next((d for d in pool if d.location and d.location.line), None)
    if report.verdict not in ("fail", "pass") or d is None or not path.endswith(".py"):
        return
    loc = d.location
    assert loc is not None and loc.file is not None and loc.line is not None
    try:
        with open(loc.file, encoding="utf-8") as fh:
            source = fh.read().splitlines(keepends=True)
    except (OSError, UnicodeDecodeError):
        return
    before = _failing(report)
    total = len(report.checks)
    tmp = tempfile.mkdtemp(prefix="bpttcheck-repair-")
    t0 = time.perf_counter()
    try:
        best = _search(d, loc, source, path, opts, tmp, before, total)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        # the rewritten copies' checks, after the check's own total
        report.timings["repair"] = round(time.perf_counter() - t0, 4)
    if best is None:
        return
    edit, verdict, failing, then = best
    if verdict != "pass" and not (edit.by_value and (then is not None or len(failing) < len(before))):
        return  # a change that passes only some checks may be an accident of the case (a
        # renamed variable that happens to fix a group), unless the line's own value says so
        # and the copy then goes wrong later, or less
    lines = sorted(edit.lines)
    d.repair = Repair(file=loc.file, lines=lines,
                      before=[source[n - 1].rstrip("\n") for n in lines],
                      after=[edit.lines[n].rstrip("\n") for n in lines],
                      verified=verdict == "pass", checks=total, why=edit.why,
                      still_failing=failing if verdict != "pass" else [],
                      next_line=then if verdict != "pass" else None)
    d.fix = d.repair.snippet()
    if write_fixed:
        from bpttcheck.output import write_atomic
        write_atomic(write_fixed, "".join(_applied(source, edit)))


def _failing(r: Report) -> list[str]:
    """The checks a repair must make pass: the failing ones, and the warnings it can remove."""
    from bpttcheck.check.severity import warning_id
    return [c.name for c in r.checks if c.status == "fail"
            or (c.status == "warn" and warning_id(c.name) in REPAIRED_WARNINGS)]


def _search(d: Diagnosis, loc: Location, source: list[str], path: str, opts, tmp: str,
            before: list[str], total: int):
    """The best edit for the located line; when it fixes some checks but not all, the next
    located line of the repaired copy is searched the same way, on top of it (a second bug)."""
    from bpttcheck.check.engine import check
    from bpttcheck.sandbox.staging import copy_submission

    staged = copy_submission(path, tmp, opts.limits.copy, opts.limits.run_from)
    root = os.path.dirname(os.path.abspath(path))
    rel = os.path.relpath(os.path.abspath(loc.file or ""), root)
    if rel.startswith(".."):
        return None  # the line is in a file outside what was staged
    target = os.path.join(os.path.dirname(staged), rel)
    o = copy.deepcopy(opts)
    o.diagnose = o.views = False
    o.limits.run_from = None
    t0 = time.perf_counter()
    best = _best_edit(loc, source, Edit({}, ""), staged, target, o, before, t0, d.id)
    if best is None or best[1] == "pass":
        return None if best is None else (*best, None)
    edit, _, failing = best
    _write(target, source, edit)  # where is the next bug, with this one repaired?
    od = copy.deepcopy(o)
    od.diagnose = True
    r = check(staged, od)
    nxt = next((x for x in r.diagnoses if x.location and x.location.line and
                os.path.realpath(x.location.file or "") == os.path.realpath(target)), None)
    if nxt is None or nxt.location is None or nxt.location.line in edit.lines:
        return (*best, None)
    second = _best_edit(nxt.location, _applied(source, edit), edit, staged, target, o, failing,
                        t0, nxt.id)
    if second is not None and second[1] == "pass":
        return (*second, None)
    return (*best, nxt.location.line)


def _best_edit(loc: Location, source: list[str], base: Edit, staged: str, target: str, o,
               before: list[str], t0: float, diagnosis: str):
    from bpttcheck.check.engine import check
    best = by_value = None
    for n, edit in enumerate(candidates(loc, source, diagnosis)):
        if n >= MAX_TRIES or time.perf_counter() - t0 > BUDGET_S:
            break
        both = Edit({**base.lines, **edit.lines}, "; ".join(x for x in (base.why, edit.why) if x),
                    base.by_value if base.lines else edit.by_value)
        _write(target, source, edit)
        r = check(staged, o)
        if r.error is not None:
            continue
        failing = _failing(r)
        if r.verdict == "pass" and not failing:
            return both, "pass", []
        if len(failing) < len(before) and (best is None or len(failing) < len(best[2])):
            best = (both, r.verdict, failing)
        if by_value is None and edit.by_value and len(failing) <= len(before):
            by_value = (both, r.verdict, failing)  # right at its line, another bug after it
    return best if best is not None else by_value


def _write(target: str, source: list[str], edit: Edit) -> None:
    with open(target, "w", encoding="utf-8") as f:
        f.write("".join(_applied(source, edit)))


def _applied(source: list[str], edit: Edit) -> list[str]:
    out = list(source)
    for n, text in edit.lines.items():
        end = "\n" if out[n - 1].endswith("\n") else ""
        out[n - 1] = text.rstrip("\n") + end
    return out


# ---------------------------------------------------------------------------- candidates

# which kinds of edit to try first, by the diagnosis (catalogue id); the rest follow in the
# order of KINDS
FIRST = {"gate-derivative-reapplied": "unwrap", "softmax.double-exp": "defining",
         "softmax.sum-logits": "denominator", "whh-not-transposed": "transpose",
         "grad.overwrite-not-accumulate": "accumulate", "dh-next-wrong-slice": "slice",
         "loss.dy-sign": "sign", "loss.mean-grad-sum": "drop", "state-offset": "shift",
         "cprev-wraparound": "shift", "uses-current-h": "shift", "uses-prev-h": "shift",
         "tanh-derivative-missing": "factor", "missing-dh-next": "term",
         "dc-next-missing-forget": "factor"}
KINDS = ("factor", "term", "shift", "names", "denominator", "transpose", "unwrap", "slice",
         "accumulate", "sign", "drop", "defining")


def candidates(loc: Location, source: list[str], diagnosis: str = "") -> Iterator[Edit]:
    """Edits of the located line(s), the kind the diagnosis suggests first, without
    repeats."""
    first = next((k for pat, k in FIRST.items() if pat in diagnosis), None)
    order = ([first] if first else []) + [k for k in KINDS if k != first]
    seen: set[tuple] = set()
    for kind in ["value-checked", *order]:
        for edit in _of_kind(kind, loc, source):
            key = tuple(sorted(edit.lines.items()))
            if key not in seen:
                seen.add(key)
                yield edit


def _of_kind(kind: str, loc: Location, source: list[str]) -> Iterator[Edit]:
    assert loc.line is not None
    n = loc.line
    line = source[n - 1].rstrip("\n")
    indent = line[: len(line) - len(line.lstrip())]
    code, comment = split_comment(line.strip())
    lhs, op, rhs = _assignment(code)

    def one(pairs) -> Iterator[Edit]:
        for new, why in pairs:
            if new != code:
                yield Edit({n: indent + new + comment}, why)

    if kind == "value-checked":  # rewrites already seen to give the line the right value
        for new, why, *named in loc._rewrites:
            # only a value the line is named for makes a partial repair worth offering
            yield Edit({n: indent + new + comment}, why, by_value=bool(named and named[0]))
    elif kind == "factor" and loc._key in FACTORS and op:
        factor = _fill(FACTORS[loc._key], loc._hints)
        if factor:
            yield from one([(f"{lhs} {op} {rhs} * {factor}", f"multiply by {factor}")])
    elif kind == "term" and loc._key in TERMS and op:
        term = _fill(TERMS[loc._key], loc._hints)
        if term:
            yield from one([(f"{lhs} {op} {rhs} + {term}", f"add {term}")])
    elif kind == "shift":
        part = _part_of(code, loc.name or "")
        shifts = list(index_shifts(code))
        if part is not None:  # the located variable's own part of `a, b, c = x, y, z` first
            shifts.sort(key=lambda nw: nw[0][:part[0]] != code[:part[0]]
                        or nw[0][len(nw[0]) - (len(code) - part[1]):] != code[part[1]:])
        yield from one(shifts[:1])
        yield from _block_shifts(n, source)
        yield from one(shifts[1:])
    elif kind == "names":
        yield from one(_name_swaps(code))
    elif kind == "denominator":
        yield from one(_denominators(code))
    elif kind == "transpose":
        yield from one(_transposes(code))
    elif kind == "unwrap":
        yield from one(_unwraps(code))
    elif kind == "slice":
        yield from one(_slices(code))
    elif kind == "accumulate" and op == "=":
        yield from one([(f"{lhs} += {rhs}", "accumulate (+=) instead of assigning")])
    elif kind == "sign":
        if op and rhs.startswith("-"):
            yield from one([(f"{lhs} {op} {rhs[1:].lstrip()}", "flip the sign")])
        yield from _sign_group(loc, source)
    elif kind == "drop" and op in ("/=", "*="):
        yield from one([("pass", f"drop the {op}")])
    elif kind == "defining":
        for m, text in [(n, line), *_defining_lines(code, source, n)]:
            ind = text[: len(text) - len(text.lstrip())]
            dcode, dcomment = split_comment(text.strip())
            for new, why in _unwraps(dcode):
                yield Edit({m: ind + new + dcomment}, f"line {m}: {why}")


def _block_shifts(n: int, source: list[str]) -> Iterator[Edit]:
    """Every step index one over on the located line and the lines just below it that index
    the same arrays (``h_t, c_t = h[t], c[t]`` then ``c_prev = c[t-1]``): states read one
    step off are usually read one step off everywhere."""
    names = _indexed(source[n - 1])
    if not names:
        return
    block = [n]
    for m in range(n + 1, min(len(source), n + 3) + 1):
        if _indexed(source[m - 1]) & names:
            block.append(m)
        else:
            break
    for by in (1, -1):
        edit = {}
        for m in block:
            text = source[m - 1].rstrip("\n")
            new = STEP_INDEX.sub(functools.partial(_moved, by=by), text)
            if new != text:
                edit[m] = new
        if edit:
            yield Edit(edit, f"every step index {'+' if by > 0 else '-'}1 on lines "
                             f"{block[0]}-{block[-1]}")


def _moved(m: re.Match, by: int) -> str:
    return _form({None: 0, "+": 1, "-": -1}[m.group(1)] + by)


def _indexed(text: str) -> set[str]:
    """The arrays a line indexes by the step: ``h`` and ``C`` in ``h[t], C[t - 1]``."""
    return {m.group(1) for m in re.finditer(r"(\w+)" + STEP_INDEX.pattern, text)}


def _form(k: int) -> str:
    return "[t]" if k == 0 else f"[t{k:+d}]"


def _part_of(code: str, name: str) -> tuple[int, int] | None:
    """Where, in ``a, b, c = x, y, z``, the expression assigned to ``name`` is (start, end)."""
    lhs, op, rhs = _assignment(code)
    targets = [x.strip() for x in lhs.split(",")]
    if op != "=" or len(targets) < 2 or name not in targets:
        return None
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(rhs):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append((last, i))
            last = i + 1
    parts.append((last, len(rhs)))
    if len(parts) != len(targets):
        return None
    a, b = parts[targets.index(name)]
    off = len(code) - len(rhs)
    return off + a, off + b


def _defining_lines(code: str, source: list[str], n: int) -> list[tuple[int, str]]:
    """The lines just above ``n`` (up to 8) that assign a name the located line reads: a
    value that was already wrong when it reached this line (`e = np.exp(a)` before
    `softmax(e)`)."""
    reads = set(re.findall(r"(?<![\w\.])([A-Za-z_]\w*)", _assignment(code)[2] or code))
    out = []
    for m in range(n - 1, max(0, n - 9), -1):
        text = source[m - 1].rstrip("\n")
        lhs, op, _ = _assignment(text.strip())
        if op == "=" and lhs.strip() in reads:
            out.append((m, text))
            reads.discard(lhs.strip())
    return out


def _name_swaps(code: str) -> Iterator[tuple[str, str]]:
    """One name with a part "next"/"prev" (and the like: ``next_h``, ``dprev_c``, ``h_new``)
    swapped for its partner: the states around a step named by time rather than indexed."""
    for m in re.finditer(r"[A-Za-z_]\w*", code):
        word = m.group(0)
        parts = word.split("_")
        for i, part in enumerate(parts):
            stem = part[1:] if part.startswith("d") and part[1:] in _PARTNER else part
            if stem in _PARTNER:
                swapped = part[:len(part) - len(stem)] + _PARTNER[stem]
                new = "_".join([*parts[:i], swapped, *parts[i + 1:]])
                yield code[:m.start()] + new + code[m.end():], f"{word} -> {new}"


_PARTNER = {"next": "prev", "prev": "next", "new": "old", "old": "new", "cur": "prev",
            "curr": "prev"}


def _denominators(code: str) -> Iterator[tuple[str, str]]:
    """``A / np.sum(B)`` -> ``A / np.sum(A)``: a normalisation by the sum of something else."""
    m = re.search(r"([\w\.\[\]'\"]+)\s*/\s*np\.sum\(\s*([^()]+?)\s*\)", code)
    if m and m.group(1) != m.group(2):
        yield (code[:m.start(2)] + m.group(1) + code[m.end(2):],
               f"normalise by the sum of {m.group(1)}")


def _fill(template: str, hints: dict[str, str]) -> str | None:
    names = re.findall(r"\{(\w+)\}", template)
    alt = {"h_cur": ("h_cur", "h"), "c_cur": ("c_cur", "c"), "f": ("f",),
           "dh_next": ("dh_next",)}
    values = {}
    for k in names:
        v = next((hints[a] for a in alt.get(k, (k,)) if a in hints), None)
        if v is None:
            return None
        values[k] = v
    return template.format(**values)


def _assignment(code: str) -> tuple[str, str, str]:
    m = re.match(r"^(.+?)\s*(\+=|-=|\*=|/=|(?<![=!<>])=(?!=))\s*(.+)$", code)
    return (m.group(1), m.group(2), m.group(3)) if m else ("", "", "")




def _transposes(code: str) -> Iterator[tuple[str, str]]:
    """A transpose added to or taken from one operand of a product (``np.dot(A, B)``,
    ``A @ B``), either side."""
    operand = r"[A-Za-z_][\w\.\[\]'\"]*?"
    for m in re.finditer(rf"np\.dot\(\s*({operand})(\.T)?\s*,\s*({operand})(\.T)?\s*\)", code):
        for k in (1, 3):
            name, t = m.group(k), m.group(k + 1)
            a, b = m.start(k), m.end(k + 1) if t else m.end(k)
            yield code[:a] + name + ("" if t else ".T") + code[b:], f"transpose {name}"
    for m in re.finditer(rf"(?<![\w\.])({operand})(\.T)?\s*@\s*({operand})(\.T)?(?![\w\.\[])",
                         code):
        for k in (3, 1):
            name, t = m.group(k), m.group(k + 1)
            a, b = m.start(k), m.end(k + 1) if t else m.end(k)
            yield code[:a] + name + ("" if t else ".T") + code[b:], f"transpose {name}"


def _unwraps(code: str) -> Iterator[tuple[str, str]]:
    """f(E) -> E for a nonlinearity applied once too often: every call of f at once (a
    derivative written as sigmoid(a) * (1 - sigmoid(a))), then each alone."""
    for f in UNWRAP:
        calls = list(re.finditer(rf"(?<![\w\.]){re.escape(f)}\(", code))
        if len(calls) > 1:
            yield _unwrap(code, f, all_calls=True), f"remove every {f}()"
        for m in calls:
            end = _closing(code, m.end() - 1)
            if end is not None:
                inner = code[m.end():end]
                yield code[:m.start()] + inner + code[end + 1:], f"remove {f}()"


def _unwrap(code: str, f: str, all_calls: bool) -> str:
    while True:
        m = re.search(rf"(?<![\w\.]){re.escape(f)}\(", code)
        end = _closing(code, m.end() - 1) if m else None
        if m is None or end is None:
            return code
        code = code[:m.start()] + code[m.end():end] + code[end + 1:]
        if not all_calls:
            return code


def _closing(code: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(code)):
        depth += {"(": 1, ")": -1}.get(code[i], 0)
        if depth == 0:
            return i
    return None


def _slices(code: str) -> Iterator[tuple[str, str]]:
    for m in re.finditer(r"\[\s*(-?)(\w+)\s*:\s*\]|\[\s*:\s*(-?)(\w+)\s*\]", code):
        if m.group(2):  # [N:] or [-N:]
            n = m.group(2)
            alts = [f"[:{n}]", f"[:-{n}]"] if m.group(1) else [f"[:{n}]", f"[-{n}:]"]
        else:  # [:N] or [:-N]
            n = m.group(4)
            alts = [f"[-{n}:]", f"[{n}:]"] if not m.group(3) else [f"[-{n}:]", f"[:{n}]"]
        for a in alts:
            yield code[:m.start()] + a + code[m.end():], f"slice {a}"


def _sign_group(loc: Location, source: list[str]) -> Iterator[Edit]:
    """A quantity built over two lines with its sign the wrong way (``dy = -p`` then
    ``dy[y] += 1``): flip both."""
    lines = loc._lines
    if len(lines) < 2:
        return
    new = {}
    for n in lines:
        text = source[n - 1].rstrip("\n")
        flipped = re.sub(r"(=\s*)-\s*", r"\1", text, count=1) if re.search(r"(?<![+\-*/])=\s*-", text) \
            else text.replace("+=", "\0").replace("-=", "+=").replace("\0", "-=")
        if flipped != text:
            new[n] = flipped
    if len(new) == len(lines):
        yield Edit(new, "flip the sign of every line that builds it")
