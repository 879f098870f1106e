"""Recognising parameter names: the aliases people use for the canonical groups."""
from __future__ import annotations

import re

# canonical name -> lower-cased spellings seen in the wild (underscores removed before matching)
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "rnn": {
        "Wxh": ("wxh", "wx", "u", "wih", "winput", "whx"),  # whx: to-from order (h from x)
        "Whh": ("whh", "wh", "w", "wrec", "whhh"),
        "Why": ("why", "wy", "v", "who", "wv", "wout", "wyh"),
        "bh": ("bh", "bhh", "b", "bhidden"),
        "by": ("by", "c", "bo", "bv", "bout"),
    },
    "lstm": {
        "Wf": ("wf", "wforget"), "Wi": ("wi", "winput"), "Wg": ("wg", "wc", "wcc", "wcand", "wcandidate"),
        "Wo": ("wo", "woutput"), "bf": ("bf",), "bi": ("bi",), "bg": ("bg", "bc", "bcc"), "bo": ("bo",),
        "Wy": ("wy", "wv", "why", "v", "wout", "wyh"), "by": ("by", "bv", "bout"),
    },
    "gru": {
        "Wz": ("wz", "wu", "wupdate"), "Wr": ("wr", "wreset"), "Wn": ("wn", "wh", "wcand", "wc"),
        "bz": ("bz", "bu"), "br": ("br",), "bn": ("bn", "bh", "bc"),
        "Wy": ("wy", "wv", "why", "v", "wout", "wyh"), "by": ("by", "bv", "bout"),
    },
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def aliases(arch: str) -> dict[str, tuple[str, ...]]:
    """The spellings of each group of ``arch``: the table above for a built-in; for a plugin's
    architecture its own ``aliases`` mapping if it has one, else its parameter names only."""
    if arch in ALIASES:
        return ALIASES[arch]
    from bpttcheck.archmeta import meta
    found = meta(arch)
    own = getattr(found, "aliases", None) or {}
    return {k: tuple(_norm(a) for a in own.get(k, ())) for k in found.param_names}


def canonical_for(arch: str, name: str) -> str | None:
    """The canonical group a user's name stands for, or None."""
    n = _norm(name)
    for canon, spellings in aliases(arch).items():
        if n == canon.lower() or n in spellings:
            return canon
    return None


def strip_grad_prefix(name: str) -> str | None:
    """'dWxh' -> 'Wxh', 'd_W_f' -> 'W_f', 'grad_Wf' -> 'Wf'; None if no such prefix."""
    for p in ("grad_", "d_", "d"):
        if name.startswith(p) and len(name) > len(p):
            return name[len(p):]
    return None


def guess_arch(names) -> str | None:
    """Which architecture a set of parameter names belongs to, when it is unambiguous."""
    canon = {a: {canonical_for(a, n) for n in names} - {None} for a in ALIASES}
    if {"Wf", "Wi", "Wo"} <= canon["lstm"]:
        return "lstm"
    if {"Wz", "Wr"} <= canon["gru"]:
        return "gru"
    if {"Wxh", "Whh"} <= canon["rnn"]:
        return "rnn"
    return None
