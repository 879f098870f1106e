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


NEEDS_BIN = pytest.mark.skipif(not os.path.exists(BIN), reason="bpttcheck is not installed as a command")
# the spec an instructor writes: comments everywhere, a trailing one after `file = ...`
COMMENTED_SPEC = """# HW3 spec
[assignment]   # the assignment
title = "HW3: LSTM backprop"  # shown to students
file = "lstm.py"   # the file students upload
arch = "lstm"
[feedback]
visibility = "after_due_date"  # Gradescope shows it after the deadline
[points]
"grad.*" = 2   # per gate
default = 1
"""


@NEEDS_BIN
def test_run_autograder_grades_a_buggy_lstm_with_a_commented_spec(tmp_path):
    res, root = _autograder(tmp_path, {"lstm.py": ZOO / "lstm_state_offset.py",
                                       "helper.py": REF / "rnn_functional.py"}, COMMENTED_SPEC)
    assert 0 < res["score"] < sum(t["max_score"] for t in res["tests"])
    # Gradescope shows results.json's output, not files in results/: the report is in it
    out = res["output"]
    assert out.startswith("## HW3: LSTM backprop") and "**bpttcheck verdict: fail**" in out
    assert "lstm.state-offset" in out and "max abs err" in out and "fix:" in out
    assert res["output_format"] == "md" and "```text" in out
    assert res["visibility"] == "after_due_date"
    assert {t["visibility"] for t in res["tests"]} == {"after_due_date"}
    assert not (root / "results" / "report.html").exists()


@NEEDS_BIN
def test_run_autograder_reads_the_spec_as_toml(tmp_path):
    """Single quotes, a dotted key, a table out of order: what TOML allows, the recipe reads."""
    spec = "[points]\ndefault = 1\n\n[assignment]\n  file = 'lstm.py' # trailing\n"
    res, _ = _autograder(tmp_path / "a", {"lstm.py": REF / "lstm_functional.py"}, spec)
    assert res["tests"] and all(t["status"] == "passed" for t in res["tests"])
    res, _ = _autograder(tmp_path / "b", {"lstm.py": REF / "lstm_functional.py"},
                         'assignment.file = "lstm.py"\n')
    assert res["tests"] and res["score"] == sum(t["max_score"] for t in res["tests"])
    # the named file missing: the student learns which name, and what was found
    res, _ = _autograder(tmp_path / "c", {"my_lstm.py": REF / "lstm_functional.py"}, COMMENTED_SPEC)
    assert res["score"] == 0 and "no file named lstm.py" in res["output"]
    assert "my_lstm.py" in res["output"]


@NEEDS_BIN
def test_run_autograder_says_why_an_error_scored_zero(tmp_path):
    bad = tmp_path / "lstm.py"
    bad.write_text("import numpy as np\n\ndef loss_and_grads(params, inputs, targets, state)\n"
                   "    return 0\n")
    res, _ = _autograder(tmp_path / "a", {"lstm.py": bad}, COMMENTED_SPEC)
    # the same maximum as a passing submission: the error's own test, then the scored checks
    assert res["score"] == 0 and sum(t["max_score"] for t in res["tests"]) > 0
    assert "syntax error" in res["tests"][0]["output"]
    head = res["output"].splitlines()[2]  # after the title: the headline
    assert "verdict: error" in head and "could not be run (syntax): syntax error" in head and "lstm.py:3" in head
    # a spec the autograder cannot use is the staff's problem, and says what is wrong
    res, _ = _autograder(tmp_path / "b", {"lstm.py": REF / "lstm_functional.py"},
                         '[assignment]\nfile = "lstm.py"\n[feedbak]\nshow_fix = false\n')
    assert res["score"] == 0 and "autograder itself failed (exit 2)" in res["output"]
    assert "unknown key 'feedbak'" in res["output"] and "did you mean 'feedback'" in res["output"]
    res, _ = _autograder(tmp_path / "c", {"lstm.py": REF / "lstm_functional.py"},
                         '[assignment]\nfile = "lstm.py\n')
    assert res["score"] == 0 and "assignment.toml cannot be read" in res["output"]
    res, _ = _autograder(tmp_path / "d", {"lstm.py": REF / "lstm_functional.py"},
                         "[assignment]\nfile = 3\n")
    assert res["score"] == 0 and "assignment.file" in res["output"]


@NEEDS_BIN
def test_run_autograder_survives_a_crash_and_an_empty_submission(tmp_path):
    res, _ = _autograder(tmp_path / "a", {"model.c": ROOT / "reference/bugs/c/segfault.c"})
    assert res["score"] == 0 and "crash" in res["tests"][0]["output"]
    assert "could not be run (crash)" in res["output"]
    res, _ = _autograder(tmp_path / "b", {})
    assert res["score"] == 0 and "No .py, .ipynb, .c or .so file" in res["output"]


@NEEDS_BIN
def test_run_autograder_finds_the_model_among_helpers_and_refuses_to_guess(tmp_path):
    helper = tmp_path / "a_helpers.py"
    helper.write_text("def softmax(z):\n    return z\n")
    res, _ = _autograder(tmp_path / "a", {"a_helpers.py": helper, "rnn.py": REF / "rnn_functional.py"})
    assert res["tests"] and all(t["status"] == "passed" for t in res["tests"])
    res, _ = _autograder(tmp_path / "b", {"x.py": REF / "rnn_functional.py",
                                          "y.py": ZOO / "rnn_dwhy_prev_h.py"})
    assert res["score"] == 0 and "exactly one" in res["output"]


def _fake_bin(tmp_path, minor: int):
    """Stand-ins for what setup.sh runs on Gradescope (apt-get, curl, python3, uv), each
    logging its arguments; python3 runs its -c code in this Python with version 3.<minor>,
    so the script's own version test decides."""
    fake, log, template = tmp_path / "bin", tmp_path / "log", tmp_path / "venv-template"
    fake.mkdir()
    template.mkdir()

    def script(path, body):
        path.write_text(f'#!/bin/bash\necho "{path.name} $*" >> "{log}"\n' + body)
        path.chmod(0o755)

    # a venv as python3 -m venv or uv venv make it: python is this (3.11+) Python, pip and
    # bpttcheck only log what they are asked
    for name in ("pip", "bpttcheck"):
        script(template / name, "")
    (fake / "mkvenv").write_text(f'#!/bin/bash\nmkdir -p "$1/bin"\ncp {template}/* "$1/bin/"\n'
                                 f'ln -sf {sys.executable} "$1/bin/python"\n')
    (fake / "mkvenv").chmod(0o755)
    script(fake / "apt-get", "")
    script(fake / "python3", f'if [ "$1" = -c ]; then exec {sys.executable} -c "import sys; '
                             f'sys.version_info = (3, {minor}, 0); exec(sys.argv[1])" "$2"; fi\n'
                             f'if [ "$1 $2" = "-m venv" ]; then mkvenv "$3"; fi\n')
    uv = tmp_path / "uv-binary"
    script(uv, 'if [ "$1" = venv ]; then mkvenv "${@: -1}"; fi\n')
    # the installer curl fetches: puts uv where UV_UNMANAGED_INSTALL says
    script(fake / "curl", f"echo 'mkdir -p \"$UV_UNMANAGED_INSTALL\"; "
                          f"cp {uv} \"$UV_UNMANAGED_INSTALL/uv\"'\n")
    return fake, log


@pytest.mark.parametrize("minor", [10, 12])
def test_setup_sh_installs_a_python_of_at_least_3_11(tmp_path, minor):
    """Gradescope's image cannot be run here: the script's logic is, with stand-ins."""
    setup = DOCS / "gradescope" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(setup)]).returncode == 0
    fake, log = _fake_bin(tmp_path, minor)
    source = tmp_path / "source"
    source.mkdir()
    wheel = source / "bpttcheck-0.1.0-py3-none-any.whl"
    wheel.write_text("")
    env = dict(os.environ, PATH=f"{fake}:/usr/bin:/bin", SOURCE_DIR=str(source),
               VENV=str(tmp_path / "venv"), UV_DIR=str(tmp_path / "uv"))
    p = subprocess.run(["bash", str(setup)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    calls = log.read_text().splitlines()
    assert any(c.startswith("apt-get install") and "gcc" in c for c in calls)
    if minor >= 11:  # the system's Python is new enough
        assert any(c.startswith("python3 -m venv") for c in calls)
        assert not any(c.startswith(("curl", "uv-binary")) for c in calls)
    else:
        assert "uv-binary python install 3.11" in calls
        assert any(c.startswith("uv-binary venv --seed --python 3.11") for c in calls)
        assert not any(c.startswith("python3 -m venv") for c in calls)
    assert f"pip install -q {wheel}" in calls and "bpttcheck --version" in calls
    # no wheel and no BPTTCHECK_SOURCE: the build stops and says what to put where
    wheel.unlink()
    p = subprocess.run(["bash", str(setup)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "need exactly one" in p.stderr
    p = subprocess.run(["bash", str(setup)], env=dict(env, BPTTCHECK_SOURCE="bpttcheck==0.1.0"),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "pip install -q bpttcheck==0.1.0" in log.read_text()


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


def test_github_actions_install_step_installs_what_the_recipe_says(tmp_path):
    wf = (DOCS / "github-actions" / "bpttcheck.yml").read_text()
    script = _run_block(wf, "Install bpttcheck")
    default = re.search(r'^  BPTTCHECK_SOURCE: "(.*)"', wf, re.M).group(1)
    fake, log = tmp_path / "bin", tmp_path / "log"
    fake.mkdir()
    (fake / "python").write_text(f'#!/bin/bash\necho "python $*" >> "{log}"\n')
    (fake / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:/usr/bin:/bin", BPTTCHECK_SOURCE=default)
    (tmp_path / "tools").mkdir()

    def run(**extra):
        return subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    p = run()  # no wheel committed: the step fails and says what is missing
    assert p.returncode == 1 and "need exactly one" in p.stdout
    (tmp_path / "tools" / "bpttcheck-0.1.0-py3-none-any.whl").write_text("")
    assert run().returncode == 0
    assert "python -m pip install tools/bpttcheck-0.1.0-py3-none-any.whl" in log.read_text()
    assert run(BPTTCHECK_SOURCE="bpttcheck==0.1.0").returncode == 0
    assert "python -m pip install bpttcheck==0.1.0" in log.read_text()


def test_recipes_keep_the_final_secret_out_and_name_no_made_up_url():
    wf = (DOCS / "github-actions" / "bpttcheck.yml").read_text()
    # the workflow runs in the student's repository: it gets the feedback secret only, and
    # says that the final grade needs another one, held where students cannot read it
    assert set(re.findall(r"secrets\.(\w+)", wf)) == {"BPTTCHECK_FEEDBACK_SECRET"}
    assert "must not have the final secret" in wf and "bpttcheck grade" in wf
    for recipe in (wf, (DOCS / "gradescope" / "setup.sh").read_text()):
        for url in re.findall(r'git\+https://[^"\n]+', recipe):  # only as a pattern to fill in
            assert "<" in url and ">" in url, url
