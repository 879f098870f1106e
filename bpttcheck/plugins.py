"""The plugin registry: adapters and architectures found through entry points (see
hookspecs.py). Built-ins are listed in pyproject.toml like any third-party plugin; the
fallback below only serves a source checkout that was never installed.

Every plugin is checked when it is loaded: a class that does not import, lacks what
hookspecs.py requires, or an architecture that does not look like an Arch is a PluginError
that names the plugin and its entry point (exit 4), never an error blamed on the user's code."""
from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

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


@cache
def _refs(group: str) -> dict[str, str]:
    """name -> "module:attribute" of every plugin of ``group`` (nothing imported yet)."""
    found = {ep.name: ep.value for ep in entry_points(group=group)}
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
