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
# what each gate letter is called in a message
GATE_WORDS = {"f": "forget gate", "i": "input gate", "g": "candidate", "o": "output gate",
              "z": "update gate", "r": "reset gate", "n": "candidate"}


def gate_order(arch: str, order: str) -> str:
    """Normalise a declared gate order such as 'ifco' to canonical letters ('ifgo')."""
    norm = "".join(LETTER_SYNONYMS.get(ch, ch) for ch in order.lower())
    if sorted(norm) != sorted(GATE_LETTERS[arch]):
        raise InterfaceError(
            f"gate order {order!r} is not a permutation of {GATE_LETTERS[arch]!r} for {arch}")
    return norm


def block_slice(j: int, n: int) -> str:
    """Block j of n stacked H-wide blocks as a slice with H symbolic: ":H", "H:2*H", "3*H:"."""
    lo = "" if j == 0 else "H" if j == 1 else f"{j}*H"
    hi = "" if j == n - 1 else "H" if j == 0 else f"{j + 1}*H"
    return f"{lo}:{hi}"


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

    # ---------------------------------------------------------------- the user's names

    def stacked_block(self, canonical: str) -> tuple[str, int] | None:
        """(the user's stacked array, the block's position in it) of a gate group stored in a
        stacked matrix (``Wf`` -> ("W", 1) in order "ifgo"); None for a group of its own."""
        if (not self.stacked or len(canonical) != 2 or canonical[0] not in "Wb"
                or canonical[1] not in self.stacked):
            return None
        return self.stacked_names[canonical[0] == "b"], self.stacked.index(canonical[1])

    def _split_halves(self, canonical: str) -> tuple[str, str] | None:
        """The recurrent and input halves of a gate matrix stored split (Whf, Wxf)."""
        if not self.split or len(canonical) != 2 or canonical[0] != "W" \
                or canonical[1] not in GATE_WORDS:
            return None
        return self.user_name("Wh" + canonical[1]), self.user_name("Wx" + canonical[1])

    def group_name(self, canonical: str, H: int) -> str:
        """The one name every report gives a canonical group: the user's own array
        ("W_f"), the rows of their stacked matrix at this H ("W rows 4:8 (forget gate)";
        "columns" when they store W.T; "b[4:8] (forget gate)" for a bias), or the two
        halves of a split matrix ("Whf and Wxf")."""
        block = self.stacked_block(canonical)
        if block:
            array, j = block
            rows = f"{j * H}:{(j + 1) * H}"
            where = f"{array}[{rows}]" if canonical[0] == "b" else \
                f"{array} {'columns' if self.transposed else 'rows'} {rows}"
            return f"{where} ({GATE_WORDS.get(canonical[1], canonical[1] + ' gate')})"
        halves = self._split_halves(canonical)
        if halves:
            return f"{halves[0]} and {halves[1]}"
        return self.user_name(canonical)

    def groups_named(self, name: str, param_names) -> list[str]:
        """The canonical groups (of ``param_names``) a user's name stands for, group_name's
        inverse for keys such as [points]': their own array ("W_f" -> ["Wf"]); a stacked
        array, every gate block of it ("W" -> ["Wi", "Wf", ...]) or one block by its gate's
        letter or word ("W[forget]", "W[f]"). [] for anything else: a split half (Whf) is
        part of a group, not one."""
        base, bracket, sel = name.partition("[")
        if self.stacked and base in self.stacked_names:
            p = "Wb"[self.stacked_names.index(base)]
            gates = [g for g in self.stacked if p + g in param_names]
            if not bracket:
                return [p + g for g in gates]
            want = sel.removesuffix("]").strip().lower()
            want = LETTER_SYNONYMS.get(want, want)
            return [p + g for g in gates
                    if want in (g, GATE_WORDS[g], GATE_WORDS[g].split()[0])][:1]
        if bracket:
            return []
        return [k for k in param_names if self.user_name(k) == name
                and not self.stacked_block(k) and not self._split_halves(k)]

    def user_keys(self, param_names) -> list[str]:
        """The names groups_named knows that differ from the canonical ones, one per group
        or stacked array (and each stacked gate block)."""
        out: list[str] = []
        for k in param_names:
            block = self.stacked_block(k)
            if block:
                word = GATE_WORDS[k[1]].split()[0]
                out += [n for n in (block[0], f"{block[0]}[{word}]") if n not in out]
            elif not self._split_halves(k) and self.user_name(k) != k:
                out.append(self.user_name(k))
        return out

    def code_name(self, canonical: str, grad: bool = False) -> str:
        """The group as an expression in the user's code, for fix snippets: their array
        (``W_f``), or its slice of the stacked matrix with H symbolic (``W[H:2*H]``,
        ``W[:, H:2*H]`` when stored transposed); ``grad``: the gradient's, "d" + that."""
        d = "d" if grad else ""
        block = self.stacked_block(canonical)
        if block and self.stacked:
            array, j = block
            cols = ":, " if self.transposed and canonical[0] == "W" else ""
            return f"{d}{array}[{cols}{block_slice(j, len(self.stacked))}]"
        halves = self._split_halves(canonical)
        if halves:
            return f"{d}{halves[0]}, {d}{halves[1]}"
        return d + self.user_name(canonical)

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
