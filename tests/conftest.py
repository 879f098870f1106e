import os
import re
from pathlib import Path

import pytest
from hypothesis import settings

# How hard property tests look: `ci` (what CI runs: 200 examples a test) or `dev` (a quick
# local run). CI=true in the environment picks `ci` (GitHub Actions and .ci/run set it);
# `--hypothesis-profile NAME` picks either explicitly. A test whose every example starts a
# worker keeps its own small budget; deadlines stay off where a test turns them off.
settings.register_profile("ci", max_examples=200, print_blob=True)
settings.register_profile("dev", max_examples=20)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev")

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
    """Files that must fail; "pass; warning <id>" files pass with a warning (warned_files)."""
    return sorted(p for p in ZOO.glob("*.py") if expected(p) and not expected(p)[0].startswith("pass"))


def warned_files() -> list[Path]:
    return sorted(p for p in ZOO.glob("*.py") if expected(p)[:1] and
                  expected(p)[0].startswith("pass; warning"))


@pytest.fixture
def tmp_module(tmp_path):
    def make(source: str, name: str = "model.py") -> str:
        p = tmp_path / name
        p.write_text(source)
        return str(p)
    return make


def write(tmp_path, src: str, name: str = "model.py") -> str:
    """A model file with ``src`` in a test's folder: its path."""
    p = tmp_path / name
    p.write_text(src)
    return str(p)


def failed(r) -> list[str]:
    """The names of a report's failing checks."""
    return [c.name for c in r.checks if c.status == "fail"]
