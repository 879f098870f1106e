"""Unit styles beside the layer API (issue 12 §2): the deeplearning.ai step-by-step functions
(``dlai``) and the "Deep Learning from Scratch 2" time layers (``dlfs2``) map onto the layer
units. Every subject in reference/wild/dlai/ (step by step) and reference/wild/dlfs2/ gets the
verdict its label says, fails in the labelled groups (named as the user names them), and a
label id bpttcheck knows is the top diagnosis."""
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpttcheck.check import catalogue
from bpttcheck.check.engine import Options, check
from bpttcheck.report_terminal import render
from conftest import ROOT

pytestmark = pytest.mark.slow
WILD = ROOT / "reference" / "wild"
DLAI = sorted(p for p in (WILD / "dlai").glob("*.py")
              if "dinosaur" not in p.name and not p.name.startswith("bug_char_"))
DLFS2 = sorted((WILD / "dlfs2").glob("*.py"))


def _label(path: Path, key: str) -> str:
    m = re.search(rf"^# bpttcheck-{key}:\s*(.*)$", path.read_text(), re.MULTILINE)
    return m.group(1).strip() if m else ""


def _covered(label: str, failing: list[str]) -> bool:
    """A labelled group (``lstm_backward.dWf``, ``TimeLSTM.Wx``) among the failing groups'
    user names; a per-gate dlai key sits in a group ``lstm_backward.dWf,dWi,dWc,dWo[:, n_a:]``."""
    prefix, _, key = label.partition(".")
    for name in failing:
        p, _, keys = name.partition(".")
        if name == label or (p == prefix and key in keys.split("[")[0].split(",")):
            return True
    return False


@pytest.mark.parametrize("path", DLAI + DLFS2, ids=lambda p: p.name)
def test_wild_unit_style_subjects_get_their_labels(path):
    r = check(str(path), Options())
    style = _label(path, "style")
    assert r.style == style, (r.style, r.error)
    expect = _label(path, "expect").split(";")[0].split(",")[0].strip()
    assert r.verdict == ("pass" if expect == "pass" else "fail"), (
        [c.message for c in r.checks if c.status == "fail"], r.error)
    parts = dict(p.split("=") for p in _label(path, "parts").split())
    want = {fam: "pass" if v == "pass" else "fail" for fam, v in parts.items()}
    assert r.parts == (want or {_label(path, "arch"): r.verdict}), r.parts
    if expect == "pass":
        return
    failing = [g.user_name for g in r.groups if g.status == "fail"]
    labelled = [g.strip() for g in _label(path, "groups").split(",")]
    assert all(_covered(g, failing) for g in labelled), (labelled, failing)
    if expect in catalogue.BY_ID:  # an id bpttcheck knows is named first
        assert r.diagnoses[0].id == expect, [(d.id, d.evidence) for d in r.diagnoses]


def test_reports_speak_the_users_names():
    r = check(str(WILD / "dlai" / "bug_lstm_dwf_overwritten.py"), Options())
    out = render(r)
    assert "lstm_backward.dWf" in out and "lstm_backward.dWh" not in out
    assert "lstm_backward.dWf[:, n_a:] equals the contribution of step" in r.diagnoses[0].evidence
    assert {g.name for g in r.groups} >= {"lstm.dWx", "rnn_step.dWh"}  # canonical in JSON
    msg = next(c.message for c in r.checks if c.name == "grad.lstm.dWx")
    assert "wrong in lstm_backward.dWf[:, n_a:]" in msg
    r = check(str(WILD / "dlfs2" / "bug_rnn_dwh_uses_h_next.py"), Options())
    out = render(r)
    assert "TimeRNN.Wh" in out and "RNN.Wh" in out
    assert "DIAGNOSIS rnn.dwhh-uses-current-h (confidence 0.99; RNN.Wh, TimeRNN.Wh)" in out
    assert r.dtype == "float32"  # the book's buffers: float32 tolerances apply


def test_the_books_gru_is_checked_as_the_canonical_gru():
    """The book's z is 1 - the canonical z: the adapter flips the z blocks both ways, so a
    correct book GRU matches the reference, and the z blocks are named as the book's."""
    r = check(str(WILD / "dlfs2" / "time_layers.py"), Options())
    assert r.parts == {"rnn": "pass", "lstm": "pass", "gru": "pass"}
    assert {g.user_name for g in r.groups} >= {"GRU.Wx", "TimeGRU.dh", "TimeGRU.Wh"}
    r = check(str(WILD / "dlfs2" / "time_gru_attrs.py"), Options())  # self.dWx, not grads
    assert r.verdict == "pass" and r.parts == {"gru": "pass"}


def test_the_layer_api_and_the_char_model_are_not_claimed():
    r = check(str(ROOT / "reference" / "layers" / "rnn_layers.py"), Options())
    assert r.style == "layers" and r.verdict == "pass"
    # Dinosaur Island: rnn_forward(X, Y, a0, parameters, vocab_size) is another style
    r = check(str(WILD / "dlai" / "dinosaur_char_rnn.py"), Options())
    assert r.style not in ("dlai", "layers")


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(i=st.sampled_from([WILD / "dlai" / "rnn_lstm_step_by_step.py",
                          WILD / "dlfs2" / "time_layers.py"]),
       seed=st.integers(0, 2**31 - 1))
def test_correct_unit_style_files_pass_at_any_seed(i, seed):
    r = check(str(i), Options(seed=seed))
    assert r.verdict == "pass", (i.name, seed, [c.message for c in r.checks
                                                if c.status == "fail"])
