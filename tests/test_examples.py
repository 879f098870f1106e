"""reports/ holds example reports a visitor sees before installing; they must be current:
each JSON equals a fresh run (timings aside) and each HTML equals the HTML of its JSON."""
import importlib.util
import json

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("generate", ROOT / "reports" / "generate.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def _close(a, b, path="") -> None:
    """Equal, floats to 1e-9 relative (BLAS may sum in another order on another machine)."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-15), path
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(gen.EXAMPLES))
def test_example_report_is_current(name):
    stored = (ROOT / "reports" / f"{name}.json").read_text()
    fresh, _ = gen.build(name)
    _close(gen.volatile(json.loads(fresh)), gen.volatile(json.loads(stored)))
    assert (ROOT / "reports" / f"{name}.html").read_text() == gen.html_from_json(stored), (
        f"reports/{name}.html is stale: run python reports/generate.py")


def test_readme_links_every_example():
    readme = (ROOT / "README.md").read_text()
    assert "reports/README.md" in readme
    index = (ROOT / "reports" / "README.md").read_text()
    for name in gen.EXAMPLES:
        assert f"]({name}.html)" in index
