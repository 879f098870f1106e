"""Time limits per call, and the check's budget (sandbox/budget.py, CONTRACT "Time limits"):
slow but correct code and code that prints a lot pass with the default limits; an endless
loop anywhere ends within one per-call limit with the line it was running; a check that
stops part-way says in every report which checks did not run."""
import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpttcheck import report_gradescope, report_html, report_junit, report_terminal
from bpttcheck.check.engine import Options, check
from bpttcheck.sandbox.budget import (
    GRACE,
    MARGIN,
    CallBudget,
    duration,
    round_up,
    suggested_limit,
)
from bpttcheck.sandbox.limits import Limits
from conftest import REF

LSTM = (REF / "lstm_functional.py").read_text()
ENTRY = "def loss_and_grads(params, inputs, targets, state):\n"


def with_body(prelude: str, body: str = "") -> str:
    """The correct functional LSTM with ``prelude`` at the top and ``body`` first in its
    loss function."""
    assert ENTRY in LSTM
    return prelude + "\n" + LSTM.replace(ENTRY, ENTRY + body, 1)


# ---------------------------------------------------------------- the arithmetic


def test_before_any_call_nothing_is_known_and_nothing_is_limited_but_the_call():
    b = CallBudget(call_timeout=10)
    assert b.call_seconds is None and b.describe() == ""
    assert b.allowance(5) == float("inf") and b.affordable(1000)


def test_the_message_gives_what_was_measured_and_what_is_planned():
    b = CallBudget(call_timeout=10)
    for s in (2.0, 2.1, 1.9):
        b.measured(s)
    b.plan(58)
    assert b.describe() == "one call takes 2.0 s; the check needs 58 calls (~2 min)"
    # the budget: MARGIN x the measured call x the planned calls, plus one limit
    assert b.allowance() == pytest.approx(10 + MARGIN * 2.0 * 58)


def test_a_request_beyond_the_plan_extends_it():
    b = CallBudget(call_timeout=1)
    b.measured(0.1)
    b.plan(10)
    b.spend(0.5, 10)
    assert b.allowance(5) == pytest.approx(1 + MARGIN * 0.1 * 15)


@given(st.floats(1e-4, 5.0), st.integers(1, 500), st.floats(0.1, 60.0),
       st.floats(0.0, 1.0))
def test_calls_as_fast_as_measured_never_run_out_of_budget(t, n, limit, used):
    """Whatever the plan, calls that take what the measured call took (or up to MARGIN times
    it) leave at least one per-call limit of budget for the next call."""
    b = CallBudget(call_timeout=limit)
    b.measured(t)
    b.plan(n)
    made = max(1, int(used * n))
    b.spend(MARGIN * t * made, made)
    assert b.remaining(1) >= limit - 1e-9


@given(st.floats(0.0, 1e6))
def test_suggested_limits_are_round_and_above_three_times_the_time(s):
    assert suggested_limit(s) >= 3 * s and round_up(s) >= s
    assert suggested_limit(s) in (5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600) \
        or suggested_limit(s) % 3600 == 0


def test_durations_read_like_a_person_writes_them():
    assert [duration(x) for x in (0.31, 2.0, 58, 116, 7200)] == [
        "0.31 s", "2.0 s", "58 s", "~2 min", "~2.0 h"]


def test_extra_evidence_is_affordable_only_within_six_limits():
    b = CallBudget(call_timeout=0.5)
    b.measured(0.3)
    b.plan(8)
    assert b.affordable(2)  # 10 calls: 3 s
    assert not b.affordable(3)


# ---------------------------------------------------------------- slow but correct


SLOW = with_body("import time", "    time.sleep(0.3)\n")


@pytest.mark.slow
def test_slow_but_correct_code_passes_with_fewer_calls(tmp_module):
    """0.3 s a call under a 0.5 s limit (the 2 s a call of a real class under the default
    10 s, scaled down): it passes; the per-group finite differences, extra evidence, are left
    out and say so; the verdict's own checks all ran."""
    r = check(tmp_module(SLOW), Options(limits=Limits(call_timeout=0.5, load_timeout=5)))
    assert r.verdict == "pass", r.error
    assert r.evaluations <= 10
    note = next(n for n in r.notes if n.id == "budget.fewer-calls")
    assert "One call takes" in note.evidence and "--timeout" in note.evidence
    skipped = [c for c in r.checks if c.name.startswith("fd.") and c.name != "fd.all"]
    assert skipped and all(c.status == "skip" and "not run" in c.message for c in skipped)
    assert next(c for c in r.checks if c.name == "fd.all").status == "pass"
    assert all(c.status == "pass" for c in r.checks if c.name.startswith("grad."))


@pytest.mark.slow
def test_the_same_limit_leaves_fast_code_all_its_calls(tmp_module):
    r = check(tmp_module(LSTM), Options(limits=Limits(call_timeout=0.5, load_timeout=5)))
    assert r.verdict == "pass"
    assert not any(n.id == "budget.fewer-calls" for n in r.notes)
    assert all(c.status == "pass" for c in r.checks if c.name.startswith("fd."))
    assert r.evaluations > 50


@pytest.mark.slow
def test_a_slow_model_of_its_own_keeps_the_calls_its_verdict_needs(tmp_module):
    """With no standard model (a forward of the user's own) the per-group finite differences
    are the verdict: they run however slow the code."""
    src = with_body("import time", "    time.sleep(0.05)\n").replace(
        "def softmax(a):\n    e = np.exp(a - np.max(a))",
        "def softmax(a):\n    a = 1.5 * a\n    e = np.exp(a - np.max(a))", 1)
    assert src != with_body("import time", "    time.sleep(0.05)\n")
    r = check(tmp_module(src), Options(limits=Limits(call_timeout=0.2, load_timeout=5)))
    assert any(n.id == "model.nonstandard" for n in r.notes), r.error
    assert not any(n.id == "budget.fewer-calls" for n in r.notes)
    fd = [c for c in r.checks if c.name.startswith("fd.")]
    assert len(fd) == 11 and all(c.status in ("pass", "fail") for c in fd)  # each one ran


# ---------------------------------------------------------------- a print flood


CHATTY = with_body("", "    for _ in range(9000):\n        print('x' * 49)\n")


@pytest.mark.slow
def test_code_that_prints_450_kb_a_call_passes_with_the_default_limits(tmp_module):
    t = time.perf_counter()
    r = check(tmp_module(CHATTY), Options())
    assert r.verdict == "pass", r.error
    assert r.evaluations > 50  # every check ran: printing is not slowness
    assert time.perf_counter() - t < 30


# ---------------------------------------------------------------- hangs and the budget


HANG_IN_BATCH = with_body("N = [0]", "    N[0] += 1\n    while N[0] > 5:\n        pass\n")


@pytest.mark.slow
def test_an_endless_loop_in_a_batch_ends_within_one_limit_naming_the_line(tmp_module):
    t = time.perf_counter()
    r = check(tmp_module(HANG_IN_BATCH), Options(limits=Limits(call_timeout=1.0,
                                                              load_timeout=5)))
    took = time.perf_counter() - t
    assert r.error.kind == "timeout"
    # the loop's line: its test or its body, wherever the stack dump caught it
    assert re.search(r"while N\[0\] > 5|: pass$", r.error.line), r.error.line
    m = r.error.message
    assert "call 3 of" in m and "a batch of calls" in m and "the limit is 1 s per call" in m
    assert "one call takes" in m and "the check needs" in m and "--timeout" in m
    assert took < 1.0 + GRACE + 4


@pytest.mark.slow
def test_calls_that_keep_getting_slower_run_out_of_the_budget(tmp_module):
    """Each call within the limit, but each slower than the last: the check ends at its
    budget (MARGIN x the measured call x the planned calls, plus one limit) and says so."""
    # the first three calls (first, repeat, large logits) are fast; from the fourth on each
    # takes 2.5 s: within the limit and its 2 s of grace, but 5 of them (or 55) are far
    # more than 4 x the measured call x the calls planned, plus one limit
    src = with_body("import time\nN = [0]",
                    "    N[0] += 1\n    if N[0] > 3:\n        time.sleep(2.5)\n")
    t = time.perf_counter()
    r = check(tmp_module(src), Options(limits=Limits(call_timeout=2.0, load_timeout=5)))
    assert r.error is not None and r.error.kind == "timeout", r.checks
    assert "budget" in r.error.message and "slower" in r.error.message
    assert "time.sleep(2.5)" in (r.error.line or "")
    assert time.perf_counter() - t < 40


@pytest.mark.slow
def test_a_timeout_lists_the_checks_that_did_not_run_in_every_report(tmp_module):
    r = check(tmp_module(HANG_IN_BATCH), Options(limits=Limits(call_timeout=1.0,
                                                              load_timeout=5)))
    assert r.verdict == "error"
    not_run = [c.name for c in r.checks if c.status == "not-run"]
    assert "fd.all" in not_run and "forward.loss" not in not_run
    assert all("not run" in c.message for c in r.checks if c.status == "not-run")
    data = json.loads(r.model_dump_json())
    assert {c["name"] for c in data["checks"] if c["status"] == "not-run"} == set(not_run)
    text = report_terminal.render(r)
    assert "not run: " in text and "fd.all" in text and "stopped part-way" in text
    junit = report_junit.render(r)
    assert 'name="fd.all"' in junit and "not run" in junit
    gs = json.loads(report_gradescope.render(r))
    assert "Not run" in gs["tests"][0]["output"] and "fd.all" in gs["tests"][0]["output"]
    html = report_html.render(r)
    assert 'badge not-run' in html and "not run</b>" in html


@pytest.mark.slow
def test_an_error_before_any_check_lists_no_checks(tmp_module):
    r = check(tmp_module(with_body("", "    while True:\n        pass\n")),
              Options(limits=Limits(call_timeout=1.0, load_timeout=5)))
    assert r.error.kind == "timeout" and r.checks == []
    assert "the limit per call" in r.error.message and "--timeout" in r.error.message
    assert "stopped part-way" not in report_terminal.render(r)
