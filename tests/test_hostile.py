"""Hostile input (issue 6): code that hoards memory, floods stdout, forks, opens sockets, reaches
for bpttcheck's own reference, returns lies, or hard-codes the answer of the public seed; and
specs that are not specs. Every one ends in a named verdict, never a traceback from bpttcheck,
a hang or a process left behind. (Endless loops, sys.exit, os._exit, segfaults: test_engine's
HOSTILE table.)"""
from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import bpttcheck
from bpttcheck.check.engine import Options, check
from bpttcheck.errors import SpecError
from bpttcheck.sandbox.limits import Limits, cpu_seconds, preexec
from bpttcheck.sandbox.session import WorkerSession
from bpttcheck.spec import load_spec

slow = pytest.mark.slow
SHORT = Limits(call_timeout=3.0, load_timeout=3.0)
PKG = Path(bpttcheck.__file__).resolve().parent

# A correct functional RNN; PRE runs first in every call, RETURN is what the call returns.
CORRECT = '''
import numpy as np
BPTTCHECK = {"arch": "rnn", "column_vectors": False}
def loss_and_grads(p, xs, ys, h0):
    PRE
    Wxh, Whh, Why, bh, by = p["Wxh"], p["Whh"], p["Why"], p["bh"], p["by"]
    hs, ps, loss = {-1: h0}, {}, 0.0
    for t, x in enumerate(xs):
        hs[t] = np.tanh(Wxh[:, x] + Whh @ hs[t-1] + bh)
        z = Why @ hs[t] + by
        e = np.exp(z - z.max()); ps[t] = e / e.sum()
        loss -= np.log(ps[t][ys[t]])
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dhn = np.zeros_like(h0)
    for t in reversed(range(len(xs))):
        dy = ps[t].copy(); dy[ys[t]] -= 1
        g["Why"] += np.outer(dy, hs[t]); g["by"] += dy
        dh = Why.T @ dy + dhn
        dr = (1 - hs[t]**2) * dh
        g["bh"] += dr; g["Wxh"][:, xs[t]] += dr; g["Whh"] += np.outer(dr, hs[t-1])
        dhn = Whh.T @ dr
    return RETURN
'''


def model(pre: str = "pass", ret: str = "loss, g, hs[len(xs)-1]", head: str = "") -> str:
    pre = "\n    ".join(pre.strip().splitlines())
    return "import numpy as np\n" + head + CORRECT.replace("PRE", pre).replace("RETURN", ret)


def run(path: str, limits: Limits = SHORT, **kw):
    return check(path, Options(limits=limits, **kw))


def assert_error(r, kind: str, line: str | None = None):
    assert r.verdict == "error", (r.verdict, [c.message for c in r.checks if c.status == "fail"])
    assert r.error.kind == kind, r.error
    assert "Traceback" not in r.error.message, r.error
    assert not re.search(r'File "[^"]*bpttcheck/', r.error.message + r.error.output), r.error
    if line:
        assert r.error.line and re.match(line, r.error.line), r.error


def alive(pid: int) -> bool:
    """Running (a zombie whose parent has not reaped it yet is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def wait_for(path: Path, seconds: float = 5.0) -> str:
    end = time.time() + seconds
    while time.time() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


@pytest.fixture
def fallback(monkeypatch):
    """The fallback isolation, without the OS sandbox (sandbox/osbox.py): for tests of the
    second layer (the guard, the limits) whose code reports to the test through a file outside
    its staged folder, which the OS sandbox does not show. tests/test_os_sandbox.py tests the
    same attacks inside the sandbox."""
    monkeypatch.setenv("BPTTCHECK_SANDBOX", "weak")


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bpttcheck", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


# ---------------------------------------------------------------- limits and the process tree

def test_cpu_limit_is_derived_from_the_timeouts_and_kills_a_busy_loop():
    assert cpu_seconds(Limits(call_timeout=10, load_timeout=20)) >= 20 + 50 * 10
    t = time.time()
    p = subprocess.run([sys.executable, "-c", "while True: pass"],
                       preexec_fn=preexec(Limits(call_timeout=0.01, load_timeout=0.0)),
                       timeout=30, check=False)
    assert p.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    assert time.time() - t < 10


@slow
def test_worker_runs_in_its_own_session_with_limits(tmp_path, tmp_module, monkeypatch, fallback):
    monkeypatch.setenv("BPTTCHECK_SECRET", "not for the worker")
    out = tmp_path / "limits.json"
    path = tmp_module(model(head=f'''
import os, resource, json
R = resource
json.dump({{"sid": os.getsid(0), "pgid": os.getpgid(0), "pid": os.getpid(),
           "cpu": R.getrlimit(R.RLIMIT_CPU), "nofile": R.getrlimit(R.RLIMIT_NOFILE),
           "nproc": R.getrlimit(R.RLIMIT_NPROC), "as": R.getrlimit(R.RLIMIT_AS),
           "core": R.getrlimit(R.RLIMIT_CORE), "fsize": R.getrlimit(R.RLIMIT_FSIZE),
           "net": os.readlink("/proc/self/ns/net"),
           "secret": os.environ.get("BPTTCHECK_SECRET")}}, open({str(out)!r}, "w"))
'''))
    r = run(path)
    assert r.verdict == "pass", r.error
    got = json.loads(out.read_text())
    assert got["sid"] == got["pgid"] == got["pid"]  # session and group leader: killed as one
    assert got["cpu"][0] == cpu_seconds(SHORT)
    assert got["nofile"][0] <= 256
    assert got["as"][0] == SHORT.memory_mb << 20
    assert got["core"] == [0, 0] and got["fsize"][0] == 256 << 20
    assert got["secret"] is None
    if os.getuid() != 0:
        assert got["nproc"][0] != resource.RLIM_INFINITY
    if _can_unshare_net():
        assert got["net"] != os.readlink("/proc/self/ns/net")  # a network namespace of its own


def _can_unshare_net() -> bool:
    for args in (["unshare", "-n", "true"], ["unshare", "-Un", "true"]):
        try:
            if subprocess.run(args, capture_output=True, timeout=10, check=False).returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            pass
    return False


# The user's code forks through libc (past the audit hook) a child that records its pid,
# sleeps 60 s and then writes a file. SETSID: the child leaves the worker's process group and
# session first (double fork), so only the process-tree kill can find it.
FORK_VIA_LIBC = '''
import ctypes, os, time
if not os.path.exists(MARK):
    open(MARK, "w").close()
    libc = ctypes.CDLL(None)
    if libc.fork() == 0:
        if SETSID:
            libc.setsid()
            if libc.fork() != 0:
                os._exit(0)
        open(PIDFILE, "w").write(str(os.getpid()))
        time.sleep(60)
        open(SURVIVED, "w").write("still here")
        os._exit(0)
'''


@slow
@pytest.mark.parametrize("setsid", [False, True], ids=["in-group", "escaped-group"])
@pytest.mark.parametrize("then", ["returns", "hangs"])
def test_a_forked_child_does_not_outlive_the_check(tmp_path, tmp_module, setsid, then, fallback):
    pidfile, survived, mark = tmp_path / "child.pid", tmp_path / "survived", tmp_path / "mark"
    pre = (FORK_VIA_LIBC.replace("MARK", repr(str(mark))).replace("PIDFILE", repr(str(pidfile)))
           .replace("SURVIVED", repr(str(survived))).replace("SETSID", str(setsid)))
    if then == "hangs":  # once the child is there
        pre += f"\nwhile not os.path.exists({str(pidfile)!r}):\n    pass\nwhile True:\n    pass\n"
    r = run(tmp_module(model(pre=pre)), Limits(call_timeout=1.0, load_timeout=3.0))
    if then == "hangs":
        assert_error(r, "timeout")
    else:
        assert r.verdict == "pass", r.error
    pid = int(wait_for(pidfile))
    deadline = time.time() + 3
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid), f"the child {pid} outlived the check"
    assert not survived.exists()


# More ways to hang or leave (test_engine's HOSTILE has the plain loops and exits).
STUCK = {
    "sleep_in_c": ("import time\ntime.sleep(10**6)", "timeout"),
    "deadlock": ("import threading\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()",
                 "timeout"),
    "signals_ignored": (("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, "
                         "signal.SIGXCPU, signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\n"
                         "while True:\n    pass"), "timeout"),
    "recursion": ("def f(n):\n    return f(n + 1)\nf(0)", "exception"),
    "keyboard_interrupt": ("raise KeyboardInterrupt", "exception"),
    "abort": ("import os\nos.abort()", "crash"),
    "closes_its_pipes": ("import os\nos.closerange(3, 256)", "exit"),
    "stdin": ("input('your name? ')", "exception"),
}


@slow
@pytest.mark.parametrize("name", sorted(STUCK))
def test_more_ways_to_hang_or_leave_end_in_a_named_error(tmp_module, name):
    pre, kind = STUCK[name]
    t = time.time()
    r = run(tmp_module(model(pre=pre)), Limits(call_timeout=1.0, load_timeout=3.0))
    assert_error(r, kind)
    assert time.time() - t < 15


@slow
def test_a_thread_left_spinning_does_not_stop_the_check(tmp_module):
    head = "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()\n"
    r = run(tmp_module(model(head=head)))
    assert r.verdict == "pass", r.error


# ---------------------------------------------------------------- memory, output, encoding

@slow
@pytest.mark.parametrize("pre", [
    "big = np.ones(10 * 2**30 // 8)",  # 10 GB at once
    "hoard = []\nwhile True:\n    hoard.append(np.ones(2**27 // 8))",  # 128 MB at a time
    "b = bytearray(10 * 2**30)",
], ids=["numpy-10GB", "hoarding", "bytearray-10GB"])
def test_memory_hoarding_is_a_memory_error_within_seconds(tmp_module, pre):
    t = time.time()
    r = run(tmp_module(model(pre=pre)), Limits(call_timeout=20.0, load_timeout=5.0,
                                                memory_mb=1024))
    assert_error(r, "memory")
    assert time.time() - t < 15


@slow
def test_a_50MB_stdout_flood_finishes_quickly_and_is_capped(tmp_module):
    t = time.time()
    r = run(tmp_module(model(pre="print('x' * (50 << 20)); print('y' * 99, flush=True)\n"
                                 "raise ValueError('after the flood')")))
    assert_error(r, "exception")
    assert len(r.error.output) < 70_000
    assert time.time() - t < 20


@slow
def test_a_flood_of_small_prints_at_import_still_passes(tmp_module):
    t = time.time()
    r = run(tmp_module(model(head="for i in range(200_000):\n    print('spam ' * 50)\n")))
    assert r.verdict == "pass", r.error
    assert time.time() - t < 30


@slow
def test_latin1_source_without_a_coding_line_names_the_file(tmp_path):
    p = tmp_path / "modèle.py"
    p.write_bytes(model(head="# caf\xe9 cr\xe8me\n").encode("latin-1"))
    r = run(str(p))
    assert_error(r, "syntax")
    assert "modèle.py" in r.error.message and "UTF-8" in r.error.message


# ---------------------------------------------------------------- what the function returns

# what the function returns -> the verdict it must get: "error" (interface), "fail", or
# "pass" where a lie is ignored because only the plain numbers are read
RETURNS = {
    "complex": ("loss, {k: v.astype(complex) + 1j for k, v in g.items()}, hs[len(xs)-1]", "error"),
    "object": ("loss, {k: v.astype(object) for k, v in g.items()}, hs[len(xs)-1]", "error"),
    "strings": ("loss, {k: v.astype(str) for k, v in g.items()}, hs[len(xs)-1]", "error"),
    "bytes": ("loss, {k: v.tobytes() for k, v in g.items()}, hs[len(xs)-1]", "error"),
    "int": ("loss, {k: (v * 1000).astype(int) for k, v in g.items()}, hs[len(xs)-1]", "fail"),
    "bool": ("loss, {k: v > 0 for k, v in g.items()}, hs[len(xs)-1]", "error"),
    "nested_lists": ("loss, {k: v.tolist() for k, v in g.items()}, hs[len(xs)-1]", "pass"),
    "ragged_lists": ("loss, {k: [[1.0], [1.0, 2.0]] for k in g}, hs[len(xs)-1]", "error"),
    "loss_is_array": ("np.ones(3), g, hs[len(xs)-1]", "error"),
    "loss_is_string": ("'12.5', g, hs[len(xs)-1]", "error"),
    "loss_is_complex": ("complex(loss, 1), g, hs[len(xs)-1]", "error"),
    "loss_is_none": ("None, g, hs[len(xs)-1]", "error"),
    "wrong_shapes": ("loss, {k: v.T.copy() if v.ndim == 2 else np.append(v, 1) for k, v in g.items()}, hs[len(xs)-1]", "error"),
    "scalars": ("loss, {k: 0.5 for k in g}, hs[len(xs)-1]", "error"),
    "state_is_dict": ("loss, g, {'h': hs[len(xs)-1]}", "error"),
    "state_wrong_size": ("loss, g, np.zeros(99)", "error"),
    "grads_is_list": ("loss, list(g.values()), hs[len(xs)-1]", "error"),
    "four_values": ("loss, g, hs[len(xs)-1], 'extra'", "error"),
    "a_generator": ("(v for v in (loss, g, hs[len(xs)-1]))", "error"),
    "lying_dict": ("loss, Lying(g), hs[len(xs)-1]", "pass"),
    "array_subclass": ("loss, {k: v.view(Sneaky) for k, v in g.items()}, hs[len(xs)-1]", "pass"),
    "array_subclass_claims_right": ("loss, {k: liar(v) for k, v in g.items()}, hs[len(xs)-1]", "fail"),
    "array_like": ("loss, {k: ArrayLike(v) for k, v in g.items()}, hs[len(xs)-1]", "fail"),
    "float_like_loss": ("FloatLike(loss), g, hs[len(xs)-1]", "error"),
}
TRICKS = '''
class Lying(dict):
    """Says it holds every key; hands out zeros whatever is asked."""
    def __getitem__(self, k):
        return np.zeros(3)
    def __contains__(self, k):
        return True
    def get(self, k, d=None):
        return np.zeros(3)
class Sneaky(np.ndarray):
    """An ndarray subclass whose conversions lie: only its data may be read."""
    def __array__(self, *a, **k):
        return np.full(self.shape, 1e9)
    def __float__(self):
        return 1e9
    def __array_finalize__(self, obj):
        pass
class Liar(np.ndarray):
    """Zeros that claim, through every conversion hook, to be the right gradient."""
    truth = None
    def __array__(self, *a, **k):
        return self.truth
    def __float__(self):
        return float(self.truth.flat[0])
    def tolist(self):
        return self.truth.tolist()
def liar(v):
    z = np.zeros_like(v).view(Liar)
    z.truth = v
    return z
class ArrayLike:
    def __init__(self, v):
        self.v = v
    def __array__(self, dtype=None, copy=None):
        return np.full(self.v.shape, 7.0)
class FloatLike:
    def __init__(self, v):
        self.v = v
    def __float__(self):
        return 1e9
'''


@slow
@pytest.mark.parametrize("name", sorted(RETURNS))
def test_wrong_return_values_never_pass_and_never_crash_the_checker(tmp_module, name):
    ret, want = RETURNS[name]
    r = run(tmp_module(model(ret=ret, head=TRICKS)))
    assert r.verdict == want, (name, r.verdict, r.error)
    if want == "error":
        assert_error(r, "not-implemented" if name == "loss_is_none" else "interface")
    from bpttcheck import report_json
    json.loads(report_json.render(r))  # whatever came back was read as plain numbers


@slow
@pytest.mark.parametrize("value", ["np.nan", "np.inf"])
def test_nan_or_inf_gradients_fail_and_say_so(tmp_module, value):
    r = run(tmp_module(model(ret=f"loss, {{k: v + {value} for k, v in g.items()}}, hs[len(xs)-1]")))
    assert r.verdict == "fail"
    text = " ".join(c.message for c in r.checks if c.status == "fail")
    assert "NaN" in text, text


# The user's function evaluates a Python expression that hypothesis wrote to a file, so one
# worker serves every example.
VALUE = st.deferred(lambda: st.one_of(
    st.just("None"), st.booleans().map(str), st.integers(-10, 10).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: f"float({str(f)!r})"),
    st.text(max_size=4).map(repr),
    st.tuples(st.sampled_from(["float64", "float32", "int8", "complex64", "bool", "object", "U3",
                               "datetime64[s]", "V4"]),
              st.lists(st.integers(0, 6), max_size=3)).map(
        lambda t: f"np.zeros({tuple(t[1])!r}, dtype={t[0]!r})"),
    st.sampled_from(["p", "g", "loss", "hs[len(xs)-1]", "h0", "xs", "{k: v.T for k, v in g.items()}",
                     "{k: v[:1] for k, v in g.items()}", "{'W' + k: v for k, v in g.items()}"]),
    st.lists(VALUE, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.lists(VALUE, max_size=4).map(lambda xs: "(" + "".join(x + ", " for x in xs) + ")"),
    st.dictionaries(st.sampled_from(["Wxh", "Whh", "Why", "bh", "by", "dWxh", "x", "0"]), VALUE,
                    max_size=5).map(
        lambda d: "{" + ", ".join(f"{k!r}: {v}" for k, v in d.items()) + "}"),
))
RETURNED = st.one_of(VALUE, st.tuples(VALUE, VALUE, VALUE).map(lambda t: "(" + ", ".join(t) + ")"),
                     st.tuples(VALUE, VALUE).map(lambda t: "(" + ", ".join(t) + ")"))


@slow
def test_fuzzed_return_values_end_in_interface_errors_in_one_worker(tmp_path, fallback):
    from bpttcheck.check.cases import make_case
    from bpttcheck.errors import UserCodeError
    from bpttcheck.layout import Layout
    from bpttcheck.plugins import architectures
    expr = tmp_path / "expr.txt"
    src = tmp_path / "model.py"
    src.write_text(model(ret=f"eval(open({str(expr)!r}).read())"))
    case = make_case(architectures()["rnn"], bpttcheck.check.cases.DEFAULT_DIMS, 0)
    with WorkerSession(str(src), SHORT) as w:
        w.load("functional", {"arch": "rnn", "column_vectors": False})
        layout = Layout()

        @hsettings(deadline=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        @given(RETURNED)
        def one(value):
            expr.write_text(value)
            try:
                loss, grads, last, _ = w.call(case, layout)
            except UserCodeError as e:
                assert e.kind in ("interface", "not-implemented"), (value, e.kind, e.message)
                assert "Traceback" not in e.message
                return
            assert isinstance(loss, float)
            assert all(type(v) is np.ndarray and v.dtype == np.float64 for v in grads.values())
            assert all(v is None or (type(v) is np.ndarray and v.dtype == np.float64) for v in last)
        one()


@slow
@hsettings(max_examples=12, deadline=None, derandomize=True,  # a whole check each: a budget
           suppress_health_check=list(HealthCheck))
@given(RETURNED)
def test_fuzzed_return_values_through_the_whole_check(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("fuzz") / "model.py"
    path.write_text(model(ret=value))
    r = run(str(path))
    assert r.verdict in ("error", "fail") or value in ("(loss, g, hs[len(xs)-1])",), value
    if r.verdict == "error":
        assert r.error.kind in ("interface", "not-implemented"), (value, r.error)


# ---------------------------------------------------------------- the guard

@slow
@pytest.mark.parametrize("attempt, what", [
    ("os.fork()", "os.fork"),
    ("import subprocess; subprocess.run(['true'])", "subprocess.Popen"),
    ("os.system('true')", "os.system"),
    ("os.execv('/bin/true', ['true'])", "os.exec"),
    ("os.posix_spawn('/bin/true', ['true'], {})", "os.posix_spawn"),
    ("import multiprocessing; multiprocessing.Process(target=print).start()", "os.fork"),
    ("import pty; pty.fork()", "os.fork"),
])
def test_starting_a_process_is_forbidden_even_when_caught(tmp_module, attempt, what):
    pre = f"import os\ntry:\n    {attempt}\nexcept Exception:\n    pass"
    r = run(tmp_module(model(pre=pre)))
    assert_error(r, "forbidden", r"model\.py:\d+: ")
    assert what in r.error.message and "process" in r.error.message


@slow
def test_network_is_blocked(tmp_module):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        pre = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)"
               "\nexcept OSError:\n    pass")
        r = run(tmp_module(model(pre=pre)))
        assert_error(r, "forbidden", r"model\.py:\d+: ")
        assert f"127.0.0.1:{port}" in r.error.message
        assert "network access is blocked" in r.error.message
        with pytest.raises(socket.timeout):
            srv.accept()  # nothing got through
    finally:
        srv.close()


@slow
def test_network_is_cut_below_python_too(tmp_path, tmp_module, fallback):
    """libc's connect() is past any audit hook: the worker's network namespace stops it."""
    if not _can_unshare_net():
        pytest.skip("no network namespaces here (not root, no user namespaces)")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    out = tmp_path / "rc"
    head = f'''
import ctypes, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(2, 1, 0)
addr = struct.pack("=HH4s8x", 2, socket.htons({port}), socket.inet_aton("127.0.0.1"))
rc = libc.connect(fd, addr, len(addr))
open({str(out)!r}, "w").write(f"{{rc}} {{ctypes.get_errno()}}")
'''
    try:
        run(tmp_module(model(head=head)))
        rc, _errno = map(int, out.read_text().split())
        assert rc == -1, "libc connect() reached the checker's loopback"
        with pytest.raises(socket.timeout):
            srv.accept()
    finally:
        srv.close()


REFERENCE_ATTEMPTS = {
    "import_top": ("import bpttcheck.oracle.rnn as ref", "head", "bpttcheck.oracle.rnn"),
    "import_caught": ("try:\n    from bpttcheck.oracle import rnn\nexcept ImportError:\n    pass",
                      "pre", "bpttcheck.oracle"),
    "import_module": ("import importlib\ntry:\n    importlib.import_module('bpttcheck.oracle.lstm')\nexcept Exception:\n    pass",
                      "pre", "bpttcheck.oracle.lstm"),
    "package_attribute": ("import bpttcheck.errors\ntry:\n    bpttcheck.oracle.rnn.run\nexcept Exception:\n    pass",
                          "pre", "bpttcheck.oracle"),
    "plugins": ("from bpttcheck.plugins import architectures", "head", "bpttcheck.plugins"),
    "diagnose": ("import bpttcheck.check.diagnose", "head", "bpttcheck.check.diagnose"),
    "engine": ("import bpttcheck.check.engine", "head", "bpttcheck.check"),
    "check_room": ("from bpttcheck import check", "head", "bpttcheck.check"),
    "open_source": (f"open({str(PKG / 'oracle' / 'rnn.py')!r}).read()", "pre", "oracle"),
    "open_catalogue": (f"open({str(PKG / 'check' / 'catalogue.py')!r}, 'rb').read()", "head", "catalogue.py"),
    "os_open": (f"import os\nos.open({str(PKG / 'oracle' / 'lstm.py')!r}, os.O_RDONLY)", "head", "lstm.py"),
    "symlink": (f"import os\nos.symlink({str(PKG / 'oracle')!r}, 'o')\nopen('o/rnn.py').read()", "head", "o/rnn.py"),
    "linecache": (f"import linecache\nlinecache.getlines({str(PKG / 'oracle' / 'gru.py')!r})", "head", "gru.py"),
    "loader": (f"import importlib.util as u\ns = u.spec_from_file_location('r', {str(PKG / 'oracle' / 'rnn.py')!r})\nm = u.module_from_spec(s)\ns.loader.exec_module(m)", "head", "oracle/"),
}


@slow
@pytest.mark.parametrize("name", sorted(REFERENCE_ATTEMPTS))
def test_reaching_for_the_reference_is_forbidden(tmp_module, name, fallback):
    code, where, what = REFERENCE_ATTEMPTS[name]
    src = model(head=code + "\n") if where == "head" else model(pre=code)
    r = run(tmp_module(src))
    assert_error(r, "forbidden", r"model\.py:\d+: ")
    assert what in r.error.message and "bpttcheck" in r.error.message, r.error


@slow
def test_a_library_that_probes_for_a_tool_and_copes_is_not_punished(tmp_path, tmp_module, fallback):
    """Like matplotlib's font cache running fc-list: refused, handled, not the user's doing."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "probing.py").write_text(
        "import subprocess, socket\n"
        "def probe():\n"
        "    try:\n"
        "        return subprocess.check_output(['fc-list'])\n"
        "    except OSError:\n"
        "        pass\n"
        "    try:\n"
        "        socket.getaddrinfo('example.org', 80)\n"
        "    except OSError:\n"
        "        return None\n")
    head = f"import sys\nsys.path.append({str(lib)!r})\nimport probing\nFOUND = probing.probe()\n"
    r = run(tmp_module(model(head=head)))
    assert r.verdict == "pass", r.error


@slow
def test_other_processes_are_off_limits(tmp_module):
    r = run(tmp_module(model(pre="import os\ntry:\n    open(f'/proc/{os.getppid()}/environ').read()\nexcept OSError:\n    pass")))
    assert_error(r, "forbidden")
    assert "another process" in r.error.message
    r = run(tmp_module(model(pre="import os, signal\nos.kill(os.getppid(), 0)")))
    assert_error(r, "forbidden")
    assert "signal" in r.error.message


@slow
def test_the_reference_is_not_even_loaded_in_the_worker(tmp_path, tmp_module, fallback):
    out = tmp_path / "modules.json"
    pre = f"import sys, json\njson.dump(sorted(sys.modules), open({str(out)!r}, 'w'))"
    run(tmp_module(model(pre=pre)))
    loaded = json.loads(out.read_text())
    assert not [m for m in loaded if m.startswith(("bpttcheck.oracle.", "bpttcheck.check.diagnose"))]


@slow
def test_what_real_code_does_is_still_allowed(tmp_path, tmp_module):
    (tmp_path / "input.txt").write_text("hello")
    head = '''
import ctypes, faulthandler, threading, json, logging, inspect, os, sys
import numpy.polynomial, numpy.testing
libm = ctypes.CDLL("libm.so.6")
text = open("input.txt").read()
os.listdir(".")
logging.getLogger("x").warning("fine")
import bpttcheck.errors
'''
    pre = ("np.testing.assert_allclose(1.0, 1.0)\nnp.linalg.norm(p['Whh'])\n"
           "threading.Thread(target=lambda: None).start()\ninspect.stack()")
    r = run(tmp_module(model(head=head, pre=pre)))
    assert r.verdict == "pass", r.error


# ---------------------------------------------------------------- hidden cases for grading

RECORDER = model(pre="""
import hashlib, json
KEY = hashlib.sha256(b"".join(np.ascontiguousarray(p[k]).tobytes() for k in sorted(p))
                     + bytes(xs) + bytes(ys) + np.asarray(h0).tobytes()).hexdigest()""",
                 ret="record(KEY, loss, g, hs[len(xs)-1])",
                 head="""
import json
def record(key, loss, g, h):
    with open(TABLE, "a") as f:
        f.write(json.dumps([key, float(loss), {k: v.tolist() for k, v in g.items()}, h.tolist()]) + "\\n")
    return loss, g, h
""")
REPLAY = '''
import hashlib, json, os
import numpy as np
BPTTCHECK = {"arch": "rnn", "column_vectors": False}
ROWS = [json.loads(l) for l in open(os.path.join(os.path.dirname(__file__), "table.jsonl"))]
TABLE = {k: (l, g, h) for k, l, g, h in ROWS}
def loss_and_grads(p, xs, ys, h0):
    """Computes nothing: answers recorded from a correct run at seed 0 (the first one when
    asked something it never saw)."""
    key = hashlib.sha256(b"".join(np.ascontiguousarray(p[k]).tobytes() for k in sorted(p))
                         + bytes(xs) + bytes(ys) + np.asarray(h0).tobytes()).hexdigest()
    loss, g, h = TABLE.get(key, TABLE[ROWS[0][0]])
    return loss, {k: np.array(v) for k, v in g.items()}, np.array(h)
'''


def test_secret_sets_the_seed_unless_one_is_given(monkeypatch):
    from bpttcheck.settings import settings
    monkeypatch.delenv("BPTTCHECK_SECRET", raising=False)
    assert settings().opts.seed == 0 and settings().opts.secret is None
    monkeypatch.setenv("BPTTCHECK_SECRET", "")
    assert settings().opts.seed == 0 and settings().opts.secret is None
    monkeypatch.setenv("BPTTCHECK_SECRET", "s3cret")
    assert settings().opts.secret == "s3cret"  # the engine derives each submission's seed
    monkeypatch.setenv("BPTTCHECK_SECRET", "s3cret")
    opts = settings(seed=5).opts
    assert opts.seed == 5 and opts.secret is None


@slow
def test_hard_coded_seed0_answers_pass_in_public_and_fail_with_the_secret(tmp_path, fallback):
    table = tmp_path / "table.jsonl"
    rec = tmp_path / "rec" / "recorder.py"
    rec.parent.mkdir()
    rec.write_text(RECORDER.replace("TABLE", repr(str(table))))
    assert check(str(rec)).verdict == "pass"  # seed 0, default sizes: the public case
    cheat_dir = tmp_path / "cheat"
    cheat_dir.mkdir()
    (cheat_dir / "table.jsonl").write_text(table.read_text())
    cheat = cheat_dir / "cheat.py"
    cheat.write_text(REPLAY)
    env = {k: v for k, v in os.environ.items() if k != "BPTTCHECK_SECRET"}
    public = _cli("run", str(cheat), "--json", str(tmp_path / "public.json"), env=env)
    assert public.returncode == 0, public.stdout + public.stderr  # expected: seed 0 is public
    secret = "correct horse battery staple"
    hidden = _cli("run", str(cheat), "--json", str(tmp_path / "hidden.json"),
                  "--junit", str(tmp_path / "hidden.xml"),
                  env={**env, "BPTTCHECK_SECRET": secret})
    assert hidden.returncode == 1, hidden.stdout + hidden.stderr
    data = json.loads((tmp_path / "hidden.json").read_text())
    assert data["verdict"] == "fail" and data["seed"] is None and data["case_tag"]
    from bpttcheck.secret import submission_seed
    seed = str(submission_seed(secret, cheat.read_bytes()))
    for text in ((tmp_path / "hidden.json").read_text(), (tmp_path / "hidden.xml").read_text(),
                 hidden.stdout, hidden.stderr):
        assert secret not in text and seed not in text


@slow
@pytest.mark.skipif(os.getuid() == 0, reason="root reads any process's memory anyway")
def test_with_a_secret_the_checker_environment_is_unreadable_even_through_libc(tmp_path):
    """Past the audit hook (libc's open), without namespaces: the checker is undumpable."""
    out = tmp_path / "got"
    path = tmp_path / "model.py"
    path.write_text(model(head=f'''
import ctypes, os
libc = ctypes.CDLL(None)
fd = libc.open(f"/proc/{{os.getppid()}}/environ".encode(), 0)
open({str(out)!r}, "w").write(str(fd))
'''))
    script = (f"import os; from bpttcheck import settings\n"
              f"from bpttcheck.check import engine\nfrom bpttcheck.sandbox import limits\n"
              f"limits.disable_namespaces()\n"  # no namespaces: the fallback
              f"settings.settings(); engine.check({str(path)!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120,
                   env={**os.environ, "BPTTCHECK_SECRET": "hidden", "BPTTCHECK_SANDBOX": "weak"})
    assert int(out.read_text()) == -1


# ---------------------------------------------------------------- through the command line

@slow
@pytest.mark.parametrize("pre, ret, kind", [
    ("import os\nos.fork()", None, "forbidden"),
    ("import bpttcheck.oracle.rnn", None, "forbidden"),
    ("x = np.ones(10 * 2**30 // 8)", None, "memory"),
    ("pass", "'12.5', g, hs[len(xs)-1]", "interface"),
], ids=["fork", "oracle", "memory", "interface"])
def test_cli_exits_3_and_still_writes_its_reports(tmp_path, tmp_module, pre, ret, kind):
    path = tmp_module(model(pre=pre, **({"ret": ret} if ret else {})))
    out = _cli("run", path, "--json", str(tmp_path / "out.json"), "--junit",
               str(tmp_path / "out.xml"), "--timeout", "3", "--memory-mb", "1024")
    assert out.returncode == 3, out.stdout + out.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["verdict"] == "error" and data["error"]["kind"] == kind
    assert "<error" in (tmp_path / "out.xml").read_text()
    assert "Traceback" not in out.stdout + out.stderr


@slow
@pytest.mark.skipif(not any(os.path.exists(os.path.join(d, "gcc"))
                            for d in os.environ.get("PATH", "").split(os.pathsep)),
                    reason="needs a C compiler")
def test_a_prebuilt_so_without_the_symbols_is_an_interface_error(tmp_path):
    c = tmp_path / "empty.c"
    c.write_text("int unrelated(int x) { return x + 1; }\n")
    so = tmp_path / "empty.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(c)], check=True)
    r = run(str(so))
    assert_error(r, "interface")
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"\x7fELF not really")
    r = run(str(garbage))
    assert r.verdict == "error" and r.error.kind in ("interface", "import"), r.error


# ---------------------------------------------------------------- specs

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(v), repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


SCALAR = st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
                   st.sampled_from(["rnn", "lstm", "gru", "hx", "xh", "ifgo", "float32", "T_S"]))
TOML_VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["T", "X", "H", "Y", "arch", "seed", "timeout", "x", "Wy"]),
                    inner, max_size=4)), max_leaves=12)
KEYS = ["assignment", "sizes", "layout", "names", "returns", "points", "limits", "c_globals",
        "arch", "seed", "T", "concat", "stacked", "gate_order", "file", "timeout", "memory_mb",
        "sizes_from", "default", "grad.*", "unknown"]
SPEC_DICT = st.dictionaries(st.sampled_from(KEYS), st.one_of(
    TOML_VALUE, st.dictionaries(st.sampled_from(KEYS), TOML_VALUE, max_size=5)), max_size=6)


@hsettings(deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SPEC_DICT)
def test_fuzzed_spec_tables_only_ever_raise_spec_errors(tmp_path, d):
    p = tmp_path / "spec.toml"
    p.write_text("\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in d.items()) + "\n")
    with contextlib.suppress(SpecError):
        load_spec(str(p))


@hsettings(deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.lists(st.sampled_from(['[assignment]', 'arch = "lstm"', "seed = 1e400",
                                           "[sizes]", "T = 0", "H = 99999999999999999999",
                                           "[[points]]", "[layout]", 'gate_order = "zz"',
                                           "stacked = true", "timeout = nan", "x = [1, [2]]",
                                           "[c_globals]", "sizes_from = {Q = 1}", "= 1", "[",
                                           "\x00", "\ufeff", "points = {a = -1}"]),
                          max_size=8).map("\n".join)))
def test_fuzzed_spec_text_only_ever_raises_spec_errors(tmp_path, text):
    p = tmp_path / "spec.toml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    with contextlib.suppress(SpecError):
        load_spec(str(p))


@pytest.mark.parametrize("text", ["x = " + "[" * 5000 + "]" * 5000,
                                  "[assignment]\nseed = " + "9" * 5000],
                         ids=["deep-nesting", "5000-digit-int"])
def test_pathological_toml_is_a_spec_error(tmp_path, text):
    p = tmp_path / "spec.toml"
    p.write_text(text + "\n")
    with pytest.raises(SpecError):
        load_spec(str(p))


@pytest.mark.parametrize("where", ["spec", "flag"])
def test_a_negative_seed_is_a_usage_error(tmp_path, where):
    from bpttcheck.errors import UsageError
    from bpttcheck.settings import settings
    p = tmp_path / "spec.toml"
    p.write_text("[assignment]\nseed = -3\n")
    with pytest.raises(UsageError, match="seed"):
        settings(spec=str(p)) if where == "spec" else settings(seed=-3)
