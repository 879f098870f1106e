"""Issue 13: the guard judges a path where the kernel would take it (from a dir_fd, an opener,
/proc/self/fd, a changed folder), and each refusal reaches the checker the moment it happens,
on a channel user code cannot erase. Every route is tried by a model that is otherwise
correct and that catches the refusal; a correct control next to each family still passes."""
from __future__ import annotations

import time

import pytest
from test_hostile import PKG, assert_error, model, run

slow = pytest.mark.slow
SECRET = str(PKG / "oracle" / "rnn.py")  # any file of the reference will do

# Each route reads the reference's source, catching the refusal as a cheater would; the
# marker file is written only if something was read (os.fwalk swallows the refusals itself).
ROUTES = {
    "dir_fd": "fd = os.open(PKG, os.O_RDONLY)\n"
              "got = os.read(os.open('oracle/rnn.py', os.O_RDONLY, dir_fd=fd), 10**6)",
    "dir_fd_o_path": "fd = os.open(PKG, os.O_PATH)\n"
                     "got = os.read(os.open('check/engine.py', os.O_RDONLY, dir_fd=fd), 10**6)",
    "dir_fd_dotdot": "fd = os.open(PKG + '/sandbox', os.O_RDONLY)\n"
                     "got = os.read(os.open('../oracle/rnn.py', os.O_RDONLY, dir_fd=fd), 10**6)",
    "dir_fd_via_symlink": "os.symlink(PKG, 'pkg')\nfd = os.open('pkg', os.O_RDONLY)\n"
                          "got = os.read(os.open('oracle/lstm.py', os.O_RDONLY, dir_fd=fd), 10**6)",
    "opener": "fd = os.open(PKG, os.O_RDONLY)\n"
              "got = open('oracle/gru.py', opener=lambda p, f: os.open(p, f, dir_fd=fd)).read()",
    "proc_self_fd": "fd = os.open(PKG, os.O_RDONLY)\n"
                    "got = open(f'/proc/self/fd/{fd}/oracle/rnn.py').read()",
    "proc_thread_self_fd": "fd = os.open(PKG, os.O_RDONLY)\n"
                           "got = open(f'/proc/thread-self/fd/{fd}/check/catalogue.py').read()",
    "chdir_then_relative": "os.chdir(PKG)\ngot = open('oracle/rnn.py').read()",
    "chdir_into": "os.chdir(PKG + '/oracle')\ngot = open('rnn.py').read()",
    "fchdir_then_relative": "fd = os.open(PKG, os.O_RDONLY)\nos.fchdir(fd)\n"
                            "got = open('check/engine.py').read()",
    "fwalk": "got = ''\nfor root, dirs, files, rfd in os.fwalk(PKG):\n"
             "    for f in files:\n"
             "        if f.endswith('.py') and 'oracle' in root:\n"
             "            got += os.read(os.open(f, os.O_RDONLY, dir_fd=rfd), 10**6).decode()",
    "listdir_secret": "got = os.listdir(PKG + '/check')",
    # a folder descriptor got past the hook (libc's open): what the guard sees of it still counts
    "libc_fd_listdir": "fd = LIBC.open(PKG.encode() + b'/oracle', os.O_RDONLY | os.O_DIRECTORY)\n"
                       "got = os.listdir(fd)",
    "libc_fd_scandir": "fd = LIBC.open(PKG.encode() + b'/oracle', os.O_RDONLY | os.O_DIRECTORY)\n"
                       "got = [e.name for e in os.scandir(fd)]",
    "libc_fd_relative": "fd = LIBC.open(PKG.encode() + b'/oracle', os.O_RDONLY | os.O_DIRECTORY)\n"
                        "got = os.read(os.open('rnn.py', os.O_RDONLY, dir_fd=fd), 10**6)",
    "libc_fd_file": "fd = LIBC.open(PKG.encode() + b'/oracle/rnn.py', os.O_RDONLY)\n"
                    "got = open(fd).read()",
    "proc_parent_via_dir_fd": "fd = os.open('/proc', os.O_RDONLY)\n"
                              "got = os.read(os.open(f'{os.getppid()}/environ', os.O_RDONLY, "
                              "dir_fd=fd), 10**6)",
    "pidfd_signal": "import signal\n"
                    "signal.pidfd_send_signal(os.pidfd_open(os.getppid()), 0)\ngot = 'signalled'",
}
HEAD = "import ctypes, os\nLIBC = ctypes.CDLL(None)\nPKG = {pkg!r}\n"


@pytest.fixture(autouse=True)
def _second_layer(monkeypatch):
    """These are the guard's tests (the second layer): they run without the OS sandbox, which
    would stop every route before the guard sees it (tests/test_os_sandbox.py tests that)."""
    monkeypatch.setenv("BPTTCHECK_SANDBOX", "weak")


def _attempt(route: str, marker) -> str:
    body = "\n    ".join(ROUTES[route].splitlines())
    return (f"try:\n    {body}\n    if got:\n"
            f"        open({str(marker)!r}, 'w').write(str(len(got)))\n"
            "except (OSError, PermissionError):\n    pass\n")


@slow
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_to_the_reference_is_refused(tmp_path, tmp_module, route):
    marker = tmp_path / "got"
    head = HEAD.format(pkg=str(PKG)) + _attempt(route, marker)
    r = run(tmp_module(model(head=head)))
    assert_error(r, "forbidden", r"model\.py:\d+: ")
    assert "bpttcheck" in r.error.message or "process" in r.error.message, r.error
    assert not marker.exists(), f"{route} read {marker.read_text()} bytes"


LEGIT = """
import os
here = os.open(".", os.O_RDONLY)
text = open("input.txt", opener=lambda p, f: os.open(p, f, dir_fd=here)).read()
assert text == "hello", text
assert "input.txt" in os.listdir(here) and any(e.name == "data" for e in os.scandir(here))
os.chdir("data")
assert open("more.txt").read() == "more"
os.fchdir(here)
assert [f for _, _, f, _ in os.fwalk(".")]
pkg = os.open({pkg!r}, os.O_RDONLY)  # bpttcheck's package itself is no secret
os.read(os.open("errors.py", os.O_RDONLY, dir_fd=pkg), 100)
os.stat("input.txt", dir_fd=here)
"""


@slow
def test_folder_descriptors_on_the_users_own_files_still_work(tmp_path, tmp_module):
    (tmp_path / "input.txt").write_text("hello")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "more.txt").write_text("more")
    r = run(tmp_module(model(head=LEGIT.format(pkg=str(PKG)))))
    assert r.verdict == "pass", r.error


# ---------------------------------------------------------------- the refusal channel

TRIP = "try:\n    os.fork()\nexcept OSError:\n    pass\n"
# the channel is the highest-numbered pipe the worker may only write to (see session.py)
FIND = ("import fcntl, stat\n"
        "def _wronly_pipes():\n"
        "    out = []\n"
        "    for fd in range(3, 256):\n"
        "        try:\n"
        "            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)\n"
        "        except OSError:\n"
        "            continue\n"
        "        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:\n"
        "            out.append(fd)\n"
        "    return out\n"
        "CHANNEL = max(_wronly_pipes())\n")
CLEAR = "import sys\nsys.modules['bpttcheck.sandbox.guard']._attempts.clear()\n"
CLOSE = "os.close(CHANNEL)\n"
OVERWRITE = "os.dup2(os.open(os.devnull, os.O_WRONLY), CHANNEL)\n"
KEEP_THEN_OVERWRITE = "KEPT = os.dup(CHANNEL)\n" + OVERWRITE

TAMPERING = {
    "trip_then_clear_list": TRIP + CLEAR,
    "trip_then_close": TRIP + CLEAR + CLOSE,
    "trip_then_overwrite": TRIP + CLEAR + OVERWRITE,
    "close_without_tripping": CLOSE,
    "overwrite_without_tripping": OVERWRITE,
    "close_then_trip": CLOSE + TRIP + CLEAR,
    "keep_a_copy_overwrite_then_trip": KEEP_THEN_OVERWRITE + TRIP + CLEAR,
    # a read end of the channel (through /proc/self/fd) would take the record off the pipe
    "read_end_then_trip_and_read_back":
        "try:\n    R = os.open(f'/proc/self/fd/{CHANNEL}', os.O_RDONLY | os.O_NONBLOCK)\n"
        "except OSError:\n    R = None\n" + TRIP + CLEAR +
        "if R is not None:\n    os.read(R, 65536)\n",
    "stolen_channel_replaced_by_a_file_then_trip":
        "os.close(CHANNEL)\nos.open(os.devnull, os.O_WRONLY)\n" + TRIP + CLEAR,
}


@slow
@pytest.mark.parametrize("name", sorted(TAMPERING))
@pytest.mark.parametrize("where", ["head", "pre"])
def test_tampering_with_the_refusals_still_ends_forbidden(tmp_module, name, where):
    code = "import os\n" + FIND + TAMPERING[name]
    src = model(head=code) if where == "head" else model(pre=code)
    r = run(tmp_module(src))
    assert_error(r, "forbidden")
    if "trip" in name:
        assert any(w in r.error.message for w in ("os.fork", "file descriptor", "channel")), \
            r.error
    else:
        assert "closed or replaced a file descriptor bpttcheck uses" in r.error.message


@slow
def test_writing_to_the_channel_is_a_protocol_error(tmp_module):
    r = run(tmp_module(model(pre="import os\n" + FIND + "os.write(CHANNEL, b'all fine\\n')")))
    assert_error(r, "protocol")
    assert "channel for refused operations" in r.error.message


@slow
def test_a_refusal_ends_the_check_at_once_not_at_the_timeout(tmp_module):
    """Trip, swallow the refusal, then spin: the checker stops the worker as the record
    arrives instead of waiting out the 20 s call timeout."""
    from bpttcheck.sandbox.limits import Limits
    t = time.monotonic()
    r = run(tmp_module(model(pre="import os\n" + TRIP + CLEAR + "while True:\n    pass")),
            Limits(call_timeout=20.0, load_timeout=20.0))
    assert_error(r, "forbidden", r"model\.py:\d+: ")
    assert "os.fork" in r.error.message
    assert time.monotonic() - t < 10


@slow
def test_a_correct_model_with_the_channel_in_place_passes(tmp_module):
    r = run(tmp_module(model(pre="import os\n" + FIND + "assert CHANNEL > 2")))
    assert r.verdict == "pass", r.error
