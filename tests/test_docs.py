"""The documented CI gates, tried end to end as far as this machine allows: the Gradescope
run_autograder on a fake /autograder tree, and the GitHub Actions check step run by bash."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REF, ROOT, ZOO

pytestmark = pytest.mark.slow  # each test runs the installed command on user code
DOCS = ROOT / "docs"
BIN = os.path.join(os.path.dirname(sys.executable), "bpttcheck")


def _autograder(tmp_path, files: dict, spec: str | None = None):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").mkdir()
    for name, src in files.items():
        shutil.copy(src, root / "submission" / name)
    if spec:
        (root / "source" / "assignment.toml").write_text(spec)
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), BPTTCHECK=BIN)
    p = subprocess.run(["bash", str(DOCS / "gradescope" / "run_autograder")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads((root / "results" / "results.json").read_text()), root


@pytest.mark.skipif(not os.path.exists(BIN), reason="bpttcheck is not installed as a command")
def test_run_autograder_grades_a_buggy_lstm(tmp_path):
    spec = '[assignment]\nfile = "lstm.py"\n[points]\n"grad.*" = 2\ndefault = 1\n'
    res, root = _autograder(tmp_path, {"lstm.py": ZOO / "lstm_state_offset.py",
                                       "helper.py": REF / "rnn_functional.py"}, spec)
    assert 0 < res["score"] < sum(t["max_score"] for t in res["tests"])
    assert "lstm.state-offset" in res["output"]
    assert (root / "results" / "report.html").stat().st_size > 1000


@pytest.mark.skipif(not os.path.exists(BIN), reason="bpttcheck is not installed as a command")
def test_run_autograder_survives_a_crash_and_an_empty_submission(tmp_path):
    res, _ = _autograder(tmp_path / "a", {"model.c": ROOT / "reference/bugs/c/segfault.c"})
    assert res["score"] == 0 and "crash" in res["tests"][0]["output"]
    res, _ = _autograder(tmp_path / "b", {})
    assert res["score"] == 0 and "No .py, .c or .so file" in res["output"]


@pytest.mark.skipif(not os.path.exists(BIN), reason="bpttcheck is not installed as a command")
def test_run_autograder_finds_the_model_among_helpers_and_refuses_to_guess(tmp_path):
    helper = tmp_path / "a_helpers.py"
    helper.write_text("def softmax(z):\n    return z\n")
    res, _ = _autograder(tmp_path / "a", {"a_helpers.py": helper, "rnn.py": REF / "rnn_functional.py"})
    assert res["tests"] and all(t["status"] == "passed" for t in res["tests"])
    res, _ = _autograder(tmp_path / "b", {"x.py": REF / "rnn_functional.py",
                                          "y.py": ZOO / "rnn_dwhy_prev_h.py"})
    assert res["score"] == 0 and "exactly one" in res["output"]


def _run_block(workflow: str, step: str) -> str:
    lines = workflow.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip() == f"- name: {step}")
    j = next(k for k in range(i, len(lines)) if lines[k].strip() == "run: |")
    indent = len(lines[j + 1]) - len(lines[j + 1].lstrip())
    block = []
    for ln in lines[j + 1:]:
        if ln.strip() and len(ln) - len(ln.lstrip()) < indent:
            break
        block.append(ln[indent:])
    return "\n".join(block)


@pytest.mark.skipif(not os.path.exists(BIN), reason="bpttcheck is not installed as a command")
def test_github_actions_check_step_gates_and_writes_its_reports(tmp_path):
    wf = (DOCS / "github-actions" / "bpttcheck.yml").read_text()
    env_block = dict(re.findall(r"^  (MODEL|SPEC): (\S+)", wf, re.M))
    script = _run_block(wf, "Check the gradients")
    for name, model, want in (("good", REF / "rnn_functional.py", 0),
                              ("bad", ZOO / "rnn_dwhy_prev_h.py", 1)):
        d = tmp_path / name
        d.mkdir()
        shutil.copy(model, d / env_block["MODEL"])
        (d / env_block["SPEC"]).write_text('[assignment]\narch = "rnn"\n')
        summary = d / "summary.md"
        env = dict(os.environ, PATH=os.path.dirname(BIN) + os.pathsep + os.environ["PATH"],
                   GITHUB_STEP_SUMMARY=str(summary), BPTTCHECK_SECRET="", **env_block)
        p = subprocess.run(["bash", "-e", "-c", script], cwd=d, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == want, p.stdout + p.stderr
        out = d / "bpttcheck-out"
        assert (out / "junit.xml").is_file() and (out / "report.json").is_file()
        assert (out / "report.html").is_file()
        assert ("PASS" if want == 0 else "FAIL") in summary.read_text()
