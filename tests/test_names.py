"""The student's own names (issue 14, item 6): one name per canonical group for a layout
(Layout.group_name), shown by every report; [points] keys in those names; fix snippets filled
with them; a gate-order fix that says which slices to swap."""
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpttcheck import (
    report_gradescope,
    report_html,
    report_json,
    report_junit,
    report_terminal,
    scoring,
)
from bpttcheck.archmeta import META, Dims
from bpttcheck.check import catalogue
from bpttcheck.check.engine import Options, check
from bpttcheck.errors import SpecError
from bpttcheck.layout import GATE_WORDS, Layout
from bpttcheck.spec import load_spec
from conftest import ROOT, ZOO

NAMED = Path(__file__).resolve().parent / "namedmodels"
LSTM = META["lstm"]


# ------------------------------------------------------------------ the vocabulary


@given(order=st.permutations("fiog"), H=st.integers(1, 5), X=st.integers(1, 4),
       transposed=st.booleans(), column=st.booleans(), names=st.sampled_from([("W", "b"),
                                                                               ("Wg", "bias")]))
def test_group_name_and_code_name_point_at_the_rows_the_gradient_is_read_from(
        order, H, X, transposed, column, names):
    """The rows (columns) a stacked group's name gives, and its code slice evaluated with the
    user's arrays, hold exactly what grads_from_user reads as that canonical group."""
    lay = Layout(stacked="".join(order), transposed=transposed, column=column,
                 stacked_names=names)
    Y = 3
    W = np.arange(4 * H * (H + X), dtype=float).reshape(4 * H, H + X) + 1
    b = -np.arange(4 * H, dtype=float) - 1
    user = {names[0]: W.T.copy() if transposed else W,
            names[1]: b.reshape(-1, 1) if column else b,
            "Wy": np.ones((H, Y)) if transposed else np.ones((Y, H)), "by": np.zeros(Y)}
    canon = lay.grads_from_user(LSTM, user, LSTM.shapes(Dims(T=1, X=X, H=H, Y=Y)), H)
    for g in "figo":
        for k in (f"W{g}", f"b{g}"):
            shown = lay.group_name(k, H)
            assert shown.endswith(f"({GATE_WORDS[g]})")
            lo, hi = map(int, re.search(r"(\d+):(\d+)", shown).groups())
            assert hi - lo == H
            arr = user[names[k[0] == "b"]]
            if k[0] == "W":
                assert shown.startswith(f"{names[0]} {'columns' if transposed else 'rows'} ")
                part = arr[:, lo:hi].T if transposed else arr[lo:hi]
            else:
                assert shown.startswith(f"{names[1]}[")
                part = arr[lo:hi].reshape(-1)
            assert np.array_equal(part, canon[k])
            code = lay.code_name(k, grad=True)  # "dW[H:2*H]": the user's gradient, sliced
            got = eval(code, {"H": H, "d" + names[0]: user[names[0]],
                              "d" + names[1]: user[names[1]]})
            got = got.T if transposed and k[0] == "W" else got
            assert np.array_equal(got.reshape(canon[k].shape), canon[k])


def test_separate_arrays_keep_their_own_names_and_split_halves_are_named_together():
    lay = Layout(names={"Wf": "W_f", "Wy": "W_v"})
    assert lay.group_name("Wf", 4) == "W_f" and lay.group_name("Wi", 4) == "Wi"
    assert lay.code_name("Wy", grad=True) == "dW_v"
    split = Layout(split=True, names={"Whf": "U_f", "Wxf": "W_f"})
    assert split.group_name("Wf", 4) == "U_f and W_f"
    assert split.group_name("bf", 4) == "bf"


def test_groups_named_is_the_inverse_of_the_names_a_spec_can_use():
    lay = Layout(stacked="ifog", names={"Wy": "W_vocab"})
    params = LSTM.param_names
    assert lay.groups_named("W", params) == ["Wi", "Wf", "Wo", "Wg"]
    for g in "figo":
        word = GATE_WORDS[g].split()[0]
        assert lay.groups_named(f"W[{word}]", params) == [f"W{g}"]
        assert lay.groups_named(f"b[{g}]", params) == [f"b{g}"]
    assert lay.groups_named("W[c]", params) == ["Wg"]  # the candidate's other letter
    assert lay.groups_named("W_vocab", params) == ["Wy"]
    for nothing in ("Wf", "W[x]", "Wy", "W_vocab[f]", "U"):
        assert lay.groups_named(nothing, params) == [], nothing
    assert Layout(split=True).groups_named("Whf", params) == []  # half a group is no group


# ------------------------------------------------------------------ every report


@pytest.fixture(scope="module")
def backward_order():
    return check(str(NAMED / "lstm_stacked_cs231n_backward_order.py"), Options(views=True))


@pytest.fixture(scope="module")
def separate_arrays():
    return check(str(ZOO / "lstm_state_offset.py"), Options(views=True))


def _outputs(r) -> dict[str, str]:
    """Each report's text, for the checks and diagnoses that name groups."""
    junit = ET.fromstring(report_junit.render(r).encode())
    failures = "\n".join(f.text or "" for f in junit.iter("failure"))
    gs = json.loads(report_gradescope.render(r))
    tests = "\n".join(t["output"] for t in gs["tests"] if t["name"].startswith("grad."))
    return {"terminal": report_terminal.render(r),
            "json": " ".join(g["user_name"] for g in json.loads(report_json.render(r))["groups"]),
            "html": report_html.render(r), "junit": failures,
            "gradescope": tests + "\n" + gs["output"]}


@pytest.mark.slow
def test_every_report_names_a_stacked_group_by_its_slice(backward_order):
    r = backward_order
    assert r.verdict == "fail"
    failing = {g.name: g.user_name for g in r.groups if g.status == "fail"}
    assert failing == {"Wf": "W columns 4:8 (forget gate)", "Wi": "W columns 0:4 (input gate)",
                       "bf": "b[4:8] (forget gate)", "bi": "b[0:4] (input gate)"}
    for fmt, text in _outputs(r).items():
        for shown in failing.values():
            assert shown in text, (fmt, shown)
    # the diagnosis' groups too (Gradescope's output carries the terminal report)
    diag = [ln for ln in _outputs(r)["gradescope"].splitlines() if ln.startswith("DIAGNOSIS")]
    assert diag and "W columns 0:4 (input gate)" in diag[0]


@pytest.mark.slow
def test_every_report_keeps_the_plain_name_of_a_separate_array(separate_arrays):
    r = separate_arrays
    assert {g.name: g.user_name for g in r.groups}["Wf"] == "W_f"
    for fmt, text in _outputs(r).items():
        assert "W_f" in text and "W_v" in text, fmt
        assert " rows " not in text and " columns " not in text, fmt


# ------------------------------------------------------------------ gate order


@pytest.mark.slow
def test_a_backward_that_swaps_gate_blocks_is_told_which_slices_to_swap(backward_order):
    d = backward_order.diagnoses[0]
    assert d.id == "layout.gate-order" and d.exact
    assert set(d.groups) == {"Wf", "Wi", "bf", "bi"}
    assert ("the forget gate's gradient at columns 0:4 (your forward takes the gate from "
            "columns 4:8)") in d.evidence
    assert d.fix.startswith("in your backward, write each gate's gradient into the columns "
                            "of dW and db your forward takes the gate from")
    assert "the forget gate's: columns 0:4 -> 4:8" in d.fix
    assert "gate_order" not in d.fix  # nothing was declared wrong: nothing to declare


@pytest.mark.slow
def test_a_declared_order_the_code_does_not_follow_is_fixed_in_the_code_first():
    r = check(str(ZOO / "lstm_gate_order.py"), Options())
    d = r.diagnoses[0]
    assert d.id == "layout.gate-order"
    assert "your forward takes the forget gate from rows 0:4 (the declared order has it in " \
           "rows 4:8)" in d.evidence
    lines = d.fix.splitlines()
    assert lines[0].startswith("in your forward") and "f = sigmoid(a[H:2*H])" in lines[1]
    assert "in your backward" in d.fix
    assert lines[-1].startswith("If 'figo' is the order the assignment means")  # instructors


@pytest.mark.slow
def test_the_correct_stacked_twin_passes_without_a_gate_order_finding():
    r = check(str(NAMED / "lstm_stacked_cs231n.py"), Options())
    assert r.verdict == "pass" and not r.diagnoses
    assert {g.user_name for g in r.groups} >= {"W columns 12:16 (candidate)", "W_vocab"}


# ------------------------------------------------------------------ points


def _spec(tmp_path, body: str):
    p = tmp_path / "a.toml"
    p.write_text(body)
    return load_spec(str(p))


STACKED = ('[assignment]\narch = "lstm"\n[layout]\nstacked = true\ngate_order = "ifog"\n'
           'transposed = true\n[names]\nWy = "W_vocab"\nby = "b_vocab"\n')


def test_points_keys_in_the_students_names_become_check_names(tmp_path):
    s = _spec(tmp_path, STACKED + '[points]\n"grad.W" = 2\n"grad.W[forget]" = 5\n'
                                  '"fd.W_vocab" = 0\n"grad.b_vocab" = 3\ndefault = 1\n')
    assert s.points == {"grad.Wi": 2, "grad.Wf": 5, "grad.Wo": 2, "grad.Wg": 2, "fd.Wy": 0,
                        "grad.by": 3, "default": 1}
    # an alias the architecture knows counts as the student's name too
    s = _spec(tmp_path, '[assignment]\narch = "lstm"\n[points]\n"grad.W_f" = 4\n')
    assert s.points == {"grad.Wf": 4}


@pytest.mark.slow
def test_a_points_key_in_the_students_names_scores_the_check_it_names(tmp_path, backward_order):
    r = backward_order  # the forget and input gates fail, the output gate passes
    base = _spec(tmp_path, STACKED + "[points]\ndefault = 1\n").points
    forget = _spec(tmp_path, STACKED + '[points]\n"grad.W[forget]" = 5\ndefault = 1\n').points
    output = _spec(tmp_path, STACKED + '[points]\n"grad.W[output]" = 5\ndefault = 1\n').points
    assert scoring.check_points(r, forget)["grad.Wf"] == 5
    (s0, m0), (s1, m1), (s2, m2) = (scoring.score(r, p) for p in (base, forget, output))
    assert m1 == m2 == m0 + 4
    assert s1 == s0 and s2 == s0 + 4  # the failing gate's points are lost, the passing one's kept


@pytest.mark.parametrize("key", ["grad.all", "grad.Wx", "grad.W[x]", "grad.Whh", "fd.W_f",
                                 "behaviour.repat", "grad"])
def test_a_points_key_that_names_no_check_is_a_spec_error_listing_the_valid_ones(tmp_path, key):
    with pytest.raises(SpecError) as e:
        _spec(tmp_path, STACKED + f'[points]\n"{key}" = 1\n')
    msg = str(e.value)
    assert f"points key {key!r} names no check" in msg
    assert "grad.<group>" in msg and "Wf, Wi" in msg and '"fd.all"' in msg
    assert "W[forget]" in msg and "W_vocab" in msg  # the names this spec's students use


def test_fd_all_and_families_stay_valid_and_conflicting_keys_are_an_error(tmp_path):
    assert _spec(tmp_path, '[points]\n"fd.all" = 2\n"grad.*" = 1\n"grad.lstm.dWh" = 3\n'
                 ).points == {"fd.all": 2, "grad.*": 1, "grad.lstm.dWh": 3}
    with pytest.raises(SpecError, match=r"both name 'grad\.Wf'"):
        _spec(tmp_path, '[assignment]\narch = "lstm"\n[points]\n"grad.W_f" = 2\n"grad.Wf" = 3\n')
    with pytest.raises(SpecError, match=r"'grad\.W' names no check"):  # W is no LSTM array here
        _spec(tmp_path, '[assignment]\narch = "lstm"\n[points]\n"grad.W" = 2\n')


# ------------------------------------------------------------------ fix snippets


def test_every_fix_template_is_filled_for_any_layout():
    layouts = [Layout(), Layout(stacked="ifog", transposed=True, names={"Wy": "W_vocab"}),
               Layout(names={"Wg": "Wc"}, column=True), Layout(split=True)]
    for bug in catalogue.BUGS:
        for lang in bug.fixes:
            for lay in layouts:
                text = bug.fix_in(lang, **catalogue.user_names(lay, ["Wf", "Whh"]),
                                  backward="b", forward="f", unit="u")
                left = re.findall(r"\{[A-Za-z_]\w*\}", text)
                assert not left, (bug.id, lang, left)


@pytest.mark.slow
@pytest.mark.parametrize("file,own,canonical", [
    ("lstm_stacked_cs231n_state_offset.py", ["dW_vocab += np.outer(dy, h_t).T", "# dW follow"],
     ["dWy", "dWg"]),
    ("lstm_karpathy_state_offset.py", ["dWf, dWi, dWc, dWo follow"], ["dWg"]),
])
def test_a_state_offset_fix_uses_the_files_own_names(file, own, canonical):
    r = check(str(NAMED / file), Options())
    d = r.diagnoses[0]
    assert d.id == "lstm.state-offset"
    for name in own:
        assert name in d.fix, (name, d.fix)
    for name in canonical:
        assert name not in d.fix, (name, d.fix)
    assert "dWg" in catalogue.BY_ID["lstm.state-offset"].fix  # the template's reference names


@pytest.mark.slow
def test_a_unit_style_fix_says_which_of_the_students_arrays_it_means():
    dlai = check(str(ROOT / "reference" / "wild" / "dlai" / "bug_rnn_waa_not_transposed.py"),
                 Options())
    d = dlai.diagnoses[0]
    assert d.id == "rnn.whh-not-transposed"
    first = d.fix.splitlines()[0]
    assert first.startswith("# in the layer API's names: dprev_h is your da_prev")
    assert "Wh is your Waa" in first
    api = check(str(ROOT / "reference" / "bugs" / "layers" / "rnn_whh_not_transposed.py"),
                Options())
    assert api.diagnoses[0].id == "rnn.whh-not-transposed"
    assert "in the layer API's names" not in api.diagnoses[0].fix  # their names are the API's


@pytest.mark.slow
@pytest.mark.parametrize("written", ["oifg", "ifgo"])
def test_any_permutation_of_the_backwards_gate_blocks_is_named(tmp_module, written):
    """A 3-cycle (i, f, o written as o, i, f) and a swap of the last two blocks: each gate that
    is out of place is told where its gradient goes; the others are left alone."""
    src = (NAMED / "lstm_stacked_cs231n.py").read_text()
    plain = "        dW += np.outer(v, da)\n        db += da"
    assert plain in src
    blocks = ", ".join(f"da[{'ifog'.index(g)} * H:{'ifog'.index(g) + 1} * H]" for g in written)
    bug = (f"        da_w = np.concatenate([{blocks}])\n"
           "        dW += np.outer(v, da_w)\n        db += da_w")
    r = check(tmp_module(src.replace(plain, bug)), Options())
    d = r.diagnoses[0]
    assert d.id == "layout.gate-order", [(x.id, x.evidence) for x in r.diagnoses]
    moved = [g for j, g in enumerate("ifog") if written[j] != g]
    assert set(d.groups) == {f"{p}{g}" for g in moved for p in "Wb"}
    H = r.sizes["H"]
    for g in moved:
        wrote, home = written.index(g), "ifog".index(g)
        assert (f"the {GATE_WORDS[g]}'s: columns {wrote * H}:{(wrote + 1) * H} -> "
                f"{home * H}:{(home + 1) * H}") in d.fix
