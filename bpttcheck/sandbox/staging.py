"""Staging a submission: a bounded copy of its folder, so the user's files are found by their
code but never touched by it.

What is copied follows what `python FILE` would find. The file's own folder is copied whole
(data files included: `open("input.txt")` beside the model works). When the file sits in a
package (folders with `__init__.py`), or below the folder the user runs from, the Python
sources from that root down are copied too, so `from common.functions import softmax` or
`from .layers import affine` resolve as they would for the user."""
from __future__ import annotations

import ast
import os
import shutil

SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".mypy_cache",
             ".ipynb_checkpoints"}
CODE_SUFFIXES = (".py", ".c", ".so", ".h", ".o", ".ipynb")
COPY_BUDGET = (2000, 200 << 20)  # files, bytes copied from the submission's folder
DATA_FILES = 100  # files copied from beside a submission in a class folder (grade)
MAX_DEPTH = 3  # folder levels below the submission's own that are copied


def stage_root(src_file: str, run_from: str | None = None) -> str:
    """The folder whose tree is staged: the file's folder, raised to the parent of the package
    the file belongs to, and to ``run_from`` (the user's current folder) when the file lies at
    most MAX_DEPTH levels below it."""
    root = os.path.dirname(os.path.abspath(src_file))
    while os.path.isfile(os.path.join(root, "__init__.py")) and os.path.dirname(root) != root:
        root = os.path.dirname(root)
    if run_from:
        here = os.path.abspath(run_from)
        rel = os.path.relpath(root, here)
        if not rel.startswith(os.pardir) and (rel == "." or rel.count(os.sep) < MAX_DEPTH):
            root = here
    return root


def root_of(src_file: str, mode: str = "folder", run_from: str | None = None) -> str:
    """The folder whose copy is the worker's work folder: the file's own in "data" mode,
    else stage_root's."""
    return os.path.dirname(os.path.abspath(src_file)) if mode == "data" else stage_root(
        src_file, run_from)


def copy_submission(src_file: str, dst: str, mode: str = "folder",
                    run_from: str | None = None) -> str:
    """Copy what the submission may read into ``dst`` (bounded in depth, files and bytes) and
    return the staged path of the file. ``mode`` "data" (a class folder of one file per
    student) copies only the file and the data files beside it, not the others' code. A file
    in a big shared folder (/tmp, a home directory) costs at most the budget, and our own work
    folders are never copied into themselves."""
    src_dir = os.path.dirname(os.path.abspath(src_file))
    root = root_of(src_file, mode, run_from)
    budget = _Budget(os.path.realpath(dst))
    if root != src_dir:  # the Python sources below the root that the file's imports reach
        for path in imported_sources(src_file, root):
            out = os.path.join(dst, os.path.relpath(path, root))
            if not os.path.exists(out) and budget.take(os.path.getsize(path)):
                os.makedirs(os.path.dirname(out), exist_ok=True)
                shutil.copyfile(path, out)
    where = os.path.join(dst, os.path.relpath(src_dir, root))
    _copy_tree(src_dir, where, budget, data_only=mode == "data")
    target = os.path.join(where, os.path.basename(src_file))
    if not os.path.exists(target):
        os.makedirs(where, exist_ok=True)
        shutil.copy2(src_file, target)
    return target


def imported_sources(src_file: str, root: str, limit: int = 500) -> list[str]:
    """The .py files under ``root`` that ``src_file`` imports, directly or through the files
    it imports (read, never run): a module `name.py` or a package folder `name/` at the root,
    and the whole top package the file itself belongs to (for its relative imports)."""
    found: list[str] = []
    todo = [os.path.abspath(src_file)]
    top = os.path.dirname(os.path.abspath(src_file))
    while os.path.isfile(os.path.join(top, "__init__.py")) and os.path.dirname(top) != top:
        top = os.path.dirname(top)
    if top != os.path.dirname(os.path.abspath(src_file)):  # the file is in a package
        todo += _package_files(os.path.join(top, os.path.relpath(src_file, top).split(os.sep)[0]))
    seen = set()
    while todo and len(found) < limit:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path != os.path.abspath(src_file):
            found.append(path)
        for name in _top_level_imports(path):
            mod = os.path.join(root, name + ".py")
            pkg = os.path.join(root, name)
            if os.path.isfile(mod):
                todo.append(mod)
            elif os.path.isdir(pkg) and name not in SKIP_DIRS:
                todo += _package_files(pkg)
    return found


def _package_files(folder: str) -> list[str]:
    out = []
    for r, dirs, names in os.walk(folder):
        depth = os.path.relpath(r, folder).count(os.sep)
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
                   and depth < MAX_DEPTH]
        out += [os.path.join(r, n) for n in names if n.endswith(".py")]
    return out


def _top_level_imports(path: str) -> set[str]:
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


class _Budget:
    def __init__(self, dst_real: str):
        self.dst_real, self.files, self.size = dst_real, 0, 0

    def spent(self) -> bool:
        return self.files >= COPY_BUDGET[0]

    def take(self, size: int) -> bool:
        if self.size + size > COPY_BUDGET[1]:
            return False
        self.files, self.size = self.files + 1, self.size + size
        return True


def _copy_tree(src_dir: str, dst: str, budget: _Budget, keep=None, data_only: bool = False):
    for root, dirs, names in os.walk(src_dir):
        rel = os.path.relpath(root, src_dir)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith((".", "bpttcheck-"))
                   and not os.path.realpath(os.path.join(root, d)).startswith(budget.dst_real)
                   and depth < MAX_DEPTH]
        if data_only:  # the data files beside, the first DATA_FILES
            dirs[:] = []
            names = sorted(n for n in names if not n.endswith(CODE_SUFFIXES))[:DATA_FILES]
        for n in names:
            p = os.path.join(root, n)
            out = os.path.join(dst, rel, n)
            if (keep is not None and not keep(n)) or os.path.exists(out):
                continue
            try:
                st = os.stat(p)
            except OSError:
                continue
            if not os.path.isfile(p) or not budget.take(st.st_size):
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            try:
                shutil.copy2(p, out)
            except OSError:
                continue  # unreadable files are simply not available to the user's code
            if budget.spent():
                return
