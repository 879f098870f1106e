"""plugins.py reads the entry points without importing importlib.metadata (a tenth of the
worker's start): it must find exactly what importlib.metadata finds, or leave it to it."""
from __future__ import annotations

import sys
import zipfile

from bpttcheck import plugins


def _fresh(code: str, *path: str):
    """What ``code`` prints as JSON, run in a fresh interpreter (as a worker starts: nothing
    has touched the finders; dask, imported by an earlier test in this process, brings the
    importlib_metadata backport, whose finder takes over from the standard one, and then the
    reader rightly leaves the work to importlib.metadata: tested below), with ``path`` first
    on sys.path."""
    import json
    import subprocess
    pre = f"import sys; sys.path[:0] = {list(path)!r}; "
    out = subprocess.run([sys.executable, "-c", pre + code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


READ = ("import json, importlib.metadata as m; from bpttcheck import plugins; "
        "print(json.dumps({g: [plugins._read_entry_points(g), "
        "[[e.name, e.value] for e in m.entry_points(group=g)]] "
        "for g in (plugins.ADAPTERS, plugins.ARCHITECTURES)}))")


def _dist(folder, dirname: str, text: str | None) -> None:
    d = folder / dirname
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dirname.split('-')[0]}\n"
                                f"Version: 1.0\n")
    if text is not None:
        (d / "entry_points.txt").write_text(text)


def test_the_installed_plugins_are_read_as_importlib_metadata_reads_them():
    for mine, theirs in _fresh(READ).values():
        assert mine == theirs and mine


def test_plugins_on_the_path_are_read_as_importlib_metadata_reads_them(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _dist(a, "Foo.Bar-1.0.dist-info", "# a comment\n\n[bpttcheck.adapters]\n  one = foo:One  \n"
          "[console_scripts]\nfoo = foo:main\n[bpttcheck.adapters]\ntwo=foo:Two\n")
    _dist(a, "plain_thing-2.0.egg-info", "[bpttcheck.architectures]\nrnn2 = thing:ARCH\n")
    _dist(a, "empty-1.0.dist-info", None)  # no entry points at all
    # the same distribution again, later on the path (another spelling): importlib.metadata
    # takes the first one only
    _dist(b, "foo_bar-2.0.dist-info", "[bpttcheck.adapters]\nthree = foo:Three\n")
    _dist(b, "other-1.0.dist-info", "[bpttcheck.adapters]\none = other:One\n")
    got = _fresh(READ, str(a), str(tmp_path / "missing"), str(b))
    for mine, theirs in got.values():
        assert mine == theirs
    adapters = got[plugins.ADAPTERS][0]
    assert ["one", "foo:One"] in adapters and ["three", "foo:Three"] not in adapters


def test_what_it_cannot_read_is_left_to_importlib_metadata(tmp_path, monkeypatch):
    a = tmp_path / "a"
    _dist(a, "broken-1.0.dist-info", "[bpttcheck.adapters]\nno equals sign here\n")
    monkeypatch.setattr(sys, "path", [str(a), *sys.path])
    assert plugins._read_entry_points(plugins.ADAPTERS) is None
    z = tmp_path / "plugins.zip"  # a zip on the path: importlib.metadata looks inside
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\n")
        f.writestr("zipped-1.0.dist-info/entry_points.txt", "[bpttcheck.adapters]\nz = zz:Z\n")
    monkeypatch.setattr(sys, "path", [str(z), *sys.path[1:]])
    assert plugins._read_entry_points(plugins.ADAPTERS) is None
    assert ("z", "zz:Z") in plugins.entry_points(plugins.ADAPTERS)  # found all the same


def test_a_finder_that_lists_distributions_leaves_the_work_to_importlib_metadata(monkeypatch):
    class Lister:
        @staticmethod
        def find_distributions(context=None):
            return iter(())

        @staticmethod
        def find_spec(*a, **k):
            return None

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Lister])
    assert plugins._read_entry_points(plugins.ADAPTERS) is None
    assert plugins.entry_points(plugins.ADAPTERS)  # the built-in adapters, all the same
