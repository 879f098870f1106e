"""Rewrites of a located line that compute what the reference computes there.

The line the locator points at reads values that were still right (its inputs matched the
reference) and writes one that is not. Small rewrites of that one statement — a name its
function uses read in place of another, a step index one over, a transpose added or taken
off, a factor or a term the function has at hand, ``1 - z`` for ``z``, a call taken off, a
sign or an operator flipped, ``+=`` for ``=``, another slice — are run by the worker in place
of the line at the located step of the probe case (sandbox/tracer.LineProbe). The rewrites
whose value is the reference's are the repairs worth checking in full (repair.py): the
search is wide, and the value at the line makes it cheap."""
from __future__ import annotations

import ast
import linecache
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_POOL = 48  # expressions of the function a rewrite may read, the nearest to the line
PAIRED = 12  # ... and how many of them a term of two may multiply
MODULES = {"np", "numpy", "math", "scipy", "torch", "jnp"}
ATOM = re.compile(r"^[\w\.\[\]'\"]+$")
STEP_INDEX = re.compile(r"\[\s*t\s*(?:([+-])\s*1\s*)?\]")
SWAPPED_CALLS = {"np.mean": "np.sum", "np.sum": "np.mean", "np.dot": "np.outer",
                 "np.outer": "np.dot"}
BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.MatMult: "@", ast.Div: "/"}


@dataclass(frozen=True)
class Rewrite:
    code: str  # the new statement, without its indentation and comment
    why: str
    rank: int  # 0: a change of form; 1: another name; 2: a factor or a term added; 3: a product


def split_comment(code: str) -> tuple[str, str]:
    """(code, '  # comment') of one line, a # inside a string left alone."""
    quote = None
    for i, ch in enumerate(code):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return code[:i].rstrip(), "  " + code[i:]
    return code, ""


def rewrites(file: str, line: int) -> list[Rewrite]:
    """The rewrites of the statement on ``line`` of ``file`` (one line, one assignment),
    changes of form first; none for anything else."""
    code, _ = split_comment(linecache.getline(file, line).strip())
    try:
        stmt = ast.parse(code).body
    except SyntaxError:
        return []
    if len(stmt) != 1 or not isinstance(stmt[0], (ast.Assign, ast.AugAssign)):
        return []
    s = stmt[0]
    if isinstance(s, ast.Assign) and len(s.targets) != 1:
        return []
    pool = _pool(file, line, code)
    out: dict[str, Rewrite] = {}
    for new, why, rank in _all(code, s, pool, _nonlinear(file)):
        if new != code and new not in out and not _reads_its_target(new):
            out[new] = Rewrite(new, why, rank)
    return sorted(out.values(), key=lambda r: r.rank)


@dataclass(frozen=True)
class _Line:
    """One statement's bytes and the parts of it every kind of rewrite reads."""
    b: bytes
    s: ast.Assign | ast.AugAssign
    rhs: ast.expr
    whole: str  # the right-hand side's text
    head: str  # everything before it (``dh_raw = ``)
    atoms: list[tuple[ast.AST, ast.AST | None]]

    def seg(self, node: ast.AST) -> str:
        return self.b[node.col_offset:node.end_col_offset].decode()  # type: ignore[attr-defined]


def _all(code: str, s: ast.Assign | ast.AugAssign, pool: list[str],
         nonlinear: list[str]) -> Iterator[tuple[str, str, int]]:
    """Every rewrite, the kinds in the order of their rank."""
    b = code.encode()
    if not _one_line(s.value):
        return
    L = _Line(b, s, s.value, b[s.value.col_offset:s.value.end_col_offset].decode(),
              b[:s.value.col_offset].decode(), list(_atoms(s.value)))
    yield from _forms(L, pool)
    yield from _names(L, pool, nonlinear)
    yield from _terms(L, pool)
    yield from _products(L, pool)


def _forms(L: _Line, pool: list[str]) -> Iterator[tuple[str, str, int]]:
    """Changes of form: a transpose, a step index, a call off, operands swapped or dropped,
    a derivative's form, blocks in another order, another slice, a sign, an operator."""
    b, s, rhs, whole, head, atoms, seg = L.b, L.s, L.rhs, L.whole, L.head, L.atoms, L.seg
    code = b.decode()
    for a, transposed in atoms:
        if transposed is not None:
            yield _splice(b, transposed, seg(a)), f"take the transpose off {seg(a)}", 0
        else:
            yield _splice(b, a, seg(a) + ".T"), f"transpose {seg(a)}", 0
    for m, why in index_shifts(code):
        yield m, why, 0
    for node in ast.walk(rhs):
        if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
            inner = seg(node.args[0])
            yield _splice(b, node, _wrap(inner, node is rhs)), f"take {seg(node.func)}() off", 0
        if isinstance(node, ast.Call) and len(node.args) == 1:
            # a derivative function applied to what is already the nonlinearity's output
            # (tanh(h, derivative=True) of h = tanh(a)): the derivative written from the output
            arg = _wrap(seg(node.args[0]), False)
            for form in (f"(1 - {arg} ** 2)", f"{arg} * (1 - {arg})"):
                yield _splice(b, node, form), f"{form} for {seg(node)}", 1
        if isinstance(node, ast.Call) and seg(node.func) in SWAPPED_CALLS:
            other = SWAPPED_CALLS[seg(node.func)]
            yield _splice(b, node.func, other), f"{other} for {seg(node.func)}", 0
        if isinstance(node, ast.Call) and len(node.args) == 2 and seg(node.func) in (
                "np.dot", "numpy.dot", "np.outer", "np.matmul"):
            one, two = (seg(a) for a in node.args)
            yield (_splice(b, node, f"{seg(node.func)}({two}, {one})"),
                   f"{seg(node.func)}({two}, {one}) for {seg(node.func)}({one}, {two})", 0)
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS and _one_line(node):
            left, right = seg(node.left), seg(node.right)
            sym = BINOPS[type(node.op)]
            yield _splice(b, node, _wrap(left, node is rhs)), f"drop {sym} {right}", 0
            yield _splice(b, node, _wrap(right, node is rhs)), f"drop {left} {sym}", 0
            if sym == "-":  # the difference the other way round
                yield _splice(b, node, _wrap(f"{right} - {left}", node is rhs
                                             or _in_parens(b, node))), \
                    f"{right} - {left} for {left} - {right}", 0
            flip = {"+": "-", "-": "+"}.get(sym)
            if flip:
                mid = b[node.left.end_col_offset:node.right.col_offset].decode()
                new = (b[:node.left.end_col_offset].decode() + mid.replace(sym, flip, 1)
                       + b[node.right.col_offset:].decode())
                yield new, f"{flip} for {sym} before {right}", 0
            if sym == "@":
                yield _splice(b, node, f"{right} @ {left}"), f"{right} @ {left}", 0
        x = _tanh_derivative_of(node)
        if x is not None:  # tanh's derivative where sigmoid's belongs
            yield _splice(b, node, f"{seg(x)} * (1 - {seg(x)})"), \
                f"{seg(x)} * (1 - {seg(x)}) for {seg(node)}", 0
        x = _sigmoid_derivative_of(node)
        if x is not None:  # ... and the other way round
            yield _splice(b, node, f"(1 - {seg(x)} ** 2)"), \
                f"(1 - {seg(x)} ** 2) for {seg(node)}", 0
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            yield (_splice(b, node, _wrap(seg(node.left), node is rhs)),
                   f"{seg(node.left)} for {seg(node)}", 0)
        if isinstance(node, (ast.Tuple, ast.List)) and 1 < len(node.elts) <= 6 and all(
                _one_line(e) for e in node.elts):  # blocks stacked in another order
            parts = [seg(e) for e in node.elts]
            for i in range(len(parts)):
                for j in range(i + 1, len(parts)):
                    swapped = list(parts)
                    swapped[i], swapped[j] = parts[j], parts[i]
                    yield (_splice_range(b, node.elts[0].col_offset,
                                         node.elts[-1].end_col_offset or 0, ", ".join(swapped)),
                           f"{parts[i]} and {parts[j]} swapped", 0)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            for other in _slices(pool, seg(node.slice)):
                yield _splice(b, node.slice, other), f"[{other}] for [{seg(node.slice)}]", 0
    if isinstance(rhs, ast.UnaryOp) and isinstance(rhs.op, ast.USub):
        yield head + seg(rhs.operand), "flip the sign", 0
    else:
        yield head + f"-({whole})", "flip the sign", 0
    op = _op(s)
    lhs = b[:s.target.end_col_offset if isinstance(s, ast.AugAssign)
            else s.targets[0].end_col_offset].decode()
    for new_op in {"=": ("+=",), "+=": ("=", "-="), "-=": ("+=",)}.get(op, ()):
        yield f"{lhs} {new_op} {whole}", f"{new_op} for {op}", 0


def _names(L: _Line, pool: list[str], nonlinear: list[str]) -> Iterator[tuple[str, str, int]]:
    """Another name the function uses, where one operand is read (or each time it is)."""
    b, atoms, seg = L.b, L.atoms, L.seg
    for a, _ in atoms:
        for p in pool:
            if p != seg(a):
                yield _splice(b, a, p), f"{p} for {seg(a)}", 1
        yield _splice(b, a, f"(1 - {seg(a)})"), f"(1 - {seg(a)}) for {seg(a)}", 1
        for f in nonlinear:
            yield _splice(b, a, f"{f}({seg(a)})"), f"{f}({seg(a)}) for {seg(a)}", 1
        yield _splice(b, a, f"{seg(a)} ** 2"), f"{seg(a)} ** 2 for {seg(a)}", 1
    # the same operand read twice, another name in both places (h_prev * h_prev)
    for text in {seg(a) for a, _ in atoms if sum(seg(x) == seg(a) for x, _ in atoms) > 1}:
        spans = sorted(((a.col_offset, a.end_col_offset or 0) for a, _ in atoms  # type: ignore[attr-defined]
                        if seg(a) == text), reverse=True)
        for p in pool:
            if p != text:
                out = b
                for start, end in spans:  # from the right: the offsets to the left still hold
                    out = out[:start] + p.encode() + out[end:]
                yield out.decode(), f"{p} for {text} (each time)", 1


def _terms(L: _Line, pool: list[str]) -> Iterator[tuple[str, str, int]]:
    """A factor or a term the line lacks, written with one of the function's names."""
    b, rhs, whole, head, atoms, seg = L.b, L.rhs, L.whole, L.head, L.atoms, L.seg
    for p in pool:
        for a, _ in atoms:
            yield _splice(b, a, f"{seg(a)} * {p}"), f"multiply {seg(a)} by {p}", 2
        # a product takes one more factor as it is
        w = whole if isinstance(rhs, ast.BinOp) and isinstance(rhs.op, (ast.Mult, ast.Div)) \
            else _wrap(whole, False)
        yield head + f"{whole} + {p}", f"add {p}", 2
        yield head + f"{w} * {p}", f"multiply by {p}", 2
        yield head + f"{w} * (1 - {p} ** 2)", f"multiply by (1 - {p} ** 2)", 2
        yield head + f"{w} * {p} * (1 - {p})", f"multiply by {p} * (1 - {p})", 2
        for node in ast.walk(rhs):
            if node is not rhs and (isinstance(node, ast.Call) or any(node is a for a, _ in atoms)):
                yield (_splice(b, node, _wrap(f"{seg(node)} + {p}", _in_parens(b, node))),
                       f"add {p} to {seg(node)}", 2)
            if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
                # a placeholder (np.zeros_like(dh)) where a product belongs
                arg = seg(node.args[0])
                yield (_splice(b, node, _wrap(f"{arg} * {p}", node is rhs)),
                       f"{arg} * {p} for {seg(node)}", 2)
        if re.search(r"\[\s*t\s*-\s*1\s*\]", whole):  # the first step reads the initial state
            yield head + f"{whole} if t > 0 else {p}", f"{p} at t = 0", 2


def _products(L: _Line, pool: list[str]) -> Iterator[tuple[str, str, int]]:
    """A whole path left out: a term that is a product of two of the nearest names."""
    whole, head = L.whole, L.head
    near = pool[:PAIRED]
    for p in near:
        for q in near:
            if p != q:
                yield head + f"{whole} + {p} * {q}", f"add {p} * {q}", 3
                yield head + f"{whole} + {p} * (1 - {q})", f"add {p} * (1 - {q})", 3


def _reads_its_target(code: str) -> bool:
    """``x += f(x)``: an accumulator adding a function of itself is no gradient code, and at
    the first step, where it is still zero, it would look right."""
    try:
        s = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return True
    if not isinstance(s, ast.AugAssign):
        return False
    target = ast.unparse(s.target)
    return any(isinstance(n, (ast.Name, ast.Attribute, ast.Subscript))
               and ast.unparse(n) == target for n in ast.walk(s.value))


def _is_one(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == 1


def _tanh_derivative_of(node: ast.AST) -> ast.AST | None:
    """X in ``1 - X ** 2`` (or ``1 - X * X``)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _is_one(node.left):
        sq = node.right
        if isinstance(sq, ast.BinOp) and isinstance(sq.op, ast.Pow) and isinstance(
                sq.right, ast.Constant) and sq.right.value == 2:
            return sq.left
        if isinstance(sq, ast.BinOp) and isinstance(sq.op, ast.Mult) and ast.dump(
                sq.left) == ast.dump(sq.right):
            return sq.left
    return None


def _sigmoid_derivative_of(node: ast.AST) -> ast.AST | None:
    """X in ``X * (1 - X)`` or ``(1 - X) * X``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for x, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, ast.BinOp) and isinstance(other.op, ast.Sub) \
                    and _is_one(other.left) and ast.dump(other.right) == ast.dump(x):
                return x
    return None


def _one_line(node: ast.AST) -> bool:
    return getattr(node, "lineno", 0) == getattr(node, "end_lineno", -1)


def _op(s: ast.Assign | ast.AugAssign) -> str:
    if isinstance(s, ast.Assign):
        return "="
    return {ast.Add: "+=", ast.Sub: "-="}.get(type(s.op), "?=")


def _atoms(node: ast.AST, under_t: ast.AST | None = None) -> Iterator[tuple[ast.AST, ast.AST | None]]:
    """The operands of an expression a name can stand for (``hs[t]``, ``self.c[t + 1]``,
    ``dh``), each with the ``.T`` node around it if there is one; not a call's function, not
    a module's constant."""
    if isinstance(node, ast.Attribute) and node.attr == "T":
        yield from _atoms(node.value, node)
        return
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
        if _base(node) not in MODULES and _one_line(node):
            yield node, under_t
        return
    if isinstance(node, ast.Call):
        for a in node.args:
            yield from _atoms(a)
        for k in node.keywords:
            yield from _atoms(k.value)
        return
    for child in ast.iter_child_nodes(node):
        yield from _atoms(child)


def _element(node: ast.AST) -> bool:
    """One entry picked by another value (``xs[t][inputs[t]]``, ``dy[targets[t]]``): a number,
    not an array, and one that happens to be 1 for a one-hot input would make a "repair" of
    anything."""
    if not isinstance(node, ast.Subscript):
        return False
    inner = node.slice
    return isinstance(node.value, ast.Subscript) or any(
        isinstance(n, ast.Subscript) for n in ast.walk(inner))


def _base(node: ast.AST) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _splice(b: bytes, node: ast.AST, new: str) -> str:
    return _splice_range(b, node.col_offset, node.end_col_offset, new)  # type: ignore[attr-defined]


def _splice_range(b: bytes, start: int, end: int, new: str) -> str:
    return (b[:start] + new.encode() + b[end:]).decode()


def _in_parens(b: bytes, node: ast.AST) -> bool:
    """Whether the source has the node in parentheses of its own already."""
    a, e = node.col_offset, node.end_col_offset or 0  # type: ignore[attr-defined]
    return b[a - 1:a] == b"(" and b[e:e + 1] == b")"


def _wrap(text: str, alone: bool) -> str:
    return text if alone or ATOM.match(text) else f"({text})"


def index_shifts(code: str) -> Iterator[tuple[str, str]]:
    """Each [t], [t+1], [t-1] of the line one step over, alone and all of one form at once."""
    hits = list(STEP_INDEX.finditer(code))
    forms = {None: "[t]", "+": "[t+1]", "-": "[t-1]"}
    for sign in (None, "+", "-"):
        same = [m for m in hits if m.group(1) == sign]
        for other in ("+", None, "-"):
            if other == sign or not same:
                continue
            for group in ([same] if len(same) > 1 else []) + [[m] for m in same]:
                new, last = [], 0
                for m in group:
                    new += [code[last:m.start()], forms[other]]
                    last = m.end()
                yield "".join(new) + code[last:], f"{forms[sign]} -> {forms[other]}"


def _slices(pool: list[str], mine: str) -> list[str]:
    """The other slices the function takes (``:H``, ``H:2*H``), from the pool's subscripts."""
    out = []
    for p in pool:
        for m in re.finditer(r"\[([^\[\]]*:[^\[\]]*)\]", p):
            s = m.group(1).strip()
            if s != mine.strip() and s not in out:
                out.append(s)
    return out[:12]


def _nonlinear(file: str) -> list[str]:
    """The nonlinearities the file calls (``np.tanh``, ``sigmoid``): one may be missing."""
    found = re.findall(r"(?<![\w.])((?:np\.|numpy\.|self\.)?\w*(?:tanh|sigm|exp|relu)\w*)\(",
                       "".join(linecache.getlines(file)), flags=re.IGNORECASE)
    return sorted(set(found) - {"def"})[:4]


def _pool(file: str, line: int, code: str) -> list[str]:
    """The expressions the function around ``line`` reads or writes (``hs[t]``, ``dh_next``,
    ``self.f[t]``, ``cache['o']``), with a step index also one step over, nearest first."""
    source = "".join(linecache.getlines(file))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    fn = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= (
                node.end_lineno or node.lineno) and (fn is None or node.lineno >= fn.lineno):
            fn = node
    scope = fn if fn is not None else tree
    lines = [x.encode() for x in re.split(r"\r\n|\r|\n", source)]  # ast counts bytes
    seen: dict[str, int] = {}
    tops = (e for st in ast.walk(scope) if isinstance(st, ast.stmt)
            for e in ast.iter_child_nodes(st) if isinstance(e, ast.expr))
    for top in tops:
        for a, _ in _atoms(top):
            if not _one_line(a) or _element(a):
                continue
            row = lines[a.lineno - 1]  # type: ignore[attr-defined]
            text = row[a.col_offset:a.end_col_offset].decode()  # type: ignore[attr-defined]
            if len(text) > 40:
                continue
            d = abs(getattr(a, "lineno", line) - line)
            for t in [text, *(x for x, _ in index_shifts(text))]:
                seen[t] = min(seen.get(t, d), d)
    # the loop counter, the dimensions and the like are no arrays a line could mean
    names = {t for t in seen if t in ("t", "T", "H", "self", "i", "k", "j", "n", "N", "D", "X")}
    ranked = sorted((t for t in seen if t not in names), key=lambda t: (seen[t], t))
    return ranked[:MAX_POOL]
