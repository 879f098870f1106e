""""Deep Learning from Scratch 2" time layers (style ``dlfs2``, the book's
``common/time_layers.py``), mapped onto the canonical layer units (layer_api.py).

Classes, not functions: ``RNN(Wx, Wh, b)`` with forward(x, h_prev) / backward(dh_next), and
``TimeRNN(Wx, Wh, b, stateful=False)`` with forward(xs) / backward(dhs); ``LSTM``/``TimeLSTM``
likewise. Gradients land in ``self.grads`` (overwritten in place), the gradient of the
initial state in ``self.dh``. The layout is the canonical one (``x @ Wx``) except the LSTM's
gate blocks, f, g, i, o in the book. The initial state goes in through ``stateful=True`` and
``set_state`` (the only way the book's TimeRNN takes one); c0 stays zero, as in the
canonical ``lstm`` unit.

The book computes in float32 (``dtype='f'`` buffers): parameters and inputs are handed over in
float32, so the dtype the code computes in is float32 and the float32 tolerances apply.
GRU/TimeGRU are found but not checked yet: the layer reference has no GRU unit."""
from __future__ import annotations

import inspect

import numpy as np

from bpttcheck.adapters.base import as_float_array
from bpttcheck.adapters.layers import UnitsAdapter, _Stub
from bpttcheck.errors import InterfaceError
from bpttcheck.layer_api import UNITS, Unit

CLASSES = {"rnn_step": "RNN", "rnn": "TimeRNN", "lstm_step": "LSTM", "lstm": "TimeLSTM"}
UNCHECKED = ("GRU", "TimeGRU")
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
                                          for c in (*CLASSES.values(), *UNCHECKED))

    def found(self):
        units = [u.name for u in UNITS if _layer_class(self.module, CLASSES[u.name])]
        if not units:
            gru = [c for c in UNCHECKED if _layer_class(self.module, c) is not None]
            raise InterfaceError(f"{' and '.join(gru)} found but not checked yet: bpttcheck's "
                                 f"layer reference has no GRU unit; RNN/TimeRNN and "
                                 f"LSTM/TimeLSTM are checked")
        return units, []

    def extra_notes(self):
        gru = [c for c in UNCHECKED if _layer_class(self.module, c) is not None]
        if not gru:
            return []
        return [{"id": "layer.not-checked", "title": f"{' and '.join(gru)} found but not "
                 "checked yet", "evidence": f"{', '.join(gru)} follow the book's GRU "
                 "(h = (1 - z) h_prev + z h~); bpttcheck's layer reference has no GRU unit "
                 "yet, so only the RNN and LSTM classes were checked"}]

    def names(self):
        out = {}
        for u in UNITS:
            cls = CLASSES[u.name]
            grads = {g: f"{cls}.{(SEQ_NAMES.get(g) if u.name in ('rnn', 'lstm') else None) or GRAD_NAMES[g]}"
                     for g in u.grads}
            blocks = {}
            if u.family == "lstm":
                # canonical block k (i, f, o, g) is the book's block BOOK_ORDER.index(k)
                for g in ("dWx", "dWh", "db"):
                    blocks[g] = [f"{cls}.{GRAD_NAMES[g]}[{'fgio'[BOOK_ORDER.index(k)]} block]"
                                 for k in range(4)]
            out[u.name] = {"forward": f"{cls}.forward", "backward": f"{cls}.backward",
                           "grads": grads, "blocks": blocks}
        return out

    # ------------------------------------------------------------------ layouts

    def _watch(self, u: Unit, args):
        f32 = [np.asarray(a, dtype=np.float32) for a in args]
        Wx, Wh, b = f32[-3:]
        if u.family == "lstm":
            Wx, Wh, b = (_book(a) for a in (Wx, Wh, b))
        x, h0 = f32[0], f32[1]
        state = f32[2:3] if u.name == "lstm_step" else []
        label = {2: "x", 3: "xs"}[x.ndim]
        watched = {label: x, "h_prev" if x.ndim == 2 else "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}
        if state:
            watched["c_prev"] = state[0]
        return (x, h0, state, [Wx, Wh, b]), watched

    def _forward(self, u: Unit, prepared):
        x, h0, state, params = prepared
        cname = CLASSES[u.name]
        cls = getattr(self.module, cname)
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
                    for o, n in zip(out, ("h_next", "c_next"))], layer
        return [as_float_array(out, f"{cname}.forward's result")], layer

    def _backward(self, u: Unit, ups, layer):
        cname = CLASSES[u.name]
        ups = [d.astype(np.float32) for d in ups]
        res = self._call(f"{cname}.backward", layer.backward, *ups)
        if res is None:
            raise _Stub(f"{cname}.backward returned None")
        if u.name.endswith("_step"):
            n = len(u.grads) - 3
            if not isinstance(res, tuple) or len(res) != n:
                raise InterfaceError(f"{cname}.backward should return "
                                     f"({', '.join(GRAD_NAMES[g] for g in u.grads[:n])}), got "
                                     + (f"a tuple of {len(res)}" if isinstance(res, tuple)
                                        else type(res).__name__))
            first = [as_float_array(r, f"{cname}.backward's {GRAD_NAMES[g]}")
                     for r, g in zip(res, u.grads)]
        else:
            dh = getattr(layer, "dh", None)
            first = [as_float_array(res, f"{cname}.backward's dxs"),
                     as_float_array(dh, f"{cname}.dh (the gradient of the initial state)")]
        grads = getattr(layer, "grads", None)
        if not isinstance(grads, (list, tuple)) or len(grads) != 3:
            raise InterfaceError(f"{cname}.grads should be the list [dWx, dWh, db], got "
                                 f"{type(grads).__name__}")
        dW = [as_float_array(g, f"{cname}.grads[{i}]") for i, g in enumerate(grads)]
        if u.family == "lstm":
            dW = [_canonical(g) for g in dW]
        return first + dW


def _layer_class(module, name: str):
    """The class ``name`` if it looks like one of the book's layers: a class whose forward and
    backward are methods (Karpathy-style copies have a class RNN with train(), not these)."""
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        return None
    if not all(callable(getattr(cls, m, None)) for m in ("forward", "backward")):
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


def _book(a: np.ndarray) -> np.ndarray:
    """Canonical gate blocks i, f, o, g (last axis) in the book's order f, g, i, o."""
    H = a.shape[-1] // 4
    return np.concatenate([a[..., k * H:(k + 1) * H] for k in BOOK_ORDER], axis=-1)


def _canonical(a: np.ndarray) -> np.ndarray:
    """The book's f, g, i, o blocks back in the canonical order i, f, o, g."""
    if a.shape[-1] % 4:
        return a  # a wrong shape stays wrong: the checker names it
    H = a.shape[-1] // 4
    return np.concatenate([a[..., BOOK_ORDER.index(k) * H:(BOOK_ORDER.index(k) + 1) * H]
                           for k in range(4)], axis=-1)
