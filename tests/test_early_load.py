"""The early worker of `bpttcheck run` imports the user's file as soon as it is up, before the
checker asks (sandbox/session.py load_early): the check must come out exactly as with an
import done on request, failures and hangs included, and a spare worker (`watch`) must not."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from bpttcheck.check.engine import Options, check
from bpttcheck.sandbox import osbox, session
from bpttcheck.sandbox.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "reference" / "python" / "rnn_functional.py"

pytestmark = pytest.mark.skipif(not osbox.current().strong,
                                reason="the early import happens in the OS sandbox only")


@pytest.fixture(autouse=True)
def _no_left_over_workers():
    yield
    for w in session._PRESTARTED.values():
        w.close()
    session._PRESTARTED.clear()


def _plain(r) -> dict:
    d = r.model_dump()
    d.pop("timings")
    for c in d["checks"]:
        c.pop("seconds")
    return d


def _both(path: Path, limits: Limits | None = None) -> tuple[dict, dict]:
    """The report of a check on request and of one whose worker imported the file early."""
    opts = Options(limits=limits or Limits())
    on_request = check(str(path), opts)
    session.prestart(str(path), opts.limits, load_early=True)
    assert session.prestarted(str(path), opts.limits) is not None
    early = check(str(path), opts)
    assert not session.any_prestarted()  # the check took the early worker
    return _plain(on_request), _plain(early)


def test_a_passing_check_is_the_same_with_the_file_imported_early():
    on_request, early = _both(GOOD)
    assert early["verdict"] == "pass" and early == on_request


def test_an_import_that_raises_is_reported_the_same(tmp_path):
    bad = tmp_path / "model.py"
    bad.write_text("import numpy as np\n\nx = 1\nraise ValueError('broken at import')\n")
    on_request, early = _both(bad)
    assert early["verdict"] == "error" and "broken at import" in early["error"]["message"]
    assert early["error"]["line"].startswith("model.py:4:")
    assert early == on_request


def test_an_import_that_hangs_is_timed_out_at_its_line(tmp_path):
    slow = tmp_path / "model.py"
    slow.write_text("import time\n\n\ndef warm_up():\n    while True:\n        time.sleep(0.01)\n"
                    "\n\nwarm_up()\n")  # a top-level loop is skipped; a call is not
    on_request, early = _both(slow, Limits(call_timeout=1.0, load_timeout=1.0))
    assert early["error"]["kind"] == "timeout"
    assert early["error"]["line"].startswith(("model.py:5:", "model.py:6:"))
    assert early["error"]["message"] == on_request["error"]["message"]
    assert early["error"]["line"] == on_request["error"]["line"]


def _imported_marker(tmp_path: Path) -> Path:
    model = tmp_path / "model.py"
    shutil.copy(GOOD, model)
    with model.open("a") as f:  # the import leaves a file beside the staged copy
        f.write("\nimport os as _os\nopen(_os.path.join(_os.path.dirname(__file__), "
                "'imported'), 'w').close()\n")
    return model


def test_the_early_worker_imports_before_it_is_asked_and_a_spare_one_does_not(tmp_path):
    model = _imported_marker(tmp_path)
    limits = Limits()
    session.prestart(str(model), limits, load_early=True)
    w = session.prestarted(str(model), limits)
    marker = Path(w.workdir) / "imported"
    end = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert marker.exists()  # no request was sent: the worker imported it by itself
    w.close()
    session._PRESTARTED.clear()
    session.prestart(str(model), limits)  # as `watch` starts its spare worker
    spare = session.prestarted(str(model), limits)
    time.sleep(3)  # long enough for a start and an import
    assert not (Path(spare.workdir) / "imported").exists()
