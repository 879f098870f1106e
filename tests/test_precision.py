"""Judged at the precision the code computes in (issue 12 §5), read off its loss: float32
globals, float32 casts inside a float64 function, float32 gradients of a float64 computation;
and the new diagnoses of §6 on the wild subjects written in real styles."""
from pathlib import Path

import numpy as np
import pytest

from bpttcheck.check.engine import Options, check
from bpttcheck.check.numerics import arithmetic_dtype, oracle_rtol
from conftest import REF, ROOT, failed, write

pytestmark = pytest.mark.slow

WILD = ROOT / "reference" / "wild"
RNN = (REF / "rnn_functional.py").read_text()




def note(r, nid="precision"):
    return next((n for n in r.notes if n.id == nid), None)


# the hidden states kept in a float32 buffer, parameters float64 (the wild subject, inlined so
# bugs can be planted in it)
STATE32 = (RNN.replace("xs, hs, ps = [], [np.array(state, dtype=float)], []",
                       "xs, hs, ps = [], [np.array(state, dtype=np.float32)], []")
              .replace("        hs.append(h)\n", "        hs.append(h.astype(np.float32))\n"))
# float64 arithmetic throughout, hprev rounded to float32 on entry
ENTRY32 = RNN.replace("xs, hs, ps = [], [np.array(state, dtype=float)], []",
                      "xs, hs, ps = [], [np.array(state, dtype=np.float32).astype(float)], []")
# float64 gradients handed back as float32
OUT32 = RNN.replace('grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}',
                    'grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}\n'
                    '    grads = {k: v.astype(np.float32) for k, v in grads.items()}')
DWHH_BUG = ("dWhh += np.outer(da, hs[t])", "dWhh += np.outer(da, hs[t + 1])")


def test_the_variants_really_differ():
    for src in (STATE32, ENTRY32, OUT32):
        assert src != RNN
    assert DWHH_BUG[0] in RNN


def test_judged_dtype_may_name_arithmetic_and_storage_apart():
    assert arithmetic_dtype("float64/float32") == np.float64
    assert arithmetic_dtype("float32") == np.float32
    wide = oracle_rtol("float64/float32", 6, 12) - oracle_rtol("float64", 6, 12)
    assert wide == pytest.approx(np.finfo(np.float32).eps)
    assert oracle_rtol("float64/float32", 6, 12) < oracle_rtol("float32", 6, 12) / 100


@pytest.mark.parametrize("name", ["rnn_karpathy_float32.py", "rnn_state_float32_cast.py"])
def test_float32_inside_passes_judged_at_float32(name):
    r = check(str(WILD / "variants" / name), Options())
    assert r.verdict == "pass", failed(r)
    assert r.dtype == "float32"
    assert note(r) is not None and "float32" in note(r).evidence
    assert note(r, "model.nonstandard") is None


def test_state_cast_note_says_float32_arithmetic(tmp_path):
    r = check(write(tmp_path, STATE32), Options())
    assert r.verdict == "pass", failed(r)
    assert "computes in float32" in note(r).evidence and "judged at float32" in note(r).evidence


def test_a_backward_bug_does_not_hide_behind_float32(tmp_path):
    # float32 explains the loss but not dWhh: the hypothesis is refused, the bug fails
    r = check(write(tmp_path, STATE32.replace(*DWHH_BUG)), Options())
    assert r.verdict == "fail"
    assert r.dtype == "float64"
    assert note(r) is None


def test_a_float64_bug_still_fails_at_float64(tmp_path):
    r = check(write(tmp_path, RNN.replace(*DWHH_BUG)), Options())
    assert r.verdict == "fail" and r.dtype == "float64" and note(r) is None
    assert r.diagnoses[0].id == "rnn.dwhh-uses-current-h"


def test_a_forward_error_larger_than_float32_round_off_fails(tmp_path):
    # a loss off by 1e-4 relative: no precision explains it
    src = RNN.replace("return float(loss), grads, hs[T]", "return float(loss) * (1 + 1e-4), grads, hs[T]")
    r = check(write(tmp_path, src), Options(require_standard=True))
    assert r.verdict == "fail" and "forward.loss" in failed(r)
    assert note(r) is None and r.dtype == "float64"


def test_state_rounded_on_entry_is_judged_at_float64(tmp_path):
    r = check(write(tmp_path, ENTRY32), Options())
    assert r.verdict == "pass", failed(r)
    assert r.dtype == "float64"
    ev = note(r).evidence
    assert "initial state rounded to float32" in ev and "float64 precision" in ev


def test_state_rounded_on_entry_with_a_bug_names_the_bug(tmp_path):
    r = check(write(tmp_path, ENTRY32.replace(*DWHH_BUG)), Options())
    assert r.verdict == "fail" and r.dtype == "float64"
    assert r.diagnoses[0].id == "rnn.dwhh-uses-current-h"


def test_float64_gradients_returned_as_float32_pass_judged_at_float64(tmp_path):
    r = check(write(tmp_path, OUT32), Options())
    assert r.verdict == "pass", failed(r)
    assert r.dtype == "float64"
    assert "computes in float64" in note(r).evidence


def test_casting_to_float32_buys_no_float32_tolerance(tmp_path):
    # gradients 2e-5 off (say, finite differences) cast to float32: float32's tolerance
    # (~1e-4 here) would pass them; the float64-exact loss says they are judged at float64
    src = OUT32.replace("grads = {k: v.astype(np.float32)",
                        "grads = {k: (v * (1 + 2e-5)).astype(np.float32)")
    r = check(write(tmp_path, src), Options())
    assert r.verdict == "fail"
    assert r.dtype == "float64"
    assert {f"grad.{k}" for k in ("Wxh", "Whh", "Why", "bh", "by")} <= set(failed(r))


# ---------------------------------------------------------------- §6: the new diagnoses


def _expect(path):
    head = path.read_text().splitlines()[0]
    return head.split(":", 1)[1].strip()


@pytest.mark.parametrize("path", sorted((WILD / "bugs").glob("*.py")), ids=lambda p: p.stem)
def test_wild_bug_named_first(path):
    r = check(str(path), Options())
    assert r.verdict == "fail", r.error
    assert r.diagnoses and r.diagnoses[0].id == _expect(path), [(d.id, d.confidence) for d in r.diagnoses]


def test_mean_over_classes_self_consistent_still_fails_in_standard_mode():
    r = check(str(WILD / "bugs" / "mean_over_classes_functional.py"), Options())
    assert "forward.loss" in failed(r)
    assert note(r, "model.nonstandard") is None and note(r, "loss.mean") is None
    d = r.diagnoses[0]
    assert d.exact and "both" in d.evidence


def test_params_modified_evidence_names_arrays_and_sizes():
    r = check(str(WILD / "bugs" / "params_modified_karpathy_adagrad.py"), Options())
    assert failed(r) == ["behaviour.inputs-unchanged"]
    d = r.diagnoses[0]
    assert d.id == "grad.params-modified" and d.confidence >= 0.95
    assert "Wxh (by up to" in d.evidence and "match the reference" in d.evidence
    assert "training loop" in d.fix or "update" in d.fix


def test_params_modified_is_not_blamed_on_correct_code():
    r = check(str(REF / "rnn_karpathy.py"), Options())
    assert r.verdict == "pass" and not r.diagnoses


def test_a_reported_low_precision_the_values_contradict_is_judged_at_float64():
    """User code can reach the worker's objects and make it report float16 for float64
    arrays (a wider tolerance for finite-difference gradients): values that float16 cannot
    hold refute the claim, and they are judged at float64."""
    import numpy as np

    from bpttcheck.check.probe import representable
    g64 = {"W": np.array([0.1, 0.2, 1 / 3])}
    assert not representable(g64, "float16") and not representable(g64, "float32")
    assert representable(g64, "float64")
    g32 = {"W": np.array([0.1, 0.2, 1 / 3], dtype=np.float32).astype(np.float64)}
    assert representable(g32, "float32") and representable(g32, "float64/float32")
    assert not representable(g32, "float16")
    g16 = {"W": np.array([0.1, np.inf, np.nan], dtype=np.float16).astype(np.float64)}
    assert representable(g16, "float16")


def test_a_forged_float16_claim_does_not_widen_the_tolerance(tmp_module):
    """Forward differences in float64 (error ~1e-7) with the adapter's dtype forged to
    float16 through a frame walk: judged at float64, they fail."""
    from bpttcheck.check.engine import Options, check
    src = (REF / "rnn_karpathy.py").read_text()
    forge = '''
import sys as _sys
def _forge():
    f = _sys._getframe()
    while f is not None:
        w = f.f_locals.get("w")
        if w is not None and hasattr(w, "adapter") and w.adapter is not None:
            type(w.adapter).grad_dtype = property(lambda s: "float16", lambda s, v: None)
            return
        f = f.f_back
_lossFun_orig = lossFun
def lossFun(inputs, targets, hprev):
    _forge()
    loss, dWxh, dWhh, dWhy, dbh, dby, h = _lossFun_orig(inputs, targets, hprev)
    return loss, dWxh * (1 + 1e-6), dWhh, dWhy, dbh, dby, h
'''
    assert "\nn, p = 0, 0" in src  # before the training loop
    p = tmp_module(src.replace("\nn, p = 0, 0", forge + "\nn, p = 0, 0", 1))
    (Path(p).parent / "input.txt").write_bytes((REF / "input.txt").read_bytes())
    r = check(p, Options(seed=0))
    assert r.dtype == "float64" and r.verdict == "fail", (r.dtype, r.verdict)
