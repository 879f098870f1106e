""""Deep Learning from Scratch 2" time layers (style ``dlfs2``, the book's
``common/time_layers.py``), mapped onto the canonical layer units (layer_api.py).

Classes, not functions: ``RNN(Wx, Wh, b)`` with forward(x, h_prev) / backward(dh_next), and
``TimeRNN(Wx, Wh, b, stateful=False)`` with forward(xs) / backward(dhs); ``LSTM``/``TimeLSTM``
likewise. Gradients land in ``self.grads`` (overwritten in place), the gradient of the
initial state in ``self.dh``. The layout is the canonical one (``x @ Wx``) except the LSTM's
gate blocks, f, g, i, o in the book. The initial state goes in through ``stateful=True`` and
``set_state`` (the only way the book's TimeRNN takes one); c0 stays zero, as in the
canonical ``lstm`` unit.

The book's GRU/TimeGRU (blocks z, r, h~, no bias, h = (1 - z) h_prev + z h~) map onto the
canonical GRU units, whose z is the book's 1 - z: the z blocks of Wx, Wh are handed over
negated (sigmoid(-a) = 1 - sigmoid(a)) and their gradients negated back. The repository's GRU
keeps its weights and gradients in attributes (self.Wx, self.dWx) instead of params/grads
lists: both are read.

The book computes in float32 (``dtype='f'`` buffers): parameters and inputs are handed over in
float32, so the dtype the code computes in is float32 and the float32 tolerances apply."""
from __future__ import annotations

import inspect

import numpy as np

from bpttcheck.adapters.base import as_float_array, n_positional
from bpttcheck.adapters.layers import UnitsAdapter, _labels, _Stub
from bpttcheck.errors import InterfaceError
from bpttcheck.inspection import role_of_arg
from bpttcheck.layer_api import UNITS, Unit

CLASSES = {"rnn_step": "RNN", "rnn": "TimeRNN", "lstm_step": "LSTM", "lstm": "TimeLSTM",
           "gru_step": "GRU", "gru": "TimeGRU"}
# the book's gate blocks f, g, i, o, as positions in the canonical order i, f, o, g
BOOK_ORDER = (1, 3, 0, 2)
GRAD_NAMES = {"dWx": "Wx", "dWh": "Wh", "db": "b", "dx": "dx", "dprev_h": "dh_prev",
              "dprev_c": "dc_prev"}
SEQ_NAMES = {"dx": "dxs", "dh0": "dh"}


class Dlfs2Adapter(UnitsAdapter):
    name = "dlfs2"
    priority = 34
    entry = "your layer classes"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is not None and any(_layer_class(module, c) is not None
                                          for c in CLASSES.values())

    def found(self):
        return [u.name for u in UNITS if _layer_class(self.module, CLASSES[u.name])], []

    def names(self):
        out = {}
        for u in UNITS:
            cls = CLASSES[u.name]
            grads = {g: f"{cls}.{(None if u.name.endswith('_step') else SEQ_NAMES.get(g)) or GRAD_NAMES[g]}"
                     for g in u.grads}
            blocks = {}
            if u.family == "lstm":
                # canonical block k (i, f, o, g) is the book's block BOOK_ORDER.index(k)
                for g in ("dWx", "dWh", "db"):
                    blocks[g] = [f"{cls}.{GRAD_NAMES[g]}[{'fgio'[BOOK_ORDER.index(k)]} block]"
                                 for k in range(4)]
            elif u.family == "gru":
                for g in ("dWx", "dWh"):
                    blocks[g] = [f"{cls}.{GRAD_NAMES[g]}[{k} block]" for k in ("z", "r", "h~")]
            out[u.name] = {"forward": f"{cls}.forward", "backward": f"{cls}.backward",
                           "grads": grads, "blocks": blocks}
        return out

    # ------------------------------------------------------------------ layouts

    def _watch(self, u: Unit, args):
        f32 = [np.asarray(a, dtype=np.float32) for a in args]
        k = 2 if u.family == "gru" else 3  # Wx, Wh (, b)
        params = [_book(a, u.family) for a in f32[-k:]]
        x, h0 = f32[0], f32[1]
        state = f32[2:3] if u.name == "lstm_step" else []
        label = {2: "x", 3: "xs"}[x.ndim]
        watched = {label: x, "h_prev" if x.ndim == 2 else "h0": h0}
        watched.update(zip(("Wx", "Wh", "b"), params, strict=False))
        if state:
            watched["c_prev"] = state[0]
        return (x, h0, state, params), watched

    def _forward(self, u: Unit, prepared):
        x, h0, state, params = prepared
        cname = CLASSES[u.name]
        cls = getattr(self.module, cname)
        if len(params) == 2 and n_positional(cls.__init__) >= 4:  # a GRU with a bias: keep it 0
            params = [*params, np.zeros(params[1].shape[1], dtype=np.float32)]
        if u.name.endswith("_step"):
            layer = self._call(f"{cname}(Wx, Wh, b)", cls, *params)
            out = self._call(f"{cname}.forward", layer.forward, x, h0, *state)
        else:
            layer = self._call(f"{cname}(Wx, Wh, b, stateful=True)", _stateful, cls, params)
            self._call(f"{cname}.set_state", _set_state, layer, h0, u.family == "lstm")
            out = self._call(f"{cname}.forward", layer.forward, x)
        if out is None:
            raise _Stub(f"{cname}.forward returned None")
        if u.name == "lstm_step":
            if not isinstance(out, tuple) or len(out) != 2:
                raise InterfaceError(f"{cname}.forward should return (h_next, c_next), got "
                                     f"{type(out).__name__}")
            return [as_float_array(o, f"{cname}.forward's {n}")
                    for o, n in zip(out, ("h_next", "c_next"), strict=False)], layer
        return [as_float_array(out, f"{cname}.forward's result")], layer

    def _upstream(self, u: Unit, ups):
        f32 = [d.astype(np.float32) for d in ups]
        labels = {"rnn_step": ("dh_next",), "lstm_step": ("dh_next", "dc_next"),
                  "gru_step": ("dh_next",)}.get(u.name, ("dhs",))
        cls = _layer_class(self.module, CLASSES[u.name])
        fn = getattr(cls, "backward", None)
        mine = _labels(fn, ("self", *labels))[1:] if fn is not None else list(labels)
        return f32, dict(zip(mine, f32, strict=False))

    def _backward(self, u: Unit, ups, layer):
        cname = CLASSES[u.name]
        res = self._call(f"{cname}.backward", layer.backward, *ups)
        if res is None:
            raise _Stub(f"{cname}.backward returned None")
        k = 2 if u.family == "gru" else 3
        if u.name.endswith("_step"):
            n = len(u.grads) - k
            if not isinstance(res, tuple) or len(res) != n:
                raise InterfaceError(f"{cname}.backward should return "
                                     f"({', '.join(GRAD_NAMES[g] for g in u.grads[:n])}), got "
                                     + (f"a tuple of {len(res)}" if isinstance(res, tuple)
                                        else type(res).__name__))
            first = [as_float_array(r, f"{cname}.backward's {GRAD_NAMES[g]}")
                     for r, g in zip(res, u.grads, strict=False)]
        else:
            dh = getattr(layer, "dh", None)
            first = [as_float_array(res, f"{cname}.backward's dxs"),
                     as_float_array(dh, f"{cname}.dh (the gradient of the initial state)")]
        grads = getattr(layer, "grads", None)
        if isinstance(grads, (list, tuple)) and len(grads) >= k:
            dW = [as_float_array(g, f"{cname}.grads[{i}]") for i, g in enumerate(grads[:k])]
        elif all(hasattr(layer, a) for a in ("dWx", "dWh")[:k]) and k == 2:
            dW = [as_float_array(getattr(layer, a), f"{cname}.{a}") for a in ("dWx", "dWh")]
        else:
            raise InterfaceError(f"{cname}.grads should be the list [dWx, dWh"
                                 + (", db" if k == 3 else "") + f"], got {type(grads).__name__}")
        return first + [_canonical(g, u.family) for g in dW]


def _layer_class(module, name: str):
    """The class ``name`` if it looks like one of the book's layers: a class whose forward and
    backward are methods (Karpathy-style copies have a class RNN with train(), not these)."""
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        return None
    if not all(callable(getattr(cls, m, None)) for m in ("forward", "backward")):
        return None
    try:  # the book's layers are built from weights, GRU(Wx, Wh); GRU(vocab_size, ...) is not
        first = list(inspect.signature(cls.__init__).parameters)[1:2]
    except (TypeError, ValueError):
        first = []
    if first and role_of_arg(first[0]):
        return None
    return cls


def _stateful(cls, params):
    try:
        return cls(*params, stateful=True)
    except TypeError:  # a TimeRNN without the flag: set_state is then the only way in
        return cls(*params)


def _set_state(layer, h0, lstm: bool) -> None:
    c0 = np.zeros_like(h0)
    setter = getattr(layer, "set_state", None)
    if callable(setter):
        setter(h0, c0) if lstm else setter(h0)
    else:
        layer.h = h0
        if lstm:
            layer.c = c0
    layer.stateful = True


def _book(a: np.ndarray, family: str) -> np.ndarray:
    """A canonical parameter as the book lays it out: LSTM blocks i, f, o, g (last axis) in the
    book's order f, g, i, o; the GRU's z block negated (the book's z is 1 - the canonical z)."""
    if family == "gru":
        return _flip_z(a)
    if family != "lstm":
        return a
    H = a.shape[-1] // 4
    return np.concatenate([a[..., k * H:(k + 1) * H] for k in BOOK_ORDER], axis=-1)


def _flip_z(a: np.ndarray) -> np.ndarray:
    if a.shape[-1] % 3:
        return a  # a wrong shape stays wrong: the checker names it
    out = np.array(a, copy=True)
    out[..., :a.shape[-1] // 3] *= -1
    return out


def _canonical(a: np.ndarray, family: str) -> np.ndarray:
    """A gradient of the book's layout in the canonical one (the inverse of _book)."""
    if family == "gru":
        return _flip_z(a)
    if family != "lstm" or a.shape[-1] % 4:
        return a  # a wrong shape stays wrong: the checker names it
    H = a.shape[-1] // 4
    return np.concatenate([a[..., BOOK_ORDER.index(k) * H:(BOOK_ORDER.index(k) + 1) * H]
                           for k in range(4)], axis=-1)
