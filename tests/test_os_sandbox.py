"""The OS sandbox (sandbox/osbox.py), run for real under bubblewrap: what a submission can and
cannot see or reach, that nothing it starts outlives its check, and the fallback (a
`sandbox.weak` note; --require-sandbox and [limits] require_sandbox refuse it, exit 4).

A submission here reports what it saw by raising at import: the report's error message
carries the observations as JSON. The same code run with the fallback (BPTTCHECK_SANDBOX=weak)
is the control: it sees what the sandbox hides, so every "cannot" below could fail.

Tests that need a working bwrap skip without one, except in CI (CI=true), where .ci/run
installs it and a missing sandbox must fail."""
from __future__ import annotations

import errno
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

import bpttcheck
from bpttcheck.check.engine import Options, check
from bpttcheck.sandbox import osbox
from bpttcheck.sandbox.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
PKG = Path(bpttcheck.__file__).resolve().parent
CORRECT = (ROOT / "reference" / "python" / "rnn_functional.py").read_text()
SHORT = Limits(call_timeout=3.0, load_timeout=5.0)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _strong() -> bool:
    osbox.reset()
    try:
        return osbox.current().strong
    finally:
        osbox.reset()


needs_bwrap = pytest.mark.skipif(
    not IN_CI and (os.environ.get(osbox.SWITCH_VAR, "").lower() == "weak" or not _strong()),
    reason="bwrap cannot make its namespaces here (CI installs it and runs these)")


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    """Each test probes again (some change PATH) and starts from the default: sandbox on."""
    monkeypatch.delenv(osbox.SWITCH_VAR, raising=False)
    osbox.reset()
    yield
    osbox.reset()


# ---------------------------------------------------------------- what a submission sees

OBSERVE = r'''
import ctypes, json, os, socket, struct
_libc = ctypes.CDLL(None, use_errno=True)
_seen = {}

def _try(key, f):
    try:
        _seen[key] = f()
    except Exception as e:  # what stopped it, by name
        _seen[key] = type(e).__name__

def _libc_open(path):  # below the audit hook: only the file system can say no
    fd = _libc.open(path.encode(), 0)
    if fd >= 0:
        os.close(fd)
    return fd

def _connect(host, port):  # below the audit hook too: only the namespaces can say no
    fd = _libc.socket(2, 1, 0)
    _libc.setsockopt(fd, 1, 21, struct.pack("ll", 1, 0), 16)  # SO_SNDTIMEO: 1 s
    addr = struct.pack("=HH4s8x", 2, socket.htons(port), socket.inet_aton(host))
    rc = _libc.connect(fd, addr, len(addr))
    err = ctypes.get_errno()
    os.close(fd)
    return [rc, err]

for _key, _path in WATCH.items():
    _try("list " + _key, lambda: sorted(os.listdir(_path)))
    _try("exists " + _key, lambda: os.path.exists(_path))
for _key, _path in READ.items():
    _try("read " + _key, lambda: open(_path).read())
for _key, _path in LIBC_OPEN.items():
    _try("open " + _key, lambda: _libc_open(_path))
_try("write outside", lambda: open(OUTSIDE, "w").write("x"))
_try("write here", lambda: open("written-here.txt", "w").write("x"))
_try("data beside", lambda: open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                             "data.txt")).read())
_try("data cwd", lambda: open("data.txt").read())
_try("pids", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
_try("kill checker", lambda: [_libc.kill(CHECKER, 0), ctypes.get_errno()])
_try("uid", os.getuid)
if PORT:
    _try("connect loopback", lambda: _connect("127.0.0.1", PORT))
    _try("connect outside", lambda: _connect("1.1.1.1", 53))
raise RuntimeError("OBSERVED " + json.dumps(_seen))
'''


def observer(watch: dict, read: dict, libc_open: dict, outside: Path, checker: int,
             port: int = 0) -> str:
    head = (OBSERVE.replace("WATCH", repr({k: str(v) for k, v in watch.items()}))
            .replace("LIBC_OPEN", repr({k: str(v) for k, v in libc_open.items()}))
            .replace("READ", repr({k: str(v) for k, v in read.items()}))
            .replace("OUTSIDE", repr(str(outside))).replace("CHECKER", str(checker))
            .replace("PORT", str(port)))
    return head + CORRECT


def observed(message: str) -> dict:
    m = re.search(r"OBSERVED (\{.*\})", message)
    assert m, message
    return json.loads(m.group(1))


def _class(tmp_path: Path, home: Path) -> tuple[Path, Path, Path]:
    """A class folder of one file per student (grade copies only the data files beside a
    submission): alice observes, bob is a correct submission, data.txt is theirs to read."""
    klass, out = tmp_path / "class", tmp_path / "out"
    klass.mkdir()
    (klass / "bob.py").write_text(CORRECT + "\nBOB_SECRET = 'bob wrote this'\n")
    (klass / "data.txt").write_text("the course's data")
    home.mkdir()
    (home / "secret.txt").write_text("the grader's own file")
    outside = tmp_path / "escaped.txt"
    (klass / "alice.py").write_text(observer(
        watch={"class": klass, "out": out, "home": home, "reference": ROOT / "reference",
               "tests": ROOT / "tests"},  # check/ and oracle/: by libc below (the guard
        # refuses listing them from Python, a second layer this test looks past)
        read={"bob": klass / "bob.py", "home": home / "secret.txt"},
        libc_open={"engine": PKG / "check" / "engine.py", "oracle": PKG / "oracle" / "rnn.py",
                   "errors": PKG / "errors.py"},
        outside=outside, checker=os.getpid()))
    return klass, out, outside


def _grade_alice(tmp_path: Path, monkeypatch) -> tuple[dict, dict, Path]:
    from bpttcheck.grade import grade
    from bpttcheck.settings import settings
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))  # the checker's HOME: the worker must not see it
    klass, out, outside = _class(tmp_path, home)
    rows = grade(str(klass), settings(timeout=5.0), str(out), jobs=1, html=False,
                 progress=False)
    by = {r.student: r for r in rows}
    alice = json.loads((out / "alice" / "report.json").read_text())
    bob = json.loads((out / "bob" / "report.json").read_text())
    assert by["bob"].verdict == "pass", bob["error"]
    return observed(alice["error"]["message"]), {"alice": alice, "bob": bob}, outside


@needs_bwrap
def test_in_grade_a_submission_sees_its_data_but_not_the_class_out_home_or_checker(
        tmp_path, monkeypatch):
    seen, reports, outside = _grade_alice(tmp_path, monkeypatch)
    hidden = ("class", "out", "home", "reference", "tests")
    for key in hidden:
        assert seen[f"exists {key}"] is False, (key, seen)
        assert seen[f"list {key}"] == "FileNotFoundError", (key, seen)
    assert seen["read bob"] == "FileNotFoundError" and seen["read home"] == "FileNotFoundError"
    # bpttcheck's checking and reference code: not there to open, even below the audit hook
    assert seen["open engine"] == -1 and seen["open oracle"] == -1
    assert seen["open errors"] >= 0  # the rest of the package is there (the worker needs it)
    assert seen["data beside"] == seen["data cwd"] == "the course's data"
    assert seen["write here"] == 1
    assert seen["write outside"] in ("FileNotFoundError", "PermissionError", "OSError")
    assert not outside.exists()
    for r in reports.values():
        assert "sandbox.weak" not in [n["id"] for n in r["notes"]]


def test_the_same_submission_under_the_fallback_sees_all_of_it(tmp_path, monkeypatch):
    """The control: without the OS sandbox the paths above are there to be seen, so the test
    above could fail; and each report says the sandbox was weak."""
    monkeypatch.setenv(osbox.SWITCH_VAR, "weak")
    seen, reports, outside = _grade_alice(tmp_path, monkeypatch)
    assert "alice.py" in seen["list class"] and "bob.py" in seen["list class"]
    assert "bob wrote this" in seen["read bob"]
    assert seen["read home"] == "the grader's own file"
    assert seen["exists out"] is True and seen["exists reference"] is True
    assert seen["open engine"] >= 0 and seen["open oracle"] >= 0
    for r in reports.values():
        note = next(n for n in r["notes"] if n["id"] == "sandbox.weak")
        assert f"{osbox.SWITCH_VAR}=weak" in note["evidence"]
        assert "--require-sandbox" in note["evidence"]
    outside.unlink(missing_ok=True)


@needs_bwrap
def test_no_network_and_no_other_processes(tmp_path, tmp_module):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    try:
        port = srv.getsockname()[1]
        path = tmp_module(observer({}, {}, {}, tmp_path / "x", os.getpid(), port))
        r = check(path, Options(limits=SHORT))
        assert r.error and r.error.kind == "exception", r.error
        seen = observed(r.error.message)
        rc, err = seen["connect loopback"]
        assert rc == -1 and err in (errno.ECONNREFUSED, errno.ENETUNREACH), seen
        rc, err = seen["connect outside"]
        assert rc == -1 and err == errno.ENETUNREACH, seen  # no route at all, not a slow one
        with pytest.raises(socket.timeout):
            srv.accept()  # nothing reached the test's listening socket
    finally:
        srv.close()
    # its own PID namespace: bwrap's init and the worker, never the checker
    assert seen["pids"] and max(seen["pids"]) < 10 and os.getpid() not in seen["pids"], seen
    assert seen["kill checker"] == [-1, errno.ESRCH], seen
    assert seen["uid"] in (65534, 0)  # nobody in its user namespace (0 only without one)


@needs_bwrap
def test_a_correct_submission_passes_in_the_sandbox_without_a_note(tmp_module):
    r = check(tmp_module(CORRECT), Options(limits=SHORT))
    assert r.verdict == "pass", r.error
    assert "sandbox.weak" not in [n.id for n in r.notes]


@needs_bwrap
def test_a_c_library_from_the_compile_cache_loads_in_the_sandbox(tmp_path, monkeypatch):
    """The build lives in the compile cache, which the worker does not see: the session
    hands it a copy in its own folder."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "rnn.c"
    src.write_text((ROOT / "reference" / "c" / "rnn.c").read_text())
    r = check(str(src), Options(limits=SHORT))
    assert r.verdict == "pass", r.error


@needs_bwrap
@pytest.mark.parametrize("code, kind, words", [
    ("import ctypes\nctypes.string_at(0)", "crash", "SIGSEGV"),
    ("import os\nos._exit(7)", "exit", "exit status 7"),
])
def test_how_the_worker_ended_comes_through_bwrap(tmp_module, code, kind, words):
    """bwrap exits 128 + N when the worker dies of signal N: read back as the signal."""
    r = check(tmp_module(code + "\n" + CORRECT), Options(limits=SHORT))
    assert r.error and r.error.kind == kind and words in r.error.message, r.error


# ---------------------------------------------------------------- nothing outlives its check

ESCAPE = r'''
import ctypes, os, platform, time
_libc = ctypes.CDLL(None, use_errno=True)

def _escapee():
    _libc.prctl(15, ctypes.c_char_p(NAME), 0, 0, 0)  # PR_SET_NAME: how the test finds it
    time.sleep(4)
    try:
        open(OUTSIDE, "w").write("still here")
    finally:
        os._exit(0)

if MODE == "double-fork":  # a daemon: fork, new session, fork again, the middle one exits
    if _libc.fork() == 0:
        _libc.setsid()
        if _libc.fork() == 0:
            _escapee()
        os._exit(0)
else:  # clone(CLONE_PARENT): a sibling of the worker, a child of whatever started it
    SYS_CLONE = {"x86_64": 56, "aarch64": 220}[platform.machine()]
    if _libc.syscall(SYS_CLONE, 0x00008000 | 17, 0, 0, 0, 0) == 0:  # CLONE_PARENT | SIGCHLD
        _escapee()
time.sleep(1.0)  # the test sees the escapee while the check runs
if THEN == "hangs":
    while True:
        pass
'''


def _named(name: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name", "status"]):
        if p.info["name"] == name and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


@needs_bwrap
@pytest.mark.parametrize("then", ["returns", "hangs"])
@pytest.mark.parametrize("mode", ["double-fork", "clone-parent"])
def test_no_process_of_a_submission_outlives_its_check(tmp_path, tmp_module, mode, then):
    if mode == "clone-parent" and platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("clone's syscall number is known here for x86_64 and aarch64 only")
    name = "esc" + uuid.uuid4().hex[:10]
    outside = tmp_path / "escaped.txt"
    src = (ESCAPE.replace("NAME", repr(name.encode())).replace("OUTSIDE", repr(str(outside)))
           .replace("MODE", repr(mode)).replace("THEN", repr(then)))
    path = tmp_module(src + CORRECT)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(
        r=check(path, Options(limits=Limits(call_timeout=2.0, load_timeout=3.0)))))
    t.start()
    seen: list[int] = []
    deadline = time.time() + 15
    while t.is_alive() and not seen and time.time() < deadline:
        seen = [p.pid for p in _named(name)]
        time.sleep(0.02)
    t.join(60)
    assert seen, "the escapee never ran: this test would prove nothing"
    r = result["r"]
    if then == "hangs":
        assert r.error and r.error.kind == "timeout", r.error
    else:
        assert r.verdict == "pass", r.error
    end = time.time() + 3
    while _named(name) and time.time() < end:
        time.sleep(0.05)
    assert not _named(name), f"{mode}: a process of the submission outlived its check"
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in seen)
    time.sleep(4.5)  # past the escapee's sleep: had it lived, it would have written by now
    assert not outside.exists()


# ---------------------------------------------------------------- the fallback and its note

def _fake_bwrap(folder: Path) -> Path:
    """A bwrap that fails as a kernel without unprivileged user namespaces makes it fail."""
    folder.mkdir(exist_ok=True)
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely "
                    "because the kernel does not allow non-privileged user namespaces.' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    return folder


def _path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with the tools the checker uses (true, gcc) but no bwrap."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for tool in ("true", "gcc", "cc"):
        found = shutil.which(tool)
        if found:
            (d / tool).symlink_to(found)
    return str(d)


def test_without_bwrap_the_check_runs_and_says_so(tmp_path, tmp_module, monkeypatch):
    monkeypatch.setenv("PATH", _path_without_bwrap(tmp_path))
    sb = osbox.current()
    assert not sb.strong and sb.why_weak == "bwrap not found"
    r = check(tmp_module(CORRECT), Options(limits=SHORT))
    assert r.verdict == "pass", r.error
    note = next(n for n in r.notes if n.id == "sandbox.weak")
    assert note.evidence.startswith("No OS sandbox (bwrap not found)")
    assert "apt-get install bubblewrap" in note.evidence


def test_with_user_namespaces_off_the_probe_is_quick_and_names_bwraps_message(
        tmp_path, tmp_module, monkeypatch):
    monkeypatch.setenv("PATH", f"{_fake_bwrap(tmp_path / 'fake')}{os.pathsep}"
                       f"{os.environ['PATH']}")
    t = time.perf_counter()
    sb = osbox.current()
    assert time.perf_counter() - t < 0.5  # three refusals, each at once
    assert not sb.strong
    assert sb.why_weak.startswith("user namespaces are off: bwrap: No permissions")
    t = time.perf_counter()
    assert osbox.current() is sb and time.perf_counter() - t < 0.01  # asked once a process
    r = check(tmp_module(CORRECT), Options(limits=SHORT))
    assert r.verdict == "pass", r.error
    assert [n.id for n in r.notes].count("sandbox.weak") == 1


def test_an_error_report_of_the_fallback_carries_the_note_too(tmp_path, monkeypatch):
    monkeypatch.setenv(osbox.SWITCH_VAR, "weak")
    src = tmp_path / "broken.py"
    src.write_text("def loss_and_grads(:\n")
    r = check(str(src), Options(limits=SHORT))
    assert r.verdict == "error" and "sandbox.weak" in [n.id for n in r.notes]


@needs_bwrap
def test_a_sandbox_bwrap_cannot_set_up_is_our_error_not_the_students(tmp_module, monkeypatch):
    sb = osbox.current()
    broken = osbox.Sandbox(sb.bwrap, (*sb.flags, "--no-such-bwrap-option"))
    monkeypatch.setattr(osbox, "current", lambda: broken)
    with pytest.raises(osbox.SandboxError, match="bwrap could not set up"):
        check(tmp_module(CORRECT), Options(limits=SHORT))


# ---------------------------------------------------------------- --require-sandbox

def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "bpttcheck", *args], capture_output=True,
                          text=True, timeout=180, env=env, check=False)


@pytest.mark.parametrize("how", ["flag", "spec"])
def test_require_sandbox_refuses_the_fallback_before_any_code_runs(tmp_path, how):
    env = {**os.environ, osbox.SWITCH_VAR: "weak"}
    marker = tmp_path / "ran"
    sub = tmp_path / "model.py"
    sub.write_text(f"open({str(marker)!r}, 'w').close()\n" + CORRECT)
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copy(sub, klass / "alice.py")
    args: list[str] = ["--require-sandbox"]
    if how == "spec":
        spec = tmp_path / "a.toml"
        spec.write_text("[limits]\nrequire_sandbox = true\n")
        args = ["--spec", str(spec)]
    run = _cli("run", str(sub), "--json", str(tmp_path / "r.json"), *args, env=env)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "OS sandbox is required" in run.stderr and f"{osbox.SWITCH_VAR}=weak" in run.stderr
    assert "Traceback" not in run.stderr
    graded = _cli("grade", str(klass), "--out", str(tmp_path / "out"), *args, env=env)
    assert graded.returncode == 4, graded.stdout + graded.stderr
    assert "No submission was run" in graded.stderr
    assert not marker.exists() and not (tmp_path / "r.json").exists()
    assert not (tmp_path / "out" / "grades.csv").exists()


@needs_bwrap
def test_require_sandbox_runs_where_the_sandbox_is(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != osbox.SWITCH_VAR}
    sub = tmp_path / "model.py"
    sub.write_text(CORRECT)
    run = _cli("run", str(sub), "--json", str(tmp_path / "r.json"), "--require-sandbox",
               env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "pass" and "sandbox.weak" not in [n["id"] for n in
                                                                  report["notes"]]


def test_require_sandbox_in_a_spec_is_a_boolean_and_other_limits_keys_stay_errors(tmp_path):
    from bpttcheck.errors import SpecError
    from bpttcheck.spec import load_spec
    spec = tmp_path / "a.toml"
    spec.write_text("[limits]\nrequire_sandbox = true\n")
    assert load_spec(str(spec)).limits.require_sandbox is True
    spec.write_text("[limits]\nrequire_sandbox = [1]\n")
    with pytest.raises(SpecError):
        load_spec(str(spec))
    spec.write_text("[limits]\nrequire_sandbx = true\n")
    with pytest.raises(SpecError):
        load_spec(str(spec))


# ---------------------------------------------------------------- not root

@needs_bwrap
@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root (to become nobody) and setpriv")
def test_as_nobody_the_sandbox_works_through_a_user_namespace():
    """An unprivileged user gets the same sandbox: bwrap makes its user namespace. Run with
    the system's Python (this test's Python may live where nobody can read, like /root)."""
    py = shutil.which("python3", path="/usr/bin:/bin")
    if py is None:
        pytest.skip("no system python3")
    tmp_path = Path(tempfile.mkdtemp(prefix="bpttcheck-nobody-"))  # pytest's is root's only
    try:
        _as_nobody(py, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _as_nobody(py: str, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    work = tmp_path / "work"
    work.mkdir()
    shutil.chown(work, "nobody")
    (tmp_path / "secret").write_text("x")
    inner = ("import os, json; print(json.dumps([os.getuid(), [p for p in os.listdir('/proc') "
             f"if p.isdigit()], os.path.exists({str(tmp_path / 'secret')!r})]))")
    script = f"""
import json, subprocess, sys
sys.path.insert(0, {str(ROOT)!r})
from bpttcheck.sandbox import osbox
sb = osbox.current()
cmd = osbox.worker_command(sb, [sys.executable, "-I", "-c", {inner!r}],
                           writable={str(work)!r}, chdir={str(work)!r})
out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
print(json.dumps([sb.strong, sb.flags, out.returncode, out.stdout, out.stderr]))
"""
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          py, "-I", "-c", script], capture_output=True, text=True, timeout=60,
                         check=False)
    if res.returncode != 0 and ("PermissionError" in res.stderr
                                or "No module named 'bpttcheck'" in res.stderr):
        pytest.skip("nobody cannot read this checkout")
    assert res.returncode == 0, res.stderr
    strong, flags, rc, out, err = json.loads(res.stdout)
    if not strong:
        pytest.skip("no unprivileged user namespaces on this kernel")
    assert "--unshare-user" in flags and rc == 0, err
    uid, pids, secret_seen = json.loads(out)
    assert uid == 65534 and len(pids) <= 3 and secret_seen is False


# ---------------------------------------------------------------- the mount plan

def _dist(folder: Path, name: str, entry_points: str) -> Path:
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(entry_points)
    return folder


def test_oracle_shows_only_while_a_third_party_architecture_is_installed(tmp_path):
    """A plugin architecture is imported in the worker and may build on bpttcheck.oracle;
    bpttcheck's own entry points (and other groups) keep it hidden. check/ is always hidden."""
    own = _dist(tmp_path / "own", "bpttcheck",
                "[bpttcheck.architectures]\nrnn = bpttcheck.oracle.rnn:ARCH\n\n"
                "[bpttcheck.adapters]\nmine = mine.adapter:Adapter\n")
    plugin = _dist(tmp_path / "plugin", "elman",
                   "[console_scripts]\nx = y:z\n\n[bpttcheck.architectures]\n"
                   "elman = bpttcheck_elman:ARCH\n")
    assert not osbox._third_party_architectures((str(own),))
    assert osbox._third_party_architectures((str(own), str(plugin)))
    sb = osbox.Sandbox("/usr/bin/bwrap", ("--unshare-all",))
    work = tmp_path / "work"
    work.mkdir()

    def masked(plugin_path) -> set[str]:
        cmd = osbox.worker_command(sb, ["python"], writable=str(work), chdir=str(work),
                                   plugin_path=plugin_path)
        return {cmd[i + 1] for i, a in enumerate(cmd) if a == "--tmpfs"}
    assert {str(PKG / "check"), str(PKG / "oracle")} <= masked(())
    with_plugin = masked((str(plugin),))
    assert str(PKG / "check") in with_plugin and str(PKG / "oracle") not in with_plugin


def test_a_hidden_folder_inside_a_bound_one_is_masked(tmp_path):
    """A PYTHONPATH folder holding the class folder shows the plugins, not the students."""
    sb = osbox.Sandbox("/usr/bin/bwrap", ("--unshare-all",))
    shared, work = tmp_path / "shared", tmp_path / "work"
    (shared / "class").mkdir(parents=True)
    work.mkdir()
    cmd = osbox.worker_command(sb, ["python"], writable=str(work), chdir=str(work),
                               plugin_path=(str(shared),), hide=(str(shared / "class"),))
    binds = [cmd[i + 2] for i, a in enumerate(cmd) if a == "--ro-bind"]
    tmpfs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--tmpfs"]
    assert str(shared) in binds and str(shared / "class") in tmpfs
    assert cmd.index(str(shared / "class")) > cmd.index(str(shared))  # the mask lies on top
    assert ["--bind", str(work), str(work)] == cmd[cmd.index("--bind"):cmd.index("--bind") + 3]
