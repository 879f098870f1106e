"""Loading a file the way Python (or Jupyter) would: sys.argv, sys.path, packages, Python 2,
notebooks. Each test runs a real worker on a small model built from the reference RNN."""
import json
from dataclasses import replace

import pytest

from bpttcheck.check.engine import Options, check
from bpttcheck.sandbox.limits import Limits
from conftest import REF

pytestmark = pytest.mark.slow

MODEL = (REF / "rnn_functional.py").read_text()


def run(path, run_from=None):
    return check(str(path), Options(limits=replace(Limits(), run_from=run_from and str(run_from))))


def model_with(head: str = "", softmax_from: str | None = None) -> str:
    """The reference functional RNN, with ``head`` at the top and, optionally, its softmax
    imported from elsewhere instead of defined."""
    src = MODEL.replace("import numpy as np\n", "import numpy as np\n" + head, 1)
    if softmax_from:
        start = src.index("def softmax(z):")
        end = src.index("def loss_and_grads")
        src = src[:start] + softmax_from + "\n\n\n" + src[end:]
    return src


SOFTMAX = "import numpy as np\n\n\ndef softmax(z):\n    e = np.exp(z - np.max(z))\n    return e / np.sum(e)\n"


def test_sys_argv_is_the_users_file(tmp_path):
    # the common char-rnn line: a data file from the command line if one was given
    p = tmp_path / "model.py"
    p.write_text(model_with("import sys\nassert len(sys.argv) == 1 and sys.argv[0].endswith('model.py'), sys.argv\n"
                            "data = open(sys.argv[1]).read() if len(sys.argv) > 1 else ''\n"))
    r = run(p)
    assert r.verdict == "pass", r.error


def test_a_module_beside_the_model_that_shadows_the_standard_library(tmp_path):
    (tmp_path / "copy.py").write_text("raise RuntimeError('the training script, not a library')\n")
    (tmp_path / "random.py").write_text("X = 1\n")
    p = tmp_path / "model.py"
    p.write_text(MODEL)
    r = run(p)
    assert r.verdict == "pass", r.error


def test_a_file_in_a_package_is_imported_as_pkg_module(tmp_path):
    pkg = tmp_path / "hipster"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "functions.py").write_text(SOFTMAX)
    (pkg / "layers.py").write_text(model_with(
        "from hipster.functions import softmax as absolute_softmax\n",
        softmax_from="from .functions import softmax"))
    r = run(pkg / "layers.py")
    assert r.verdict == "pass", r.error


def test_the_repository_root_it_is_run_from_is_on_the_path(tmp_path):
    # Deep Learning from Scratch 2: `from common.functions import softmax`, run from the root
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "functions.py").write_text(SOFTMAX)
    (tmp_path / "ch06").mkdir()
    p = tmp_path / "ch06" / "model.py"
    p.write_text(model_with(softmax_from="from common.functions import softmax"))
    assert run(p, run_from=tmp_path).verdict == "pass"
    # run from elsewhere, the package is out of reach, as for `python ch06/model.py`
    r = run(p)
    assert r.verdict == "error" and r.error.kind == "import"
    assert "common" in r.error.message


def test_only_the_sources_the_file_imports_are_staged_from_the_root(tmp_path):
    from bpttcheck.sandbox.staging import copy_submission
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "functions.py").write_text(SOFTMAX)
    (tmp_path / "unrelated.py").write_text("X = 1\n")
    (tmp_path / "big.bin").write_bytes(b"0" * 1000)
    (tmp_path / "ch06").mkdir()
    p = tmp_path / "ch06" / "model.py"
    p.write_text("from common.functions import softmax\n")
    (tmp_path / "ch06" / "input.txt").write_text("hello")
    dst = tmp_path / "stage"
    target = copy_submission(str(p), str(dst), run_from=str(tmp_path))
    staged = sorted(str(q.relative_to(dst)) for q in dst.rglob("*") if q.is_file())
    assert staged == ["ch06/input.txt", "ch06/model.py", "common/functions.py"]
    assert target == str(dst / "ch06" / "model.py")


@pytest.mark.parametrize("line, what", [
    ("    print 'loss', loss", "print statement"),
    ("    except ValueError, e:", "except E, e:"),
])
def test_python_2_is_recognised(tmp_path, line, what):
    src = model_with().replace("    # backward\n", "    # backward\n" + (
        line + "\n" if "print" in line else "    try:\n        pass\n" + line + "\n        pass\n"))
    p = tmp_path / "model.py"
    p.write_text(src)
    r = run(p)
    assert r.verdict == "error" and r.error.kind == "syntax"
    assert "Python 2" in r.error.message and "2to3" in r.error.message and what in r.error.message
    n = src.splitlines().index(line) + 1
    assert r.error.line.startswith(f"model.py:{n}: ")


def test_a_python_2_name_says_so(tmp_path):
    p = tmp_path / "model.py"
    p.write_text(model_with().replace("for t in range(T):", "for t in xrange(T):", 1))
    r = run(p)
    assert r.verdict == "error" and "xrange" in r.error.message and "Python 2" in r.error.message


def test_a_real_syntax_error_is_not_called_python_2(tmp_path):
    p = tmp_path / "model.py"
    p.write_text(model_with().replace("loss = 0.0", "loss = (0.0", 1))
    r = run(p)
    assert r.error.kind == "syntax" and "Python 2" not in r.error.message


# ---------------------------------------------------------------- notebooks

def notebook(cells: list[tuple[str, str]]) -> str:
    import nbformat
    nb = nbformat.v4.new_notebook()
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_code_cell(src) if kind == "code" else
                        nbformat.v4.new_markdown_cell(src))
    return nbformat.writes(nb)


def test_a_notebook_is_checked_cell_by_cell(tmp_path):
    body = MODEL.split("import numpy as np\n", 1)[1]
    p = tmp_path / "Assignment.ipynb"
    p.write_text(notebook([
        ("markdown", "# Building your RNN"),
        ("code", "%matplotlib inline\nimport numpy as np\n!pip install nothing"),
        ("code", "import matplotlib.pyplot as plt"),  # may be missing: set aside, not fatal
        ("code", body),
        ("code", "from public_tests import *\nloss_and_grads_test(loss_and_grads)"),
        ("code", "plt.plot([1, 2, 3])\nplt.show()"),
        ("code", "%%bash\nls -l"),
        ("code", "for it in range(1000000):\n    loss, grads, h = loss_and_grads(P, xs, ys, h)"),
    ]))
    r = run(p)
    assert r.verdict == "pass", (r.error, [c.message for c in r.checks if c.status == "fail"])
    evidence = " ".join(n.evidence for n in r.notes)
    assert "public_tests" in evidence and "%%bash" in evidence and "!pip" in evidence
    assert "plt.plot" in evidence  # left out: it plots
    assert any(n.id == "load.skipped-loop" and "cell" in n.evidence for n in r.notes)


def test_a_notebook_error_names_the_cell_and_line(tmp_path):
    body = MODEL.split("import numpy as np\n", 1)[1].replace(
        "    # backward\n", "    # backward\n    raise ValueError('shapes do not align')\n")
    p = tmp_path / "Assignment.ipynb"
    p.write_text(notebook([("code", "import numpy as np"), ("code", body)]))
    r = run(p)
    assert r.verdict == "error" and r.error.kind == "exception"
    n = body.splitlines().index("    raise ValueError('shapes do not align')") + 1
    assert r.error.line.startswith(f"Assignment.ipynb#cell2:{n}: raise ValueError")


def test_an_unfinished_exercise_in_a_notebook_is_not_implemented(tmp_path):
    p = tmp_path / "Assignment.ipynb"
    p.write_text(notebook([("code", "import numpy as np\nBPTTCHECK = {'arch': 'rnn'}"), (
        "code", "def loss_and_grads(params, inputs, targets, state):\n"
                "    ### START CODE HERE ###\n    loss = None\n    grads = None\n"
                "    ### END CODE HERE ###\n    return None")]))
    r = run(p)
    assert r.verdict == "error" and r.error.kind == "not-implemented"
    # the cell and the line of the exercise's first blank
    assert r.error.line == "Assignment.ipynb#cell2:2: ### START CODE HERE ###", r.error.line


def test_a_broken_notebook_file_is_a_clear_error(tmp_path):
    p = tmp_path / "Broken.ipynb"
    p.write_text(json.dumps({"cells": "not a list"})[:20])
    r = run(p)
    assert r.verdict == "error" and r.error.kind == "syntax"
    assert "not a readable Jupyter notebook" in r.error.message


def test_a_python_2_module_the_code_imports_is_named(tmp_path):
    (tmp_path / "utils.py").write_text("import numpy as np\n\ndef softmax(x):\n    print 'hi'\n    return x\n")
    p = tmp_path / "model.py"
    p.write_text(model_with("from utils import softmax as unused\n"))
    r = run(p)
    assert r.verdict == "error" and r.error.kind == "syntax"
    assert "utils.py, which your code imports, is Python 2 code" in r.error.message
    assert "line 4" in r.error.message


def test_a_file_name_with_dots_is_not_a_package_path(tmp_path):
    p = tmp_path / "alice..py"
    p.write_text(MODEL)
    assert run(p).verdict == "pass"
    q = tmp_path / "model.v2.py"
    q.write_text(MODEL)
    assert run(q).verdict == "pass"


NOTEBOOK_STYLE = '''
import numpy as np
params = tuple(np.ones((30, 40)) for _ in range(4))

def forward(inputs, h_prev, C_prev, p):
    assert h_prev.shape == (30, 1)
    return 0.0

def backward(z, f, i, outputs, targets, p=params):
    loss, grads = 0.0, {}
    return loss, grads
'''


def test_a_forward_of_another_signature_is_not_taken_for_the_split_style(tmp_path):
    """forward(inputs, h_prev, C_prev, p), as notebooks write it: calling it as
    forward(params, inputs, targets, state) would blame the user's assert for our guess. It is
    an interface error that lists the file's functions, a default of arrays shown as `...`."""
    p = tmp_path / "nb.py"
    p.write_text(NOTEBOOK_STYLE)
    r = check(str(p), Options(seed=0))
    assert r.verdict == "error" and r.error.kind == "interface", r.error
    assert "backward(z, f, i, outputs, targets, p=...)" in r.error.message
    assert "array(" not in r.error.message and len(r.error.message) < 2000
    # the split style's own signature is still found
    split = tmp_path / "split.py"
    split.write_text((REF / "lstm_split.py").read_text())
    assert check(str(split), Options(seed=0)).verdict == "pass"
