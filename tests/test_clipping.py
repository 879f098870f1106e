"""Clipping is accepted only when plausible (issue 13): a threshold that leaves at least half of
every clipped group exact, and a second case whose gradients all lie well inside it where every
gradient equals the reference; the finite differences are never skipped because of clipping,
they are taken on that second case."""
from __future__ import annotations

import numpy as np
import pytest

from bpttcheck.check.cases import DEFAULT_DIMS, make_case
from bpttcheck.check.checks import check_forward, check_groups, unclipped_case
from bpttcheck.check.engine import Options, check
from bpttcheck.check.findings import Findings
from bpttcheck.check.probe import UserProbe
from bpttcheck.check.recorder import Recorder
from bpttcheck.layout import Layout
from bpttcheck.oracle import rnn
from bpttcheck.result import Report
from tests.test_engine import CLIPPED

# No backward at all: the loss's gradient signs from central differences of its own forward,
# returned as +-LEVEL, which looks like "clipping at LEVEL" of the reference.
SIGN_ONLY = '''
import numpy as np
BPTTCHECK = {"arch": "rnn"}
def _loss(p, xs, ys, h0):
    hs, loss = {-1: h0}, 0.0
    for t, x in enumerate(xs):
        hs[t] = np.tanh(p["Wxh"][:, x] + p["Whh"] @ hs[t-1] + p["bh"])
        z = p["Why"] @ hs[t] + p["by"]
        e = np.exp(z - z.max())
        loss -= np.log(e[ys[t]] / e.sum())
    return loss, hs[len(xs)-1]
def loss_and_grads(p, xs, ys, h0):
    loss, h = _loss(p, xs, ys, h0)
    g = {}
    for k, v in p.items():
        g[k] = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            q = {n: a.copy() for n, a in p.items()}
            q[k][i] += 1e-5
            up = _loss(q, xs, ys, h0)[0]
            q[k][i] -= 2e-5
            g[k][i] = (up - _loss(q, xs, ys, h0)[0]) / 2e-5
        g[k] = LEVEL * np.sign(g[k])
    return loss, g, h
'''


def _clipped(tmp_module, level: str) -> Report:
    return check(tmp_module(CLIPPED.replace("CLIP", level)), Options())


@pytest.mark.parametrize("level", ["1e-9", "1e-3"])
def test_sign_only_gradients_are_not_clipping(tmp_module, level):
    """The attack: before, +-1e-9 (or +-1e-3) times the sign of finite differences passed as
    'clipped at 1e-9', its finite-difference checks skipped."""
    r = check(tmp_module(SIGN_ONLY.replace("LEVEL", level)), Options())
    assert r.verdict == "fail"
    assert not any(n.id == "grad.clipped" for n in r.notes)
    assert not any(g.clipped_at for g in r.groups)
    failed = {c.name for c in r.checks if c.status == "fail"}
    assert {"grad.Whh", "fd.all", "fd.Whh"} <= failed
    assert not any(c.status == "skip" for c in r.checks if c.name.startswith("fd."))
    assert any("fewer than half" in c.message for c in r.checks if c.name == "grad.Whh")


def test_a_correct_backward_clipped_at_1e_3_fails(tmp_module):
    """Almost every entry pinned at +-1e-3: no gradient left to check, not accepted."""
    r = _clipped(tmp_module, "1e-3")
    assert r.verdict == "fail" and not any(g.clipped_at for g in r.groups)
    assert "fewer than half" in next(c for c in r.checks if c.name == "grad.by").message


def test_a_correct_model_clipping_at_5_passes(tmp_module):
    r = _clipped(tmp_module, "5.0")
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]


def test_plausible_clipping_passes_with_its_note_and_finite_differences(tmp_module):
    """Clipping at 0.9 pins a few entries of the default case: accepted, with every fd check
    made (on the second case, where nothing is clipped), none skipped."""
    r = _clipped(tmp_module, "0.9")
    assert r.verdict == "pass", [c.message for c in r.checks if c.status == "fail"]
    assert any(n.id == "grad.clipped" for n in r.notes)
    assert any(g.clipped_at == 0.9 for g in r.groups)
    fd = {c.name: c for c in r.checks if c.name.startswith("fd.")}
    assert set(fd) == {"fd.all"} | {f"fd.{k}" for k in rnn.ARCH.param_names}
    assert all(c.status == "pass" and "second case" in c.message for c in fd.values())
    assert all(g.fd is not None and g.fd.status == "pass" for g in r.groups)


class ClipsOnlyAtTheFirstCase:
    """'User code' that returns the reference clipped at 0.9 on the first case it is asked and
    a wrong gradient (dWhh doubled) on every other: clipping that hides a wrong backward."""

    def __init__(self):
        self.calls = 0

    def call(self, case, layout):
        tr = rnn.ARCH.run(case.params, case.xs, case.ys, case.state)
        self.calls += 1
        g = {k: v.copy() for k, v in tr.grads.items()}
        if self.calls == 1:
            g = {k: np.clip(v, -0.9, 0.9) for k, v in g.items()}
        else:
            g["Whh"] *= 2
        return tr.loss, g, tr.state, {"dtype": "float64"}


def test_clipping_that_the_second_case_contradicts_fails():
    caps = {"kind": "sequence", "language": "python", "fixed_sizes": "none",
            "poisoned_buffers": False, "entry": "loss_and_grads"}
    probe = UserProbe(ClipsOnlyAtTheFirstCase(), rnn.ARCH, caps)
    rec = Recorder(Report(verdict="pass", path="clipper"))
    obs = probe.observe(make_case(probe.arch, DEFAULT_DIMS, 0), Layout())
    f = Findings(obs, dtype=obs.dtype)
    check_forward(rec, probe, f)
    check_groups(rec, probe, f)
    failed = {c.name: c.message for c in rec.report.checks if c.status == "fail"}
    assert "grad.Whh" in failed and "second case" in failed["grad.Whh"]
    assert not any(g.clipped_at for g in rec.report.groups) and f.unclipped is None
    assert not any(n.id == "grad.clipped" for n in rec.report.notes)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bound", [0.5, 1e-4, 1e-10])
def test_the_second_case_has_every_gradient_inside_the_bound(arch, bound):
    from bpttcheck.plugins import architectures
    a = architectures()[arch]
    caps = {"kind": "sequence", "language": "python", "fixed_sizes": "none",
            "poisoned_buffers": False, "entry": "loss_and_grads"}
    probe = UserProbe(None, a, caps)  # type: ignore[arg-type]
    made = unclipped_case(probe, make_case(a, DEFAULT_DIMS, 3), "float64", "sum", bound)
    assert made is not None
    _, ref = made
    assert all(np.max(np.abs(g)) < bound for g in ref.grads.values())
