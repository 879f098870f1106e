"""Issue 15 judged on the line zoo (tests/line_zoo: one planted bug a file, its line labelled
by a helper who never read the locator): the located line is the labelled one, and the
verified repair, written to a new file, passes there and at another seed."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from bpttcheck import repair
from bpttcheck.check.engine import Options, check

ZOO = Path(__file__).parent / "line_zoo"
LABELS = json.loads((ZOO / "labels.json").read_text())
# no one-line rewrite repairs these; what the locator says of them is still tested
NOT_REPAIRED = {
    "cg_direct_path_missing.py": "dh is built over three lines from a placeholder zeros_like",
    "kg_direct_path_missing.py": "the missing term dh * (1 - z) multiplies two names far "
                                 "from the line",
    "ll_dc_not_carried.py": "the located statement spans three lines",
    "dl_blocks_swapped.py": "the layer reference's stacked gradient is in another gate order",
}


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.quality
@pytest.mark.parametrize("name", sorted(LABELS))
def test_the_planted_line_is_located_and_repaired(name, tmp_path):
    label = LABELS[name]
    path = tmp_path / name  # a copy: the zoo is never written to
    shutil.copy(ZOO / name, path)
    before = _digest(path)
    opts = Options(seed=0)
    r = check(str(path), opts)
    assert r.verdict == "fail"
    d = next((d for d in r.diagnoses if d.location and d.location.line), None)
    assert d is not None, f"{name}: no line located ({[x.id for x in r.diagnoses]})"
    assert d.location.line in [label["line"], *label["also"]], (name, d.location)
    if name in NOT_REPAIRED:
        return
    fixed = tmp_path / "fixed" / name
    fixed.parent.mkdir()
    repair.attach(r, str(path), opts, str(fixed))
    assert d.repair is not None and d.repair.verified, (name, d.location, d.fix)
    assert _digest(path) == before
    assert label["line"] in d.repair.lines
    assert f"passes all {d.repair.checks} checks" in d.fix
    assert check(str(fixed), Options(seed=12345)).verdict == "pass"  # not tuned to one case


def test_the_zoo_meets_the_issues_targets():
    """At least 90% of the files located (every one is, above) and 75% repaired."""
    assert len(NOT_REPAIRED) <= 0.25 * len(LABELS)
    assert set(NOT_REPAIRED) <= set(LABELS)
