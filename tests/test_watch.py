"""`bpttcheck watch` (bpttcheck/watch.py) driven as a generator of outcomes, one per save; and
the hand parser of `bpttcheck run` (entry.parse_run) against typer's."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpttcheck.check.engine import Options
from bpttcheck.result import CheckResult, GroupResult, Report
from bpttcheck.sandbox import session
from bpttcheck.watch import changes, watch

REF = Path(__file__).resolve().parent.parent / "reference"
CORRECT = (REF / "python" / "rnn_functional.py").read_text()
BUGGY = (REF / "bugs" / "python" / "rnn_dwhy_prev_h.py").read_text()


def save(path: Path, text: str) -> None:
    """As an editor saves: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_watch_follows_a_bug_its_fix_a_syntax_error_and_an_imported_file(tmp_path):
    model = tmp_path / "model.py"
    helper = tmp_path / "helpers.py"
    helper.write_text("import numpy as np\n\n\ndef softmax(z):\n    e = np.exp(z - np.max(z))\n"
                      "    return e / np.sum(e)\n")
    split = "\n\ndef softmax(z):\n    e = np.exp(z - np.max(z))\n    return e / np.sum(e)\n"
    assert split in CORRECT and split in BUGGY
    imported = "from helpers import softmax\n"
    buggy = BUGGY.replace(split, "\n" + imported)
    correct = CORRECT.replace(split, "\n" + imported)
    model.write_text(buggy)
    seen = watch(str(model), Options())

    first = next(seen)
    assert first.report.verdict == "fail" and first.changes == []
    assert [d.id for d in first.report.diagnoses] == ["rnn.dwhy-uses-prev-h"]

    save(model, correct)
    fixed = next(seen)
    assert fixed.report.verdict == "pass"
    assert "Why now passes" in fixed.changes and "verdict FAIL -> PASS" in fixed.changes
    assert any(c.startswith("no longer diagnosed") for c in fixed.changes)
    assert fixed.done_at > fixed.seen_at

    save(model, correct.replace("def loss_and_grads(params, inputs, targets, state):",
                                "def loss_and_grads(params, inputs, targets, state)"))
    broken = next(seen)
    assert broken.report.verdict == "error" and "syntax" in broken.report.error.kind.lower()
    assert any(c.startswith("now an error") for c in broken.changes)

    save(model, correct)
    again = next(seen)
    assert again.report.verdict == "pass" and any("error is gone" in c for c in again.changes)

    save(helper, helper.read_text().replace("return e / np.sum(e)", "return e / np.sum(e) * 2"))
    helped = next(seen)  # only the imported file changed: checked again
    assert helped.report.verdict == "fail"
    seen.close()
    assert not session.any_prestarted()  # the spare worker is gone with the watch


def test_a_file_that_goes_away_is_waited_for(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(CORRECT)
    seen = watch(str(model), Options())
    assert next(seen).report.verdict == "pass"
    model.unlink()
    gone = next(seen)
    assert gone.gone and gone.report is None and "waiting" in gone.changes[0]
    model.write_text(BUGGY)
    back = next(seen)
    assert back.report.verdict == "fail"
    seen.close()


def test_a_save_that_changes_nothing_is_not_checked_again(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(CORRECT)
    rounds = iter([False, False, False, True])
    seen = watch(str(model), Options(), stop=lambda: next(rounds))
    assert next(seen).report.verdict == "pass"
    save(model, CORRECT)  # same content, a new file
    with pytest.raises(StopIteration):
        next(seen)


def _report(status: str, checks=()) -> Report:
    g = GroupResult(name="bh", user_name="bh", status=status, max_abs_error=0.5 if
                    status == "fail" else 0.0, max_rel_error=0.1, worst_index=[3],
                    worst_user=1.0, worst_ref=0.5, tolerance=1e-9, scale=1.0,
                    n_bad=1 if status == "fail" else 0, n=8)
    w = GroupResult(name="Whh", user_name="Whh", status="pass", max_abs_error=0.0,
                    max_rel_error=0.0, worst_index=[0, 0], worst_user=0.0, worst_ref=0.0,
                    tolerance=1e-9, scale=1.0, n_bad=0, n=64)
    return Report(verdict="fail" if status == "fail" else "pass", path="m.py", groups=[g, w],
                  checks=[CheckResult(name=n, status=s, message=m) for n, s, m in checks])


def test_changes_name_what_still_fails_and_what_newly_fails():
    before = _report("fail")
    after = _report("fail", [("behaviour.repeat", "fail", "second call differs")])
    got = changes(before, after)
    assert got[0].startswith("bh still fails: max abs error 0.5")
    assert "behaviour.repeat now fails: second call differs" in got
    assert not any("Whh" in c for c in got)  # passing before and after: nothing to say
    assert changes(None, after) == []
    assert changes(after, _report("pass", [("behaviour.repeat", "pass", "")])) == [
        "verdict FAIL -> PASS", "bh now passes", "behaviour.repeat now passes"]


def test_ctrl_c_ends_the_watch_command_with_exit_0(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(CORRECT)
    p = subprocess.Popen([sys.executable, "-m", "bpttcheck", "watch", str(model)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        lines.append(line)
        if line.startswith("== PASS") or not line:
            break
    assert lines[-1].startswith("== PASS model.py"), lines
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "stopped watching" in out and "Traceback" not in err


# ------------------------------------------------------------------ run without typer

def _typer_params() -> tuple[set[str], set[str]]:
    import typer.main

    from bpttcheck.cli import app
    run = typer.main.get_command(app).commands["run"]
    valued, flags = set(), set()
    for p in run.params:
        if p.param_type_name == "option":
            (flags if p.is_flag else valued).update(p.opts)
    return valued, flags


def test_the_hand_parser_knows_every_option_of_run():
    from bpttcheck.entry import RUN_FLAGS, RUN_OPTIONS
    valued, flags = _typer_params()
    assert set(RUN_OPTIONS) == valued and set(RUN_FLAGS) == flags


@pytest.mark.parametrize("argv", [
    ["run", "m.py"],
    ["run", "--spec", "a.toml", "m.py", "--timeout=3", "-q", "--seed", "7"],
    ["run", "m.py", "--json", "-", "--html", "r.html", "--memory-mb", "512", "-v", "--sanitize"],
    ["run", "m.py", "--arch=lstm", "--style", "functional", "--write-fixed", "f.py",
     "--junit", "j.xml", "--gradescope", "g.json", "--timeout", "2.5", "--verbose", "--quiet"],
])
def test_the_hand_parser_reads_a_command_line_as_typer_does(argv, monkeypatch):
    from bpttcheck import cli, runcheck
    from bpttcheck.entry import parse_run
    fast = parse_run(argv)
    assert fast is not None
    names = ["path", "json_out", "junit", "gradescope", "html", "spec", "arch", "style", "seed",
             "timeout", "memory_mb", "sanitize", "write_fixed", "verbose", "quiet", "require_sandbox"]
    got: dict = {}
    monkeypatch.setattr(runcheck, "run_check", lambda *a: got.update(zip(names, a, strict=True)) or 0)
    monkeypatch.setattr(sys, "argv", ["bpttcheck", *argv])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    assert {k: v for k, v in got.items() if v not in (None, False)} == fast


@pytest.mark.parametrize("argv", [
    ["run"], ["run", "--help"], ["run", "m.py", "--seed", "-1"], ["run", "m.py", "--seed", "1e3"],
    ["run", "m.py", "--timeout", "inf"], ["run", "m.py", "--json", "a", "--json", "b"],
    ["run", "m.py", "n.py"], ["run", "m.py", "--unknown"], ["run", "-vq", "m.py"],
    ["grade", "x"], ["run", "m.py", "--json"],
])
def test_anything_unusual_is_left_to_typer(argv):
    from bpttcheck.entry import parse_run
    assert parse_run(argv) is None


def test_run_without_typer_keeps_the_usage_errors_and_exit_codes(tmp_path):
    missing = tmp_path / "nope.py"
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(missing)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr == f"bpttcheck: no such file: {missing}\n"
    shutil.copy(REF / "python" / "rnn_functional.py", tmp_path / "m.py")
    p = subprocess.run([sys.executable, "-m", "bpttcheck", "run", str(tmp_path / "m.py"), "-q"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "" and "typer" not in p.stderr
