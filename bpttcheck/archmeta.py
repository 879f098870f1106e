"""What the worker may know about the built-in architectures: sizes, parameter and state names,
shapes. No reference computation lives here, so user code (which shares the worker's process)
never has the reference models within reach; bpttcheck/oracle/ builds on these."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Dims:
    T: int  # time steps
    X: int  # input vocabulary (one-hot width)
    H: int  # hidden units
    Y: int  # output classes


@dataclass(frozen=True)
class ArchMeta:
    name: str
    param_names: tuple[str, ...]
    state_names: tuple[str, ...]
    shapes: Callable[[Dims], dict[str, tuple[int, ...]]]


LSTM_GATES = ("f", "i", "g", "o")


def rnn_shapes(d: Dims) -> dict[str, tuple[int, ...]]:
    return {"Wxh": (d.H, d.X), "Whh": (d.H, d.H), "Why": (d.Y, d.H), "bh": (d.H,), "by": (d.Y,)}


def lstm_shapes(d: Dims) -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {f"W{k}": (d.H, d.H + d.X) for k in LSTM_GATES}
    s.update({f"b{k}": (d.H,) for k in LSTM_GATES})
    s.update({"Wy": (d.Y, d.H), "by": (d.Y,)})
    return s


def gru_shapes(d: Dims) -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {k: (d.H, d.H + d.X) for k in ("Wz", "Wr", "Wn")}
    s.update({k: (d.H,) for k in ("bz", "br", "bn")})
    s.update({"Wy": (d.Y, d.H), "by": (d.Y,)})
    return s


META = {
    "rnn": ArchMeta("rnn", ("Wxh", "Whh", "Why", "bh", "by"), ("h",), rnn_shapes),
    "lstm": ArchMeta("lstm", ("Wf", "Wi", "Wg", "Wo", "bf", "bi", "bg", "bo", "Wy", "by"),
                     ("h", "c"), lstm_shapes),
    "gru": ArchMeta("gru", ("Wz", "Wr", "Wn", "bz", "br", "bn", "Wy", "by"), ("h",), gru_shapes),
}


def meta(name: str):
    """Metadata of an architecture: a built-in's from here, a plugin's from its entry point
    (only that one is imported). KeyError for a name no plugin provides."""
    if name in META:
        return META[name]
    from bpttcheck.plugins import architecture
    return architecture(name)


def concat_weights(arch) -> tuple[str, ...]:
    """The weight matrices acting on the concatenation [h; x] (shape (H, H+X)): the gate
    matrices of a gated architecture, none for a plain RNN. Read from the shapes, so a
    plugin's architecture is laid out by the same rules."""
    probe = Dims(T=1, X=2, H=3, Y=7)  # H + X differs from H, X and Y
    return tuple(k for k, s in arch.shapes(probe).items() if s == (probe.H, probe.H + probe.X))


def without(arch, absent) -> ArchMeta:
    """``arch`` without the parameters the user's model lacks (``absent``, canonical names):
    what an adapter converts and reads back when the model has, say, no biases."""
    absent = set(absent)
    if not absent:
        return arch
    present = tuple(k for k in arch.param_names if k not in absent)
    full = arch.shapes
    return ArchMeta(arch.name, present, arch.state_names,
                    lambda d: {k: v for k, v in full(d).items() if k not in absent})
