"""A forward whose loss is no cross-entropy: the diagnosis says the forward is the first thing
to fix, with the value that shows it, and only then the backward."""
from bpttcheck.check.engine import Options, check
from conftest import REF

SOFTMAX = "e = np.exp(z - np.max(z))"


def _with(tmp_path, old: str, new: str):
    src = (REF / "rnn_functional.py").read_text()
    assert old in src
    p = tmp_path / "m.py"
    p.write_text(src.replace(old, new, 1))
    return str(p)


def test_a_negative_loss_points_at_the_forward(tmp_path):
    # a 1 added to every probability: each above 1, each -log p below 0
    path = _with(tmp_path, "return e / np.sum(e)", "return 1 + e / np.sum(e)")
    r = check(path, Options(seed=0))
    d = r.diagnoses[0]
    assert r.verdict == "fail" and r.loss is not None and r.loss["user"] < 0, r.loss
    assert "below zero" in d.evidence and f"{r.loss['user']:.6g}" in d.evidence
    assert d.fix.startswith("fix the forward first")
    # and the line where the forward departs from the standard model: the softmax's caller
    assert d.location is not None and "softmax(" in d.location.source, d.location
    assert "departs from the standard model" in d.location.quantity


def test_a_positive_nonstandard_loss_keeps_the_backward_advice(tmp_path):
    # softmax of twice the logits: a model of its own with a positive loss, and the backward
    # left as it is (the gradient of the standard softmax): its own loss disagrees with it
    path = _with(tmp_path, SOFTMAX, "e = np.exp(2 * z - np.max(2 * z))")
    r = check(path, Options(seed=0))
    assert r.verdict == "fail" and r.loss["user"] > 0
    d = r.diagnoses[0]
    assert "below zero" not in d.evidence and not d.fix.startswith("fix the forward first")
    assert d.location is not None and "softmax(" in d.location.source, d.location


def test_a_correct_own_model_gets_no_line(tmp_path):
    """A model of its own whose backward is its forward's (softmax of 2 z, and dz doubled to
    match): it passes, with nothing located."""
    path = _with(tmp_path, SOFTMAX, "e = np.exp(2 * z - np.max(2 * z))")
    from pathlib import Path
    src = Path(path).read_text()
    old = "dz[targets[t]] -= 1.0"
    assert old in src
    Path(path).write_text(src.replace(old, old + "; dz *= 2", 1))
    r = check(path, Options(seed=0))
    assert r.verdict == "pass", [(c.name, c.message) for c in r.checks if c.status == "fail"]
    assert not r.diagnoses
