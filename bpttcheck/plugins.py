"""The plugin registry: adapters and architectures found through entry points (see
hookspecs.py). Built-ins are listed in pyproject.toml like any third-party plugin; the
fallback below only serves a source checkout that was never installed."""
from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

BUILTIN = {
    "bpttcheck.adapters": {
        "karpathy": "bpttcheck.adapters.karpathy:KarpathyAdapter",
        "functional": "bpttcheck.adapters.functional:FunctionalAdapter",
        "split": "bpttcheck.adapters.functional:SplitAdapter",
        "c": "bpttcheck.adapters.c_abi:CAbiAdapter",
        "c-globals": "bpttcheck.adapters.c_globals:CGlobalsAdapter",
        "layers": "bpttcheck.adapters.layers:LayersAdapter",
    },
    "bpttcheck.architectures": {
        "rnn": "bpttcheck.oracle.rnn:ARCH",
        "lstm": "bpttcheck.oracle.lstm:ARCH",
        "gru": "bpttcheck.oracle.gru:ARCH",
    },
}


def _load(ref: str):
    mod, _, attr = ref.partition(":")
    return getattr(importlib.import_module(mod), attr)


@lru_cache(maxsize=None)
def _group(group: str) -> dict:
    found = {ep.name: ep.value for ep in entry_points(group=group)}
    refs = {**BUILTIN[group], **found} if not found.keys() >= BUILTIN[group].keys() else found
    return {name: _load(ref) for name, ref in refs.items()}


def adapters() -> dict:
    """name -> adapter class, highest priority first."""
    return dict(sorted(_group("bpttcheck.adapters").items(), key=lambda kv: -kv[1].priority))


def architectures() -> dict:
    return _group("bpttcheck.architectures")
