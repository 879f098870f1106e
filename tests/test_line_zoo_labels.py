"""The line zoo's labels are true to its files: each bug file differs from its correct twin on
exactly the labelled line, so the label is where the planted bug is (no bpttcheck run here)."""
import json
from pathlib import Path

import pytest

ZOO = Path(__file__).parent / "line_zoo"
LABELS = json.loads((ZOO / "labels.json").read_text())


def test_every_bug_file_is_labelled_and_has_a_twin():
    files = {p.name for p in ZOO.glob("[!_]*.py")}
    assert files == set(LABELS)
    assert files == {p.name for p in (ZOO / "correct").glob("*.py")}
    assert 40 <= len(files) <= 60


@pytest.mark.parametrize("name", sorted(LABELS))
def test_label_is_the_only_changed_line(name):
    label = LABELS[name]
    bug = (ZOO / name).read_text().splitlines()
    twin = (ZOO / "correct" / name).read_text().splitlines()
    assert len(bug) == len(twin)
    changed = [k + 1 for k, (a, b) in enumerate(zip(bug, twin, strict=True)) if a != b]
    assert changed == [label["line"]]
    assert all(1 <= line <= len(bug) and line != label["line"] for line in label["also"])
    assert label["style"] in {"karpathy", "functional", "class", "layers", "dlfs2", "split"}
    assert label["arch"] in {"rnn", "lstm", "gru"}
    assert label["bug"]
