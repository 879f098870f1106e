"""Rewrites of a located line (check/rewrite.py) and their values at the line, computed in
place of it on copies (sandbox/tracer.LineProbe)."""
import textwrap

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bpttcheck.check.rewrite import index_shifts, rewrites, split_comment
from bpttcheck.sandbox.tracer import Where, run_probed

BACKWARD = textwrap.dedent("""\
    import numpy as np

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    def backward(hs, dhs, Whh, h0, T):
        dWhh = np.zeros_like(Whh)
        dbh = np.zeros(hs[0].shape)
        dh_next = np.zeros_like(h0)
        for t in reversed(range(T)):
            dh = dhs[t] + dh_next
            dh_raw = (1 - hs[t] ** 2) * dh
            dbh += dh   # the bias accumulates dh_raw
            h_prev = hs[t - 1]
            dWhh += np.outer(dh_raw, h_prev)
            dh_next = Whh.T @ dh_raw
            da = np.hstack((dh_raw, dh))
        return dWhh, dbh
""")


def _file(tmp_path, text=BACKWARD):
    p = tmp_path / "m.py"
    p.write_text(text)
    return str(p)


def _codes(path, line):
    return [r.code for r in rewrites(path, line)]


def test_another_name_the_function_uses(tmp_path):
    codes = _codes(_file(tmp_path), 13)
    assert "dbh += dh_raw" in codes
    assert "dbh = dh" in codes and "dbh -= dh" in codes  # the operator
    assert all(c.startswith("dbh") for c in codes)


def test_first_step_guard_index_shift_and_transpose(tmp_path):
    path = _file(tmp_path)
    codes = _codes(path, 14)
    assert "h_prev = hs[t - 1] if t > 0 else h0" in codes
    assert "h_prev = hs[t]" in codes
    assert "dh_next = Whh @ dh_raw" in _codes(path, 16)  # a transpose taken off


def test_blocks_in_another_order_and_a_missing_factor(tmp_path):
    path = _file(tmp_path)
    assert "da = np.hstack((dh, dh_raw))" in _codes(path, 17)
    codes = _codes(path, 12)
    assert "dh_raw = (1 - hs[t] ** 2) * dh * dh_next" in codes
    assert "dh_raw = (1 - hs[t]) * dh" in codes  # a term dropped from a product's factor
    assert "dh_raw = (1 - sigmoid(hs[t]) ** 2) * dh" in codes  # a nonlinearity the file has


def test_changes_of_form_come_before_other_names(tmp_path):
    rs = rewrites(_file(tmp_path), 13)
    ranks = [r.rank for r in rs]
    assert ranks == sorted(ranks) and ranks[0] == 0
    assert len({r.code for r in rs}) == len(rs)  # no repeats


def test_no_rewrites_of_what_is_no_one_line_assignment(tmp_path):
    text = BACKWARD + "\nx = f(1,\n      2)\nif x:\n    pass\na = b = 1\n"
    path = _file(tmp_path, text)
    n = len(BACKWARD.splitlines())
    assert rewrites(path, n + 2) == []  # a statement over two lines
    assert rewrites(path, n + 4) == []  # no assignment
    assert rewrites(path, n + 6) == []  # two targets
    assert rewrites(str(tmp_path / "missing.py"), 3) == []


def test_comments_and_strings_keep_their_hash():
    assert split_comment('x = d["#"]  # note') == ('x = d["#"]', "  # note")
    assert split_comment("x = 1") == ("x = 1", "")


@given(st.sampled_from(["[t]", "[t+1]", "[t-1]", "[t + 1]", "[t - 1]"]))
def test_index_shifts_move_each_step_index_one_over(form):
    out = {code for code, _ in index_shifts(f"a = h{form} * c{form}")}
    assert out and all(code != f"a = h{form} * c{form}" for code in out)
    assert all(code.count("[t") == 2 for code in out)


# ---------------------------------------------------------------- the values at the line

def _run(path, where, statements, T=4, seed=0):
    import importlib.util
    spec = importlib.util.spec_from_file_location("m_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(seed)
    hs = [np.tanh(rng.normal(size=3)) for _ in range(T)]
    dhs = [rng.normal(size=3) for _ in range(T)]
    Whh, h0 = rng.normal(size=(3, 3)), np.zeros(3)
    args = (hs, dhs, Whh, h0, T)
    plain = mod.backward(*args)
    got, values = run_probed(mod.backward, lambda f: f == path, lambda f: f, where,
                             statements, *args)
    return args, plain, got, values


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 6), seed=st.integers(0, 1000), data=st.data())
def test_a_probed_line_gives_each_rewrite_its_value_and_changes_nothing(T, seed, data, tmp_path_factory):
    path = _file(tmp_path_factory.mktemp("p"))
    t = data.draw(st.integers(0, T - 1))
    statements = ["dbh += dh_raw", "dbh += dh", "dbh += undefined_name", "dbh = 'text'"]
    args, plain, got, values = _run(path, Where(path, 13, t, "dbh"), statements, T, seed)
    hs, dhs, Whh, _, _ = args
    # what dbh holds just before line 13 at step t, computed here by hand
    dbh, dh_next = np.zeros(3), np.zeros(3)
    for s in reversed(range(T)):
        dh = dhs[s] + dh_next
        dh_raw = (1 - hs[s] ** 2) * dh
        if s == t:
            want = [dbh + dh_raw, dbh + dh]
            break
        dbh += dh
        dh_next = Whh.T @ dh_raw
    np.testing.assert_allclose(values[0], want[0])
    np.testing.assert_allclose(values[1], want[1])
    assert values[2] is None and values[3] is None  # a rewrite that does not run, or no array
    # the call itself ran as it does untraced: the rewrites worked on copies
    for a, b in zip(got, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_line_never_reached_at_that_step_gives_nothing(tmp_path):
    path = _file(tmp_path)
    _, _, _, values = _run(path, Where(path, 13, 99, "dbh"), ["dbh += dh_raw"])
    assert values == [None]
