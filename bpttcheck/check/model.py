"""Declared model facts: what an adapter says the user's model is, where it differs from the
canonical one without being a bug (CONTRACT §7 "model facts"):

- ``absent``: parameters the model does not have (WildML has no biases, a min-char LSTM without
  bias vectors, an output layer without ``by``). They are fixed at zero, so the reference
  computes the user's model exactly, and they are left out of the groups and the checks;
- ``state: "zeros"``: the model always starts from h = 0 (it takes no initial state);
- ``same_xy``: the output size is the vocabulary (Y = X).

The facts travel with the architecture: :func:`declared` wraps the Arch so that every case made
from it (make_case) and every reference run honours them, wherever a check builds its case.
Inferred variants (matching the forward loss against candidates) belong beside this, not here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpttcheck.archmeta import Dims
from bpttcheck.oracle.common import Arch, Trace


@dataclass(frozen=True)
class ModelFacts:
    absent: tuple[str, ...] = ()
    zero_state: bool = False
    same_xy: bool = False

    @classmethod
    def from_info(cls, d: dict | None, param_names) -> ModelFacts:
        d = d or {}
        absent = tuple(k for k in param_names if k in set(d.get("absent") or ()))
        return cls(absent=absent, zero_state=d.get("state") == "zeros",
                   same_xy=bool(d.get("same_xy")))

    def __bool__(self) -> bool:
        return bool(self.absent or self.zero_state or self.same_xy)

    def fit(self, dims: Dims) -> Dims:
        """The sizes a case of this model can have."""
        return Dims(T=dims.T, X=dims.X, H=dims.H, Y=dims.X) if self.same_xy else dims

    def describe(self, user_name=lambda k: k) -> str:
        """In words, for the model.variant note."""
        said = []
        names = _join([user_name(k) for k in self.absent]) if self.absent else ""
        if len(self.absent) == 1:
            kind = "bias" if self.absent[0].startswith("b") else "parameter"
            said.append(f"has no {kind} {names}")
        elif self.absent:
            biases = all(k.startswith("b") for k in self.absent)
            said.append("has no biases" if biases else f"has no {names}")
        if self.zero_state:
            said.append("always starts from h = 0")
        if self.same_xy:
            said.append("predicts over its input vocabulary (output size Y = X)")
        text = "your model " + _join(said)
        if len(self.absent) == 1:
            text += "; it was fixed at zero and is not checked"
        elif self.absent:
            text += f"; {names} were fixed at zero and are not checked"
        used = [w for w, on in (("h0 = 0", self.zero_state), ("Y = X", self.same_xy)) if on]
        if used:
            text += ("; " if not self.absent else ", and ") + "the cases use " + _join(used)
        return text


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True)
class DeclaredArch(Arch):
    """An Arch restricted to the user's model: absent parameters are not parameters (no group,
    no check, no finite-difference direction) and enter the reference as zeros."""

    facts: ModelFacts = ModelFacts()
    base: Arch | None = None


def declared(arch: Arch, facts: ModelFacts) -> Arch:
    if not facts:
        return arch
    present = tuple(k for k in arch.param_names if k not in facts.absent)

    def shapes(d: Dims) -> dict[str, tuple[int, ...]]:
        full = arch.shapes(d)
        return {k: full[k] for k in present}

    def run(P, xs, ys, state, bugs=frozenset(), reduction="sum", **taps) -> Trace:
        H = len(state[0])
        if facts.zero_state:
            state = tuple(np.zeros_like(s) for s in state)
        full = dict(P)
        if facts.absent:
            dt = next(iter(P.values())).dtype
            want = arch.shapes(_dims_of(arch, P, H))
            full.update({k: np.zeros(want[k], dtype=dt) for k in facts.absent})
        tr = arch.run(full, xs, ys, state, bugs=bugs, reduction=reduction, **taps)
        tr.keep_only(present)
        return tr

    groups = tuple(g for g in (tuple(k for k in grp if k in present)
                               for grp in getattr(arch, "gate_groups", ())) if g)
    return DeclaredArch(name=arch.name, param_names=present, state_names=arch.state_names,
                        shapes=shapes, run=run, gate_groups=groups, facts=facts, base=arch,
                        variants=arch.variants)


# sizes no real model has, so each axis of a parameter says which size it is
_PROBE = Dims(T=1, X=1009, H=1013, Y=1019)


def _dims_of(arch: Arch, P: dict, H: int) -> Dims:
    """X and Y read off the present parameters' shapes (the absent ones need them)."""
    X = Y = None
    probe = arch.shapes(_PROBE)
    for k, v in P.items():
        for want, got in zip(probe.get(k, ()), np.shape(v), strict=False):
            if want == _PROBE.X:
                X = got
            elif want == _PROBE.X + _PROBE.H:
                X = got - H
            elif want == _PROBE.Y:
                Y = got
    return Dims(T=1, X=X if X is not None else 1, H=H, Y=Y if Y is not None else 1)


def facts_of(arch) -> ModelFacts:
    return getattr(arch, "facts", None) or ModelFacts()
