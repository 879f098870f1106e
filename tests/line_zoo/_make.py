"""
Builds the line zoo from the correct bases in _bases/: each entry of MUTATIONS replaces ONE
line of a base (the n-th line whose stripped text equals `old`, indentation kept) and writes
<name>.py (the bug) and correct/<name>.py (the base, same header, same line numbers), and
labels.json. Run from anywhere: python tests/line_zoo/_make.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "# line_zoo: {name} (written by helper zoo15; labels in tests/line_zoo/labels.json)\n"

# name: (base, old, new, bug, arch, style, also-offsets relative to the line, nth occurrence)
MUTATIONS: dict[str, tuple] = {}


def bug(name, base, old, new, text, arch, style, also=(), nth=1):
    MUTATIONS[name] = (base, old, new, text, arch, style, tuple(also), nth)


exec((HERE / "_mutations.py").read_text())


def build():
    labels = {}
    (HERE / "correct").mkdir(exist_ok=True)
    for old in [*HERE.glob("[!_]*.py"), *(HERE / "correct").glob("*.py")]:
        old.unlink()  # generated files only: the sources are _bases/ and _mutations.py
    for name, (base, old, new, text, arch, style, also, nth) in MUTATIONS.items():
        src = (HERE / "_bases" / f"{base}.py").read_text()
        lines = (HEADER.format(name=f"{name}.py") + src).splitlines(keepends=True)
        hits = [k for k, line in enumerate(lines) if line.strip() == old.strip()]
        if len(hits) < nth:
            raise SystemExit(f"{name}: line {old!r} found {len(hits)} times in {base}")
        if nth == 1 and len(hits) > 1:
            raise SystemExit(f"{name}: line {old!r} is not unique in {base}; give nth")
        k = hits[nth - 1]
        indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
        buggy = [*lines[:k], indent + new.strip() + "\n", *lines[k + 1:]]
        (HERE / "correct" / f"{name}.py").write_text("".join(lines))
        (HERE / f"{name}.py").write_text("".join(buggy))
        labels[f"{name}.py"] = {"line": k + 1, "also": [k + 1 + d for d in also],
                                "bug": text, "style": style, "arch": arch, "base": base}
    (HERE / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    print(len(labels), "files")


if __name__ == "__main__":
    build()
