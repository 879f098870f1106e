"""Forward passes that are not the textbook cell: a known variant is identified and checked
against its own reference; anything else is judged by finite differences of the user's own
loss (said plainly), unless a spec demands the standard model."""
import pytest

from bpttcheck.check.engine import Options, check
from conftest import REF, ROOT, write

pytestmark = pytest.mark.slow

WILD = ROOT / "reference" / "wild" / "variants"
RNN = (REF / "rnn_functional.py").read_text()

# an RNN with a softsign instead of tanh: a model of the user's own, correctly differentiated
SOFTSIGN = (RNN.replace("h = np.tanh(Wxh @ x + Whh @ hs[t] + bh)",
                        "a = Wxh @ x + Whh @ hs[t] + bh\n        h = a / (1 + np.abs(a))")
            .replace("xs.append(x)\n", "xs.append(x)\n        pre.append(a)\n")
            .replace("xs, hs, ps = [], [", "pre, xs, hs, ps = [], [], [")
            .replace("da = (1.0 - hs[t + 1] ** 2) * dh",
                     "da = dh / (1 + np.abs(pre[t])) ** 2"))




def test_the_model_of_ones_own_really_is_one():
    assert SOFTSIGN != RNN and "np.tanh(Wxh" not in SOFTSIGN and "pre[t]" in SOFTSIGN


@pytest.mark.parametrize("name, variant", [
    ("gru_update_weights_candidate.py", "variant.z-weighs-candidate"),
    ("lstm_no_output_tanh.py", "variant.no-output-tanh"),
])
def test_a_known_variant_is_identified_and_passes(name, variant):
    r = check(str(WILD / name), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    note = next(n for n in r.notes if n.id == "model.variant")
    assert variant in note.evidence
    assert not any(n.id == "model.nonstandard" for n in r.notes)


def test_a_bug_in_a_variant_is_still_named(tmp_path):
    src = (WILD / "lstm_no_output_tanh.py").read_text()
    lines = src.splitlines()
    # the forget gate dropped from dc_next: the LSTM bug, on top of the variant
    i = next(i for i, ln in enumerate(lines) if "dc_next =" in ln and "*" in ln and "f" in ln)
    lines[i] = lines[i].split("=")[0] + "= dc"
    r = check(write(tmp_path, "\n".join(lines) + "\n"), Options())
    assert r.verdict == "fail"
    assert any(n.id == "model.variant" for n in r.notes)
    assert r.diagnoses[0].id == "lstm.dc-next-missing-forget"


def test_a_model_of_ones_own_is_judged_by_its_own_loss(tmp_path):
    r = check(write(tmp_path, SOFTSIGN), Options())
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    note = next(n for n in r.notes if n.id == "model.nonstandard")
    assert "not the standard rnn" in note.evidence and "finite differences of your own loss" in note.evidence
    assert {c.name: c.status for c in r.checks}["forward.loss"] == "skip"
    assert all(g.fd is not None and g.status == "pass" for g in r.groups)
    assert {c.name for c in r.checks} >= {f"fd.{k}" for k in ("Wxh", "Whh", "Why", "bh", "by")}


def test_a_bug_in_a_model_of_ones_own_fails_in_its_groups(tmp_path):
    buggy = SOFTSIGN.replace("dWhh += np.outer(da, hs[t])", "dWhh += np.outer(da, hs[t + 1])")
    r = check(write(tmp_path, buggy), Options())
    assert r.verdict == "fail"
    assert [g.name for g in r.groups if g.status == "fail"] == ["Whh"]
    assert r.diagnoses and r.diagnoses[0].groups == ["Whh"]
    assert "not the standard rnn" in r.diagnoses[0].evidence


def test_a_mean_over_time_slip_in_a_model_of_ones_own_is_named(tmp_path):
    # the loss is averaged over time, the gradients are not
    buggy = SOFTSIGN.replace("return float(loss), grads, hs[T]", "return float(loss) / T, grads, hs[T]")
    r = check(write(tmp_path, buggy), Options())
    assert r.verdict == "fail"
    d = r.diagnoses[0]
    assert d.id == "loss.mean-grad-sum" and "T = 6" in d.evidence


def test_a_spec_can_demand_the_standard_model(tmp_path):
    r = check(write(tmp_path, SOFTSIGN), Options(require_standard=True))
    assert r.verdict == "fail"
    assert {c.name: c.status for c in r.checks}["forward.loss"] == "fail"
    r = check(str(WILD / "lstm_no_output_tanh.py"), Options(require_standard=True))
    assert r.verdict == "fail" and not any(n.id == "model.variant" for n in r.notes)


def test_a_known_forward_bug_is_not_mistaken_for_a_model_of_ones_own():
    from conftest import ZOO
    path = next(p for p in sorted(ZOO.glob("*.py")) if "double_exp" in p.name)
    r = check(str(path), Options())
    assert r.diagnoses[0].id == "softmax.double-exp"
    assert not any(n.id == "model.nonstandard" for n in r.notes)


def test_the_spec_key_demands_the_standard_model(tmp_path):
    from bpttcheck.settings import settings
    spec = tmp_path / "a.toml"
    spec.write_text('[assignment]\narch = "rnn"\nmodel = "standard"\n')
    opts = settings(str(spec)).opts
    assert opts.require_standard
    r = check(write(tmp_path, SOFTSIGN), opts)
    assert r.verdict == "fail" and {c.name: c.status for c in r.checks}["forward.loss"] == "fail"
    spec.write_text('[assignment]\nmodel = "textbook"\n')
    from bpttcheck.errors import SpecError
    with pytest.raises(SpecError, match=r"assignment\.model"):
        settings(str(spec))


def test_split_matrices_follow_the_name_given_to_their_gate():
    """BPTTCHECK names the candidate gate "Wc" (for Wg): its split halves are Whc and Wxc."""
    r = check(str(WILD / "lstm_split_matrices.py"), Options())
    assert r.verdict == "pass", (r.error, [c.message for c in r.checks if c.status == "fail"])


def test_a_model_that_predicts_its_own_vocabulary_is_retried_with_y_equal_x(tmp_path):
    """No init_params, no declaration: the first call breaks on the default Y != X, the
    retry with Y = X works, and the note says the cases use Y = X."""
    src = (WILD / "rnn_vocab_only.py").read_text()
    src = src[:src.index("def init_params")] + src[src.index("def init_state"):]
    r = check(write(tmp_path, src), Options())
    assert r.verdict == "pass", (r.error, [c.message for c in r.checks if c.status == "fail"])
    assert r.sizes["X"] == r.sizes["Y"]
    assert any(n.id == "model.variant" and "Y = X" in n.evidence for n in r.notes)
    # a real bug in such a model is still a failure, not hidden by the retry
    buggy = src.replace("grads[\"Whh\"] += dhraw @ hs[t - 1].T", "grads[\"Whh\"] += dhraw @ hs[t].T", 1)
    assert buggy != src
    assert check(write(tmp_path, buggy, "buggy.py"), Options()).verdict == "fail"
