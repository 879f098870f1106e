"""Plugins through real entry points: a temporary distribution (a *.dist-info folder with an
entry_points.txt, next to its modules) on PYTHONPATH, run through the command line in a
subprocess, so importlib.metadata finds it in the checker and in the worker alike."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from bpttcheck import hookspecs, plugins
from bpttcheck.errors import ErrorKind, PluginError, UserCodeError

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "reference" / "python"
slow = pytest.mark.slow

# a plain RNN under other names (U, W, V, b, c), built from the oracle's pieces
ELMAN = '''
from bpttcheck.oracle import rnn
from bpttcheck.oracle.common import Arch

RENAME = {"U": "Wxh", "W": "Whh", "V": "Why", "b": "bh", "c": "by"}
BACK = {v: k for k, v in RENAME.items()}


def shapes(d):
    s = rnn.shapes(d)
    return {k: s[v] for k, v in RENAME.items()}


def run(P, xs, ys, state, bugs=frozenset(), reduction="sum"):
    t = rnn.run({v: P[k] for k, v in RENAME.items()}, xs, ys, state, bugs, reduction)
    t.grads = {BACK[k]: g for k, g in t.grads.items()}
    t.contrib = {BACK[k]: g for k, g in t.contrib.items()}
    return t


ARCH = Arch("elman", tuple(RENAME), ("h",), shapes, run,
            gate_groups=(("U", "W", "b"), ("V", "c")))
'''

BROKEN = '''
class NoCall:  # an adapter without call() or describe()
    name = "nocall"
    priority = 99
    kind = "sequence"
    language = "python"
    fixed_sizes = "none"
    poisoned_buffers = False
    entry = "f"

    @classmethod
    def detect(cls, module, path):
        return False


class BadDetect(NoCall):
    name = "baddetect"

    @classmethod
    def detect(cls, module, path):
        raise RuntimeError("the plugin's own bug")

    def prepare(self, dims):
        pass

    def describe(self):
        return {}

    def call(self, *args):
        return None


class NoRun:  # an architecture without run()
    name = "norun"
    param_names = ("A",)
    state_names = ("h",)

    @staticmethod
    def shapes(d):
        return {"A": (d.H, d.H)}


NORUN = NoRun()
'''


def make_dist(site: Path, entry_points: dict[str, dict[str, str]], modules: dict[str, str]):
    """An installed-looking distribution in ``site``: its modules and a dist-info folder."""
    info = site / "bpttcheck_testplugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bpttcheck-testplugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in entry_points.items()))
    for name, src in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(src))
    return site


def cli(site: Path, *args: str):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    return subprocess.run([sys.executable, "-m", "bpttcheck", *args], capture_output=True,
                          text=True, timeout=180, env=env, check=False)


def elman_model(tmp_path: Path, bug: bool = False) -> str:
    src = (REF / "rnn_functional.py").read_text()
    src = src.replace('BPTTCHECK = {"arch": "rnn"}', "")
    for old, new in (("Wxh", "U"), ("Whh", "W"), ("Why", "V"), ("bh", "b"), ("by", "c")):
        src = src.replace(f'"{old}"', f'"{new}"')
    if bug:  # dW from the current state: the RNN's dwhh-uses-current-h, here in group W
        src = src.replace("dWhh += np.outer(da, hs[t])", "dWhh += np.outer(da, hs[t + 1])")
    path = tmp_path / ("elman_bug.py" if bug else "elman.py")
    path.write_text(src)
    return str(path)


# ---------------------------------------------------------------- the registry itself

def test_builtin_registry_is_what_pyproject_registers():
    with open(ROOT / "pyproject.toml", "rb") as f:
        eps = tomllib.load(f)["project"]["entry-points"]
    assert {g: dict(v) for g, v in eps.items() if g.startswith("bpttcheck.")} == plugins.BUILTIN


def test_every_builtin_fits_the_plugin_interface():
    for cls in plugins.adapters().values():
        assert hookspecs.adapter_problems(cls) == [], cls
    for name, arch in plugins.architectures().items():
        assert hookspecs.arch_problems(arch, name) == [], name


def test_interface_problems_are_named():
    class Half:
        name, priority, kind = "half", 1, "units"
    problems = hookspecs.adapter_problems(Half)
    assert any("run_unit" in p for p in problems) and any("language" in p for p in problems)
    assert hookspecs.adapter_problems(object()) == ["it is a object, not a class"]
    arch = plugins.architecture("rnn")
    assert hookspecs.arch_problems(arch, "elman") == [
        "its name is 'rnn', not the entry point's 'elman'"]


def test_error_kinds_keep_their_strings():
    assert {k.value for k in ErrorKind} >= {
        "crash", "timeout", "exception", "interface", "not-implemented", "exit", "memory",
        "syntax", "import", "compile", "sanitizer", "forbidden", "missing", "ambiguous",
        "internal", "plugin"}
    e = UserCodeError("timeout", "slow")
    assert e.kind == "timeout" and e.kind is ErrorKind.TIMEOUT and json.dumps(e.kind) == '"timeout"'
    p = PluginError("bpttcheck.adapters", "x", "mod:Cls", "could not be loaded: boom")
    assert p.exit_code == 4 and "'x' (mod:Cls)" in str(p)


# ---------------------------------------------------------------- broken plugins: exit 4

@slow
@pytest.mark.parametrize("entry, value, says", [
    ("missing", "bpttcheck_no_such_module:Adapter", "ModuleNotFoundError"),
    ("nocall", "bpttcheck_broken:NoCall", "no method call()"),
    ("baddetect", "bpttcheck_broken:BadDetect", "raised in detect(): RuntimeError"),
], ids=["import-error", "missing-method", "detect-raises"])
def test_a_broken_adapter_plugin_is_a_plugin_error_not_the_students(tmp_path, entry, value, says):
    site = make_dist(tmp_path / "site", {"bpttcheck.adapters": {entry: value}},
                     {"bpttcheck_broken": BROKEN})
    out = cli(site, "run", str(REF / "rnn_functional.py"), "--json", str(tmp_path / "r.json"))
    assert out.returncode == 4, out.stdout + out.stderr
    assert f"'{entry}' ({value})" in out.stderr and says in out.stderr, out.stderr
    assert "plugin error" in out.stderr
    assert "exit status" not in out.stderr + out.stdout and "os._exit" not in out.stderr


@slow
def test_a_broken_architecture_plugin_is_a_plugin_error(tmp_path):
    site = make_dist(tmp_path / "site", {"bpttcheck.architectures": {
        "norun": "bpttcheck_broken:NORUN"}}, {"bpttcheck_broken": BROKEN})
    out = cli(site, "run", str(REF / "rnn_functional.py"))
    assert out.returncode == 4, out.stdout + out.stderr
    assert "'norun' (bpttcheck_broken:NORUN)" in out.stderr and "run()" in out.stderr


# ---------------------------------------------------------------- a plugin architecture

@slow
def test_a_plugin_architecture_is_checked_end_to_end(tmp_path):
    site = make_dist(tmp_path / "site", {"bpttcheck.architectures": {
        "elman": "bpttcheck_elman:ARCH"}}, {"bpttcheck_elman": ELMAN})
    good = cli(site, "run", elman_model(tmp_path), "--arch", "elman", "--json", "-")
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads(good.stdout)
    assert report["arch"] == "elman" and report["style"] == "functional"
    assert {g["name"] for g in report["groups"]} == {"U", "W", "V", "b", "c"}

    spec = tmp_path / "a.toml"
    spec.write_text('[assignment]\narch = "elman"\n')
    bad = cli(site, "run", elman_model(tmp_path, bug=True), "--spec", str(spec), "--json", "-")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    failing = {g["name"] for g in json.loads(bad.stdout)["groups"] if g["status"] == "fail"}
    assert "W" in failing and "V" not in failing


@slow
def test_an_unknown_architecture_is_a_usage_error_listing_the_known_ones(tmp_path):
    site = make_dist(tmp_path / "site", {"bpttcheck.architectures": {
        "elman": "bpttcheck_elman:ARCH"}}, {"bpttcheck_elman": ELMAN})
    out = cli(site, "run", str(REF / "rnn_functional.py"), "--arch", "jordan")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "'jordan'" in out.stderr and "rnn, lstm, gru" in out.stderr and "elman" in out.stderr
    spec = tmp_path / "a.toml"
    spec.write_text('[assignment]\narch = "jordan"\n')
    out = cli(site, "run", str(REF / "rnn_functional.py"), "--spec", str(spec))
    assert out.returncode == 2 and "'jordan'" in out.stderr and "elman" in out.stderr


def test_a_spec_accepts_only_installed_architectures(tmp_path):
    from bpttcheck.errors import SpecError
    from bpttcheck.spec import load_spec
    spec = tmp_path / "a.toml"
    spec.write_text('[assignment]\narch = "gru"\n')
    assert load_spec(str(spec)).assignment.arch == "gru"
    spec.write_text('[assignment]\narch = "jordan"\n')
    with pytest.raises(SpecError, match="unknown architecture 'jordan'; known: rnn, lstm, gru"):
        load_spec(str(spec))
