"""C implementations through the ABI of bpttcheck.h: compiled with the system compiler,
called in the worker, judged in float32 against the float64 reference."""
import shutil

import pytest
from test_zoo import labelled_groups

from bpttcheck.check.engine import Options, check
from bpttcheck.oracle.common import Dims
from bpttcheck.sandbox.limits import Limits
from conftest import ROOT, expected

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                 reason="needs a C compiler (.ci/run installs gcc)")]
C_REF = ROOT / "reference" / "c"
C_ZOO = ROOT / "reference" / "bugs" / "c"
ABI_REFS = ["rnn.c", "rnn_f64.c", "lstm.c", "gru.c"]
BUGS = sorted(p for p in C_ZOO.glob("*.c")
              if not expected(p)[0].startswith(("error:", "sanitize", "pass")))
HOSTILE = sorted(p for p in C_ZOO.glob("*.c") if expected(p)[0].startswith("error:"))


@pytest.mark.parametrize("name", ABI_REFS)
def test_correct_c_passes(name):
    r = check(str(C_REF / name), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert r.style == "c" and r.dtype == ("float64" if "f64" in name else "float32")


@pytest.mark.parametrize("name", ["rnn.c", "lstm.c"])
def test_correct_float32_passes_at_karpathy_size(name):
    r = check(str(C_REF / name), Options(dims=Dims(T=25, X=65, H=100, Y=65)))
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert r.evaluations <= 8


@pytest.mark.parametrize("path", BUGS, ids=lambda p: p.name)
def test_planted_c_bug_is_named_first(path):
    r = check(str(path), Options())
    assert r.verdict == "fail"
    assert r.diagnoses and r.diagnoses[0].id in expected(path), \
        [(d.id, d.confidence) for d in r.diagnoses]
    assert set(expected(path)) <= {d.id for d in r.diagnoses}
    assert {g.name for g in r.groups if g.status == "fail"} == labelled_groups(path)


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.name)
def test_hostile_c_ends_in_a_named_error(path):
    kind = expected(path)[0].split(":", 1)[1]
    r = check(str(path), Options(limits=Limits(call_timeout=3.0, load_timeout=3.0)))
    assert r.verdict == "error" and r.error.kind == kind, r.error
    if kind == "compile":
        assert r.error.line and r.error.line.startswith("does_not_compile.c:")


def test_prebuilt_so_is_loaded_as_given(tmp_path):
    from bpttcheck.sandbox.compile import compile_c
    so = tmp_path / "model.so"
    shutil.copy(compile_c(str(C_REF / "gru.c")), so)
    r = check(str(so), Options())
    assert r.verdict == "pass" and r.arch == "gru"


def test_sanitize_names_the_out_of_bounds_line():
    from bpttcheck.sandbox.compile import sanitizer_runtime
    if sanitizer_runtime() is None:
        pytest.skip("no AddressSanitizer runtime")
    path = C_ZOO / "oob_last_step.c"
    plain = check(str(path), Options())
    assert plain.verdict == "pass"  # the read past the end goes unnoticed without it
    r = check(str(path), Options(sanitize=True))
    assert r.verdict == "error" and r.error.kind == "sanitizer"
    assert "heap-buffer-overflow" in r.error.message
    assert r.error.line.startswith("oob_last_step.c:79:")
    assert check(str(C_REF / "rnn.c"), Options(sanitize=True)).verdict == "pass"


GLOBALS_SPEC = """
[assignment]
arch = "rnn"
[c_globals]
forward = "forward"
backward = "backward"
"""


def test_globals_style_through_a_spec(tmp_path):
    spec = tmp_path / "a.toml"
    spec.write_text(GLOBALS_SPEC)
    from bpttcheck.spec import load_spec
    s = load_spec(str(spec))
    opts = Options(arch="rnn", adapter_options=s.adapter_options())
    r = check(str(C_REF / "rnn_globals.c"), opts)
    assert r.verdict == "pass" and r.style == "c-globals", r.error
    assert r.sizes == {"T": 6, "X": 5, "H": 7, "Y": 4}  # read from the #defines

    src = (C_REF / "rnn_globals.c").read_text()
    bug = src.replace("dWhh[i][j] += dh_raw[i] * h[t][j];", "dWhh[i][j] += dh_raw[i] * h[t + 1][j];")
    assert bug != src
    (tmp_path / "buggy.c").write_text(bug)
    opts = Options(arch="rnn", adapter_options=s.adapter_options())
    r = check(str(tmp_path / "buggy.c"), opts)
    assert r.verdict == "fail" and r.diagnoses[0].id == "rnn.dwhh-uses-current-h"


def test_sigfpe_is_a_crash(tmp_path):
    src = tmp_path / "fpe.c"
    src.write_text('#include "bpttcheck.h"\n'
                   "float bptt_rnn_loss_and_grads(const bptt_dims *d, const float *const *p,\n"
                   "    const int *x, const int *y, const float *h0, float *const *g, float *hl)\n"
                   "{ volatile int zero = 0; return (float)(d->T / zero); }\n")
    r = check(str(src), Options())
    assert r.verdict == "error" and r.error.kind == "crash" and "SIGFPE" in r.error.message


def test_a_compile_error_in_a_latin1_file_is_reported_not_a_crash(tmp_path):
    """gcc quotes the offending line as it is; the message must survive bytes that are not
    UTF-8 (a program with Latin-1 comments, as real C projects have)."""
    src = tmp_path / "model.c"
    src.write_bytes(b"/* r\xe9seau r\xe9current */\nint f(void) { return \xff; }\n")
    from bpttcheck.check.engine import Options, check
    r = check(str(src), Options())
    assert r.verdict == "error" and r.error.kind == "compile"
    assert "model.c:2" in r.error.message


def test_a_file_of_a_multi_file_c_project_says_how_to_build_the_project(tmp_path):
    src = tmp_path / "lstm.c"
    src.write_text('#include "bpttcheck.h"\nfloat helper(float x);\n'
                   "float bptt_rnn_loss_and_grads(const bptt_dims *d, const float *const *p,\n"
                   "    const int *x, const int *y, const float *h0, float *const *g, float *h)\n"
                   "{ return helper(1.0f); }\n")
    from bpttcheck.check.engine import Options, check
    r = check(str(src), Options())
    assert r.verdict == "error" and r.error.kind == "interface"
    assert "`helper`" in r.error.message and "another .c file" in r.error.message
    assert "-shared -fPIC" in r.error.message
