"""The project's own promises: CI runs exactly the README's test command after the linters, the
version is written once, and the files a release needs are there."""
import re
import tomllib

import bpttcheck
from conftest import ROOT


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    return next(b for b in blocks if "pytest" in b).strip()


def test_ci_runs_the_linters_then_exactly_the_readmes_test_command():
    command = _readme_test_command()
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[-1] == command
    assert lines.index("ruff check .") < lines.index("mypy bpttcheck") < len(lines) - 1


def test_tools_are_configured_in_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lint = py["tool"]["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B", "UP", "SIM", "RUF"} <= set(lint["select"])
    assert py["tool"]["mypy"]["python_version"] == "3.11"
    assert "-n" in py["tool"]["pytest"]["ini_options"]["addopts"]
    hooks = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "repo: local" in hooks and "language: system" in hooks and "https://" not in hooks


def test_the_version_is_written_once():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in py["project"] and py["project"]["dynamic"] == ["version"]
    assert py["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bpttcheck.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", bpttcheck.__version__)
    assert f"## [{bpttcheck.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_license_and_package_data_are_true():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "bpttcheck developers" in (ROOT / "LICENSE").read_text()
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in py["tool"]["setuptools"]["package-data"]["bpttcheck"]:
        assert list((ROOT / "bpttcheck").glob(pattern)), pattern
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
