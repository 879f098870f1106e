import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "reference" / "python"
ZOO = ROOT / "reference" / "bugs" / "python"


def expected(path: Path) -> list[str]:
    """The ids a zoo file is labelled with (`# bpttcheck-expect: a, b`)."""
    head = path.read_text().splitlines()[0]
    m = re.search(r"bpttcheck-expect:\s*(.*?)\s*(\*/)?$", head)
    return [s.strip() for s in m.group(1).split(",")] if m else []


def correct_files() -> list[Path]:
    files = sorted(p for p in REF.glob("*.py") if not p.name.startswith("_"))
    files += sorted(p for p in ZOO.glob("*.py") if expected(p) == ["pass"])
    return files


def bug_files() -> list[Path]:
    return sorted(p for p in ZOO.glob("*.py") if expected(p) not in ([], ["pass"]))


@pytest.fixture
def tmp_module(tmp_path):
    def make(source: str, name: str = "model.py") -> str:
        p = tmp_path / name
        p.write_text(source)
        return str(p)
    return make
