"""Staging a submission: a bounded copy of its folder, so the user's files are found by their
code but never touched by it."""
from __future__ import annotations

import os
import shutil

SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".mypy_cache"}
CODE_SUFFIXES = (".py", ".c", ".so", ".h", ".o")
COPY_BUDGET = (2000, 200 << 20)  # files, bytes copied from the submission's folder
DATA_FILES = 100  # files copied from beside a submission in a class folder (grade)
MAX_DEPTH = 3  # folder levels below the submission's own that are copied


def copy_submission(src_file: str, dst: str, mode: str = "folder") -> str:
    """Copy the submission's folder (bounded in depth, files and bytes) so the user's files are
    found but never touched. A file in a big shared folder (/tmp, a home directory) costs at
    most the budget, and our own work folders are never copied into themselves."""
    src_dir = os.path.dirname(os.path.abspath(src_file))
    dst_real = os.path.realpath(dst)
    files, size = 0, 0
    for root, dirs, names in os.walk(src_dir):
        rel = os.path.relpath(root, src_dir)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith((".", "bpttcheck-"))
                   and not os.path.realpath(os.path.join(root, d)).startswith(dst_real)
                   and depth < MAX_DEPTH]
        if mode == "data":  # a class folder: the data files beside, the first DATA_FILES
            dirs[:] = []
            names = sorted(n for n in names if not n.endswith(CODE_SUFFIXES))[:DATA_FILES]
        for n in names:
            p = os.path.join(root, n)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if not os.path.isfile(p) or size + st.st_size > COPY_BUDGET[1]:
                continue
            os.makedirs(os.path.join(dst, rel), exist_ok=True)
            try:
                shutil.copy2(p, os.path.join(dst, rel, n))
            except OSError:
                continue  # unreadable files are simply not available to the user's code
            files, size = files + 1, size + st.st_size
            if files >= COPY_BUDGET[0]:
                break
        if files >= COPY_BUDGET[0]:
            break
    target = os.path.join(dst, os.path.basename(src_file))
    if not os.path.exists(target):
        shutil.copy2(src_file, target)
    return target
