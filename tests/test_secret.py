"""The grading secret stays secret (issue 13): each submission's hidden case is derived from the
secret and its content, reports name the case by a tag and never print its seed, and the secret
leaves the checker's environment before any worker or compiler starts."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bpttcheck.check.engine import Options, check
from tests.test_hostile import RECORDER, REPLAY, SHORT, _cli, model

slow = pytest.mark.slow
SECRET = "correct horse battery staple"
REF_C = Path(__file__).resolve().parent.parent / "reference" / "c" / "rnn.c"


def _env(**extra: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if k != "BPTTCHECK_SECRET"}, **extra}


def test_the_secret_leaves_the_environment_when_read(monkeypatch):
    from bpttcheck.settings import settings
    monkeypatch.setenv("BPTTCHECK_SECRET", SECRET)
    opts = settings().opts
    assert "BPTTCHECK_SECRET" not in os.environ
    assert opts.secret == SECRET and SECRET not in repr(opts)


def test_the_seed_is_derived_per_submission_and_never_reported(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(model())
    b.write_text(model() + "\n# another submission\n")
    ra = check(str(a), Options(limits=SHORT, secret=SECRET))
    ra2 = check(str(a), Options(limits=SHORT, secret=SECRET))
    rb = check(str(b), Options(limits=SHORT, secret=SECRET))
    assert ra.verdict == rb.verdict == "pass"
    assert ra.seed is None and rb.seed is None  # the JSON keeps `seed`, as null
    assert re.fullmatch("[0-9a-f]{8}", ra.case_tag or "")
    assert ra.case_tag == ra2.case_tag != rb.case_tag  # the same case for the same file
    assert ra.loss != rb.loss  # different probes
    public = check(str(a), Options(limits=SHORT))
    assert public.seed == 0 and public.case_tag is None


@slow
def test_answers_replayed_from_another_submissions_hidden_case_fail(tmp_path):
    """The attack: run a recorder as a submission under the secret (its report names no seed;
    it records the hidden case it was asked), then submit code that replays those answers."""
    table = tmp_path / "table.jsonl"
    rec = tmp_path / "rec" / "recorder.py"
    rec.parent.mkdir()
    rec.write_text(RECORDER.replace("TABLE", repr(str(table))))
    # the fallback isolation: the recorder writes outside its folder, which the OS sandbox
    # would not show (the attack does not need it: a student could print the case instead)
    out = _cli("run", str(rec), "--json", str(tmp_path / "rec.json"), "--junit",
               str(tmp_path / "rec.xml"), "--html", str(tmp_path / "rec.html"),
               env=_env(BPTTCHECK_SECRET=SECRET, BPTTCHECK_SANDBOX="weak"))
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads((tmp_path / "rec.json").read_text())
    assert "seed" in data and data["seed"] is None
    assert re.fullmatch("[0-9a-f]{8}", data["case_tag"])
    from bpttcheck.secret import submission_seed
    hidden = str(submission_seed(SECRET, rec.read_bytes()))
    for text in (out.stdout, (tmp_path / "rec.xml").read_text(),
                 (tmp_path / "rec.html").read_text(), json.dumps(data)):
        assert hidden not in text and SECRET not in text and data["case_tag"] in text
    cheat_dir = tmp_path / "cheat"
    cheat_dir.mkdir()
    (cheat_dir / "table.jsonl").write_text(table.read_text())
    (cheat_dir / "cheat.py").write_text(REPLAY)
    replay = _cli("run", str(cheat_dir / "cheat.py"), "--json", str(tmp_path / "cheat.json"),
                  env=_env(BPTTCHECK_SECRET=SECRET))
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert json.loads((tmp_path / "cheat.json").read_text())["verdict"] == "fail"
    # the control: the recorder itself, a correct model, passes its own hidden case again
    again = _cli("run", str(rec), env=_env(BPTTCHECK_SECRET=SECRET, BPTTCHECK_SANDBOX="weak"))
    assert again.returncode == 0, again.stdout + again.stderr


@slow
def test_grade_reports_a_case_tag_and_no_seed(tmp_path):
    cls = tmp_path / "class"
    cls.mkdir()
    (cls / "alice.py").write_text(model())
    out = tmp_path / "out"
    res = _cli("grade", str(cls), "--out", str(out), "-q", env=_env(BPTTCHECK_SECRET=SECRET))
    assert res.returncode == 0, res.stdout + res.stderr
    from bpttcheck.secret import submission_seed
    hidden = str(submission_seed(SECRET, (cls / "alice.py").read_bytes()))
    data = json.loads((out / "alice" / "report.json").read_text())
    assert data["verdict"] == "pass" and data["seed"] is None and data["case_tag"]
    for f in out.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert hidden not in text and SECRET not in text, f


LEAK = '''
import ctypes, os
libc = ctypes.CDLL(None)
def _read(path):
    fd = libc.open(path.encode(), 0)
    if fd < 0:
        return b"<unreadable>"
    buf, got = ctypes.create_string_buffer(1 << 16), b""
    while True:
        n = libc.read(fd, buf, len(buf))
        if n <= 0:
            break
        got += buf.raw[:n]
    libc.close(fd)
    return got
open(OUT, "wb").write(_read(f"/proc/{os.getppid()}/environ"))
'''


@slow
@pytest.mark.skipif(os.getuid() != 0, reason="as root, /proc/<checker>/environ is readable")
def test_as_root_the_checker_environment_holds_no_secret_even_through_libc(tmp_path):
    """Past the audit hook (libc's open and read), as root (undumpable does not stop root):
    the worker, prestarted by the command line before the spec and flags are read, reads its
    parent's environment and finds the variable's value gone."""
    out = tmp_path / "environ"
    path = tmp_path / "model.py"
    path.write_text(model(head=LEAK.replace("OUT", repr(str(out)))))
    # the fallback isolation: in the OS sandbox the checker is no process the worker can see
    # (tests/test_os_sandbox.py), and the code could not write its finding out
    res = _cli("run", str(path), env=_env(BPTTCHECK_SECRET=SECRET, BPTTCHECK_SANDBOX="weak"))
    assert res.returncode == 0, res.stdout + res.stderr
    got = out.read_bytes()
    assert got != b"<unreadable>" and b"PATH=" in got  # it did read the checker's environment
    assert SECRET.encode() not in got


@slow
def test_the_compiler_never_sees_the_secret(tmp_path):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    seen = tmp_path / "cc-env"
    cc = tmp_path / "cc"
    cc.write_text(f"#!/bin/sh\nenv > {seen}\nexec {gcc} \"$@\"\n")
    cc.chmod(cc.stat().st_mode | stat.S_IEXEC)
    src = tmp_path / "rnn.c"
    shutil.copy(REF_C, src)
    src.write_text(src.read_text() + f"\n/* {os.getpid()} {tmp_path.name} */\n")  # not cached
    res = _cli("run", str(src), env=_env(BPTTCHECK_SECRET=SECRET, CC=str(cc)))
    assert seen.exists(), res.stdout + res.stderr  # the compiler ran
    assert SECRET not in seen.read_text()
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_entry_point_takes_the_secret_before_anything_starts():
    code = ("import os\nfrom bpttcheck import secret\nsecret.hold()\n"
            "assert 'BPTTCHECK_SECRET' not in os.environ\n"
            "assert secret.take() == 'x y'\n"
            "env = open('/proc/self/environ', 'rb').read()\n"
            "assert b'x y' not in env, env\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(BPTTCHECK_SECRET="x y"),
                   timeout=60)
