"""How a user's arrays are laid out relative to the canonical ones (CONTRACT §1): names,
column vectors, [h; x] or [x; h] concatenation, transposed x @ W storage, and stacked gate
matrices with a gate order. Conversion both ways; the semantics never change."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from bpttcheck.archmeta import LSTM_GATES, concat_weights
from bpttcheck.errors import InterfaceError

GATE_LETTERS = {"lstm": "".join(LSTM_GATES), "gru": "zrn"}
LETTER_SYNONYMS = {"c": "g", "u": "z", "h": "n"}  # Wc is the candidate gate, Wu the update gate


def gate_order(arch: str, order: str) -> str:
    """Normalise a declared gate order such as 'ifco' to canonical letters ('ifgo')."""
    norm = "".join(LETTER_SYNONYMS.get(ch, ch) for ch in order.lower())
    if sorted(norm) != sorted(GATE_LETTERS[arch]):
        raise InterfaceError(
            f"gate order {order!r} is not a permutation of {GATE_LETTERS[arch]!r} for {arch}")
    return norm


@dataclass(frozen=True)
class Layout:
    names: dict[str, str] = field(default_factory=dict)  # canonical -> user key
    column: bool = False  # biases and states stored as (H, 1)
    concat: str = "hx"  # gate matrices act on [h; x] ("hx") or [x; h] ("xh")
    transposed: bool = False  # user stores W.T and computes x @ W
    stacked: str | None = None  # gate order of one stacked (nG*H, H+X) matrix, e.g. "ifgo"
    stacked_names: tuple[str, str] = ("W", "b")
    split: bool = False  # each gate's W as Wh<g> (H, H) and Wx<g> (H, X) instead of (H, H+X)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        d = dict(d)
        d["stacked_names"] = tuple(d.get("stacked_names", ("W", "b")))
        return cls(**d)

    def describe(self) -> str:
        parts = [f"concatenation [{self.concat[0]}; {self.concat[1]}]"]
        if self.stacked:
            parts.append(f"stacked gates in order {self.stacked}")
        if self.column:
            parts.append("column-vector biases and states")
        if self.transposed:
            parts.append("transposed (x @ W) weights")
        if self.split:
            parts.append("split input/recurrent matrices")
        return ", ".join(parts)

    # ---------------------------------------------------------------- canonical -> user

    def _weight_to_user(self, W: np.ndarray, H: int) -> np.ndarray:
        if self.concat == "xh" and not self.split and W.shape[1] > H and W.shape[0] == H:
            W = np.concatenate([W[:, H:], W[:, :H]], axis=1)  # (H, X+H)
        return W

    def params_to_user(self, arch, P: dict[str, np.ndarray], H: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        conv = {}
        gates = concat_weights(arch)
        for k, v in P.items():
            v = np.array(v, dtype=np.float64)
            if k in gates:
                v = self._weight_to_user(v, H)
            conv[k] = v
        if self.split:
            for k in _gate_weights(arch, conv):
                W = conv.pop(k)  # canonical [h; x] columns
                conv["Wh" + k[1:]], conv["Wx" + k[1:]] = W[:, :H], W[:, H:]
        if self.stacked:
            letters = self.stacked
            W = np.concatenate([conv[f"W{g}"] for g in letters], axis=0)  # (nG*H, H+X)
            b = np.concatenate([conv[f"b{g}"] for g in letters], axis=0)  # (nG*H,)
            for g in letters:
                conv.pop(f"W{g}")
                conv.pop(f"b{g}")
            conv["__W"], conv["__b"] = W, b
        for k, v in conv.items():
            if v.ndim == 2 and self.transposed:
                v = v.T.copy()
            if v.ndim == 1 and self.column:
                v = v.reshape(-1, 1)
            out[self.user_name(k)] = v
        return out

    def state_to_user(self, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return tuple(np.array(s, dtype=np.float64).reshape((-1, 1) if self.column else (-1,))
                     for s in state)

    def user_name(self, canonical: str) -> str:
        if canonical == "__W":
            return self.stacked_names[0]
        if canonical == "__b":
            return self.stacked_names[1]
        return self.names.get(canonical, canonical)

    # ---------------------------------------------------------------- user -> canonical

    def grads_from_user(self, arch, G: dict[str, np.ndarray], shapes: dict[str, tuple],
                        H: int) -> dict[str, np.ndarray]:
        """User gradients (keyed by the user's names) to canonical arrays; InterfaceError on a
        missing group or a shape that fits no known layout."""
        canon_names = list(arch.param_names)
        if self.stacked:
            canon_names = [k for k in canon_names
                           if not (k[1:] in self.stacked and len(k) == 2 and k[0] in "Wb")]
            canon_names += ["__W", "__b"]
        if self.split:
            gw = _gate_weights(arch, arch.param_names)
            canon_names = [k for k in canon_names if k not in gw]
            canon_names += [p + k[1:] for k in gw for p in ("Wh", "Wx")]
        conv: dict[str, np.ndarray] = {}
        for k in canon_names:
            key = self.user_name(k)
            if key not in G:
                raise InterfaceError(f"no gradient for {key!r} among the returned gradients "
                                     f"({', '.join(map(repr, G)) or 'none'})")
            v = G[key]
            if v.ndim == 2 and self.transposed:
                v = v.T
            conv[k] = v
        if self.split:
            for k in _gate_weights(arch, arch.param_names):
                Wh, Wx = conv.pop("Wh" + k[1:]), conv.pop("Wx" + k[1:])
                if Wh.ndim != 2 or Wx.ndim != 2 or Wh.shape[0] != Wx.shape[0]:
                    raise InterfaceError(f"split gradients {self.user_name('Wh' + k[1:])!r} "
                                         f"{Wh.shape} and {self.user_name('Wx' + k[1:])!r} "
                                         f"{Wx.shape} do not fit together")
                conv[k] = np.concatenate([Wh, Wx], axis=1)
        if self.stacked:
            W, b = conv.pop("__W"), conv.pop("__b")
            n = len(self.stacked)
            if W.shape[0] != n * H or b.size != n * H:
                raise InterfaceError(
                    f"stacked gradient {self.stacked_names[0]!r} has shape {W.shape}, expected "
                    f"({n * H}, ...) for {n} gates of {H} units")
            for j, g in enumerate(self.stacked):
                conv[f"W{g}"] = W[j * H:(j + 1) * H]
                conv[f"b{g}"] = b.reshape(-1)[j * H:(j + 1) * H]
        out = {}
        gates = concat_weights(arch)
        for k in arch.param_names:
            v = conv[k]
            want = shapes[k]
            if v.ndim == 2 and len(want) == 1 and 1 in v.shape:
                v = v.reshape(-1)  # column or row vector for a bias
            if v.shape != want:
                raise InterfaceError(
                    f"gradient {self.user_name(k)!r} has shape {tuple(v.shape)}, expected "
                    f"{self._user_shape(want)}")
            if k in gates and self.concat == "xh" and not self.split:
                X = want[1] - H
                v = np.concatenate([v[:, X:], v[:, :X]], axis=1)  # back to [h; x]
            out[k] = np.array(v, dtype=np.float64)
        return out

    def state_from_user(self, s, H: int, label: str) -> np.ndarray:
        a = np.asarray(s, dtype=np.float64)
        if a.size != H:
            raise InterfaceError(f"returned {label} has shape {a.shape}, expected ({H},)"
                                 + (" or (H, 1)" if self.column else ""))
        return a.reshape(H)

    def _user_shape(self, shape: tuple) -> tuple:
        if len(shape) == 2 and self.transposed:
            return (shape[1], shape[0])
        if len(shape) == 1 and self.column:
            return (shape[0], 1)
        return shape


def _gate_weights(arch, names) -> list[str]:
    """The gate matrices acting on [h; x], in the order of ``names``."""
    gates = concat_weights(arch)
    return [k for k in names if k in gates]
