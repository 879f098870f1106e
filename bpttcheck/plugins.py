"""The plugin registry: adapters and architectures found through entry points (see
hookspecs.py). Built-ins are listed in pyproject.toml like any third-party plugin; the
fallback below only serves a source checkout that was never installed.

Every plugin is checked when it is loaded: a class that does not import, lacks what
hookspecs.py requires, or an architecture that does not look like an Arch is a PluginError
that names the plugin and its entry point (exit 4), never an error blamed on the user's code."""
from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import sys
from functools import cache

from bpttcheck import hookspecs
from bpttcheck.errors import PluginError

ADAPTERS, ARCHITECTURES = "bpttcheck.adapters", "bpttcheck.architectures"

BUILTIN = {
    ADAPTERS: {
        "karpathy": "bpttcheck.adapters.karpathy:KarpathyAdapter",
        "functional": "bpttcheck.adapters.functional:FunctionalAdapter",
        "split": "bpttcheck.adapters.functional:SplitAdapter",
        "c": "bpttcheck.adapters.c_abi:CAbiAdapter",
        "c-globals": "bpttcheck.adapters.c_globals:CGlobalsAdapter",
        "layers": "bpttcheck.adapters.layers:LayersAdapter",
        "wildml": "bpttcheck.adapters.wildml:WildMLAdapter",
        "dlai-char": "bpttcheck.adapters.dlai_char:DlaiCharAdapter",
        "dlai": "bpttcheck.adapters.dlai:DlaiAdapter",
        "dlfs2": "bpttcheck.adapters.dlfs2:Dlfs2Adapter",
    },
    ARCHITECTURES: {
        "rnn": "bpttcheck.oracle.rnn:ARCH",
        "lstm": "bpttcheck.oracle.lstm:ARCH",
        "gru": "bpttcheck.oracle.gru:ARCH",
    },
}

# adapter class -> (name, entry-point value): whom to name when its detect() raises
_ORIGIN: dict[type, tuple[str, str]] = {}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _read_entry_points(group: str) -> list[tuple[str, str]] | None:
    """``importlib.metadata.entry_points(group=group)`` as (name, value) pairs, read from the
    entry_points.txt of the distributions in sys.path's folders the way importlib.metadata
    finds them (each folder's *.dist-info, then *.egg-info, in listing order; the first
    distribution of a name wins), without importing it: that import alone is about a tenth
    of the worker's start (benchmarks/RESULTS.md). None where the path holds anything else
    (a zip, an .egg) or another finder lists distributions: importlib.metadata reads those."""
    if any(hasattr(f, "find_distributions") and f is not importlib.machinery.PathFinder
           for f in sys.meta_path):
        return None
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    for root in sys.path:
        try:
            children = os.listdir(root or ".")
        except OSError:
            if os.path.exists(root or "."):
                return None  # a zip file on the path
            continue
        if os.path.basename(root).lower().endswith(".egg"):
            return None
        infos: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                name = _normalized(low.rpartition(".")[0].partition("-")[0])
                infos.setdefault(name, []).append(child)
        for name, dists in infos.items():
            for child in dists:
                if name in seen:
                    continue
                seen.add(name)
                try:
                    with open(os.path.join(root or ".", child, "entry_points.txt"),
                              encoding="utf-8") as f:
                        text = f.read()
                except OSError:
                    continue
                pairs = _section(text, group)
                if pairs is None:
                    return None
                found += pairs
    return found


def _section(text: str, group: str) -> list[tuple[str, str]] | None:
    """The ``name = value`` lines of section [group] of an entry_points.txt (importlib.metadata's
    reading: stripped lines, '#' comments); None for a line that is neither."""
    out, here = [], False
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            here = line.strip("[]") == group
        elif here:
            name, eq, value = line.partition("=")
            if not eq:
                return None
            out.append((name.strip(), value.strip()))
    return out


def entry_points(group: str) -> list[tuple[str, str]]:
    """(name, value) of every entry point of ``group`` installed."""
    pairs = None if "importlib.metadata" in sys.modules else _read_entry_points(group)
    if pairs is None:
        from importlib.metadata import entry_points as eps
        pairs = [(ep.name, ep.value) for ep in eps(group=group)]
    return pairs


@cache
def _refs(group: str) -> dict[str, str]:
    """name -> "module:attribute" of every plugin of ``group`` (nothing imported yet)."""
    found = dict(entry_points(group))
    refs = {**BUILTIN[group], **found} if not found.keys() >= BUILTIN[group].keys() else found
    # the built-ins first, in their own order (messages list them as rnn, lstm, gru)
    order = [n for n in BUILTIN[group] if n in refs] + sorted(n for n in refs
                                                             if n not in BUILTIN[group])
    return {n: refs[n] for n in order}


def _load(group: str, name: str, ref: str):
    mod, _, attr = ref.partition(":")
    try:
        obj = importlib.import_module(mod)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except Exception as e:
        raise PluginError(group, name, ref, f"could not be loaded: {type(e).__name__}: {e}") from e
    try:
        problems = (hookspecs.adapter_problems(obj) if group == ADAPTERS
                    else hookspecs.arch_problems(obj, name))
    except Exception as e:  # noqa: BLE001 - an attribute that raises when it is read
        problems = [f"reading its attributes raised {type(e).__name__}: {e}"]
    if problems:
        raise PluginError(group, name, ref, "does not fit bpttcheck's plugin interface "
                          "(bpttcheck/hookspecs.py): " + "; ".join(problems))
    return obj


@cache
def _group(group: str) -> dict:
    loaded = {name: _load(group, name, ref) for name, ref in _refs(group).items()}
    if group == ADAPTERS:
        _ORIGIN.update({cls: (name, _refs(group)[name]) for name, cls in loaded.items()})
    return loaded


def adapters() -> dict:
    """name -> adapter class, highest priority first."""
    return dict(sorted(_group(ADAPTERS).items(), key=lambda kv: -kv[1].priority))


def architectures() -> dict:
    """name -> Arch of every installed architecture (each one imported and checked)."""
    return _group(ARCHITECTURES)


def architecture_names() -> tuple[str, ...]:
    """The names --arch and a spec accept, without importing any architecture."""
    return tuple(_refs(ARCHITECTURES))


@cache
def architecture(name: str):
    """One architecture, imported and checked on its own (the worker asks for the one it
    needs, so the others' reference code never enters its process). KeyError if unknown."""
    return _load(ARCHITECTURES, name, _refs(ARCHITECTURES)[name])


def origin(cls) -> tuple[str, str]:
    """(entry-point name, value) an adapter class was registered under."""
    return _ORIGIN.get(cls, (getattr(cls, "name", cls.__name__), cls.__module__))


def detect(cls, module, path: str) -> bool:
    """``cls.detect(module, path)``; a third-party adapter whose detect() raises is a
    PluginError. A built-in's exception propagates: it can only come from the user's module
    (a module ``__getattr__`` that raises)."""
    try:
        return bool(cls.detect(module, path))
    except Exception as e:
        if cls.__module__.startswith("bpttcheck."):
            raise
        name, ref = origin(cls)
        raise PluginError(ADAPTERS, name, ref,
                          f"raised in detect(): {type(e).__name__}: {e}") from e


def unknown_arch(name: str) -> str:
    """The usage message for an architecture no plugin provides."""
    return (f"unknown architecture {name!r}; known: {', '.join(architecture_names())} "
            f"(more come from packages registering a {ARCHITECTURES!r} entry point)")
