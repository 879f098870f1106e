"""Reading the user's source the way Python (or Jupyter) would run it, before anything of it
runs: decoding, Python 2 recognised as such, notebooks split into cells with their magics and
shell lines set aside, and the top-level statements that would train, plot or download left
out. Runs in the worker; nothing here executes user code."""
from __future__ import annotations

import ast
import io
import linecache
import os
import re
import tokenize
from dataclasses import dataclass, field

ENTRY_NAMES = {"lossFun", "loss_and_grads", "forward", "backward", "bptt", "train_step"}
# what a notebook cell does that a check must not: draw, download, show
SIDE_EFFECT_NAMES = {"plt", "sns", "pyplot", "display", "urlretrieve", "wget", "gdown", "files"}
# cell magics whose body is still Python (the magic line itself is dropped)
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}

PY2_NAMES = {"xrange", "raw_input", "unicode", "basestring", "unichr", "long", "reduce",
             "cmp", "execfile", "file"}
PY2_METHODS = {"iteritems", "itervalues", "iterkeys", "has_key"}
_PY2_LINE = [
    (re.compile(r"^\s*print(\s+(?![\s=(.,)\]:])|\s*>>)"), "a print statement"),
    (re.compile(r"^\s*except\s+(\([^)]*\)|[\w.]+)\s*,\s*\w+\s*:"), "`except E, e:`"),
    (re.compile(r"^\s*raise\s+[\w.]+\s*,"), "`raise E, message`"),
    (re.compile(r"^\s*exec\s+[\"'\w]"), "an exec statement"),
    (re.compile(r"\bur[\"']"), "a ur'' string"),
]


class SourceError(Exception):
    """The file cannot be read as Python 3 source; ``line`` is the 1-based line, if known."""

    def __init__(self, message: str, line: int | None = None, text: str = ""):
        super().__init__(message)
        self.message, self.line, self.text = message, line, text


@dataclass
class Chunk:
    """A piece of the user's code that runs as one: a whole .py file, or one notebook cell."""

    filename: str  # what tracebacks name: the file, or "<file>#cellN" for a notebook cell
    label: str  # "model.py", or "cell N" of a notebook
    tree: ast.Module
    source: str  # as parsed (a notebook cell without its IPython lines)
    skipped: list[str] = field(default_factory=list)  # "line N: source" of training loops


def decode(path: str, raw: bytes) -> str:
    try:
        enc, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        return raw.decode(enc)
    except (SyntaxError, UnicodeDecodeError, LookupError) as e:
        raise SourceError(f"{os.path.basename(path)} is not valid text in its declared "
                          f"encoding ({e}); save it as UTF-8") from None


def python2_line(src: str, hint: int | None = None) -> tuple[int, str, str] | None:
    """(line, source, what) of Python 2 syntax in ``src``: the line a SyntaxError named
    first, else the first such line in the file; None if nothing looks like Python 2."""
    lines = src.splitlines()
    order = ([hint - 1] if hint and 0 < hint <= len(lines) else []) + list(range(len(lines)))
    for i in order:
        for pattern, what in _PY2_LINE:
            if pattern.search(lines[i]):
                return i + 1, lines[i].strip(), what
    return None


def python2_hint(name: str) -> str:
    """A sentence for a NameError/AttributeError whose name only Python 2 has, else ""."""
    if name in PY2_NAMES or name in PY2_METHODS:
        return (f". `{name}` is Python 2: bpttcheck runs your code with Python 3; convert the "
                f"file with 2to3 (`2to3 -w FILE`) or by hand ({'range' if name == 'xrange' else 'the Python 3 name'})")
    return ""


def parse(src: str, filename: str) -> ast.Module:
    try:
        return ast.parse(src, filename=filename)
    except SyntaxError as e:
        py2 = python2_line(src, e.lineno)
        if py2:
            n, text, what = py2
            raise SourceError(f"this is Python 2 code ({what} at line {n}): bpttcheck runs "
                              f"Python 3. Convert the file with 2to3 (`2to3 -w FILE`, from a "
                              f"Python up to 3.12) or by hand: print(...) calls, `except E as "
                              f"e:`, range for xrange", n, text) from None
        raise


def module_chunks(path: str, src: str) -> list[Chunk]:
    tree = parse(src, path)
    lines = src.splitlines()
    chunk = Chunk(path, os.path.basename(path), tree, src)
    tree.body = _keep(tree.body, lines, chunk.skipped)
    return [chunk]


def notebook_chunks(path: str, raw: bytes) -> tuple[list[Chunk], list[str]]:
    """The code cells of a notebook in order, each parsed on its own (a cell with a syntax
    error is set aside, as Jupyter would fail only that cell), and what was set aside."""
    import nbformat

    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds for a broken file
        raise SourceError(f"{os.path.basename(path)} is not a readable Jupyter notebook: "
                          f"{type(e).__name__}: {str(e)[:200]}") from None
    chunks, notes = [], []
    n = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        n += 1
        label = f"cell {n}"
        src, why = _without_magics(cell.get("source", ""))
        if why:
            notes.append(f"{label}: {why}")
        if not src.strip():
            continue
        filename = f"{path}#cell{n}"
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        try:
            tree = parse(src, filename)
        except SourceError as e:
            notes.append(f"{label}, line {e.line}: {e.message.split(':')[0]}; the cell was not run")
            continue
        except SyntaxError as e:
            notes.append(f"{label}, line {e.lineno}: syntax error ({e.msg}); the cell was not run")
            continue
        chunk = Chunk(filename, label, tree, src)
        aside: list[str] = []
        tree.body = _keep(tree.body, src.splitlines(), chunk.skipped, aside)
        notes += [f"{label}, {s} plots, displays or downloads; not run" for s in aside]
        chunks.append(chunk)
    return chunks, notes


def _without_magics(src: str) -> tuple[str, str]:
    """The cell's Python: IPython magics (%...), shell lines (!...) and help lines (x?) become
    blank lines, so line numbers stay the cell's own. A cell magic that is not Python
    (%%bash, %%writefile) drops the cell."""
    lines = src.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].strip()[2:].split()[0] if lines[0].strip()[2:] else ""
        if magic not in PYTHON_CELL_MAGICS:
            return "", f"a %%{magic} cell, not Python: not run"
        lines[0] = ""
    dropped = []
    for i, ln in enumerate(lines):
        s = ln.strip()
        if s.startswith(("%", "!")) or re.match(r"^\w+\s*=\s*[!%]", s) or (
                s.endswith("?") and not s.startswith("#")):
            dropped.append(s)
            lines[i] = ""
    why = (f"IPython line{'s' if len(dropped) > 1 else ''} not run: "
           + ", ".join(f"`{d[:40]}`" for d in dropped[:3])
           + (" ..." if len(dropped) > 3 else "")) if dropped else ""
    return "\n".join(lines), why


def _keep(body: list[ast.stmt], lines: list[str], loops: list[str],
          aside: list[str] | None = None) -> list[ast.stmt]:
    """The top-level statements that may run while loading. Left out: training loops (a
    `while` loop, or a `for` loop that calls the loss function: min-char-rnn ends in
    `while True`), and with ``aside`` given (a notebook) statements that plot, display or
    download."""
    kept = []
    for node in body:
        where = f"line {node.lineno}: {lines[node.lineno - 1].strip()}"
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if isinstance(node, ast.While) or (
                isinstance(node, (ast.For, ast.AsyncFor)) and names & ENTRY_NAMES):
            loops.append(where)
        elif aside is not None and _side_effect(node, names):
            aside.append(where)
        else:
            kept.append(node)
    return kept


def _side_effect(node: ast.stmt, names: set[str]) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return False
    attrs = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    return bool((names | attrs) & SIDE_EFFECT_NAMES)


def package_of(path: str, top: str) -> tuple[str, str]:
    """(module name, folder to put on sys.path) for the file at ``path``: `pkg.sub.model` with
    the folder above `pkg` when the file's folders have `__init__.py` (up to ``top``), else
    the bare stem and the file's own folder."""
    folder = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    if not stem.isidentifier():  # model.v2.py, alice..py: a script, never a package's module
        return stem.replace(".", "_"), folder
    parts = [stem]
    top = os.path.realpath(top)
    while (os.path.isfile(os.path.join(folder, "__init__.py"))
           and os.path.realpath(folder).startswith(top)
           and all(p.isidentifier() for p in parts)):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    return ".".join(parts), folder
