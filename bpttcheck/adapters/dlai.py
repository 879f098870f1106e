"""deeplearning.ai Course 5 "Building your RNN - Step by Step" (style ``dlai``), mapped onto the
canonical layer units (layer_api.py): the adapter converts layouts both ways, the layer
checker, reference and diagnosis judge the canonical arrays.

The course's layout: columns are examples, ``W @ x``, x (n_x, m, T_x), a0 (n_a, m), biases
(n_a, 1), a ``parameters`` dict; LSTM per-gate Wf, Wi, Wc, Wo (n_a, n_a + n_x) acting on
[a_prev; xt]. Canonical: rows are examples, ``x @ Wx``, Wx (D, H|4H) in gate blocks i, f, o, g.
The forward also computes a softmax output from Wya/Wy, by: they are supplied (random) and
never checked, since the course's backward functions return no gradient for them.
``lstm_forward`` has no c0 argument: c starts at zero, as in the canonical ``lstm`` unit."""
from __future__ import annotations

import inspect

import numpy as np

from bpttcheck.adapters.base import as_float_array
from bpttcheck.adapters.layers import UnitsAdapter, _labels, _Stub, arrays_in
from bpttcheck.errors import InterfaceError
from bpttcheck.layer_api import LAYER_API, Unit

# canonical unit -> (forward, backward) of the course
FUNCS = {"rnn_step": ("rnn_cell_forward", "rnn_cell_backward"),
         "rnn": ("rnn_forward", "rnn_backward"),
         "lstm_step": ("lstm_cell_forward", "lstm_cell_backward"),
         "lstm": ("lstm_forward", "lstm_backward")}
ARGS = {"rnn_cell_forward": 3, "rnn_forward": 3, "lstm_cell_forward": 4, "lstm_forward": 3}
# the course's gate letters in the canonical block order i, f, o, g (c is the candidate)
GATES = ("i", "f", "o", "c")
Y_SIZE = 2  # rows of Wya / Wy: the softmax output, computed but never checked

# canonical gradient -> the dict keys accepted for it, the course's own first
KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "rnn_step": {"dx": ("dxt", "dx"), "dprev_h": ("da_prev", "da_next"),
                 "dWx": ("dWax",), "dWh": ("dWaa",), "db": ("dba", "db")},
    "rnn": {"dx": ("dx", "dxt"), "dh0": ("da0", "da_prev"),
            "dWx": ("dWax",), "dWh": ("dWaa",), "db": ("dba", "db")},
    "lstm_step": {"dx": ("dxt", "dx"), "dprev_h": ("da_prev", "da_next"),
                  "dprev_c": ("dc_prev", "dc_next")},
    "lstm": {"dx": ("dx", "dxt"), "dh0": ("da0", "da_prev")}}
GATE_KEYS = {"c": ("c", "cc", "g")}  # candidate gate: dWc, also dWcc / dWg


class DlaiAdapter(UnitsAdapter):
    name = "dlai"
    priority = 35  # before ``layers``: both define rnn_forward/rnn_backward
    entry = "your rnn_cell_forward/rnn_cell_backward"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return module is not None and any(_fits(module, f) for f in ARGS)

    def found(self):
        units, partial = [], []
        for u in LAYER_API:
            fwd, bwd = FUNCS[u.name]
            have = [_fits(self.module, fwd), callable(getattr(self.module, bwd, None))]
            if all(have):
                units.append(u.name)
            elif have[0]:
                partial.append(fwd)
        return units, partial

    def names(self):
        out = {}
        for u in LAYER_API:
            fwd, bwd = FUNCS[u.name]
            grads = {g: f"{bwd}.{keys[0]}" for g, keys in KEYS[u.name].items()}
            blocks = {}
            if u.family == "lstm":
                for g, what, cols in (("dWx", "dW", "[:, n_a:]"), ("dWh", "dW", "[:, :n_a]"),
                                      ("db", "db", "")):
                    blocks[g] = [f"{bwd}.{what}{k}{cols}" for k in GATES]
                    grads[g] = f"{bwd}.{what}f,{what}i,{what}c,{what}o{cols}"
            out[u.name] = {"forward": fwd, "backward": bwd, "grads": grads, "blocks": blocks}
        return out

    # ------------------------------------------------------------------ layouts

    def _watch(self, u: Unit, args):
        x, h0 = args[0], args[1]
        Wx, Wh, b = args[-3:]
        H = Wh.shape[0]
        rng = np.random.default_rng(len(u.name))  # fixed: the output layer is not checked
        Wy = rng.normal(0, 1 / np.sqrt(H), (Y_SIZE, H))
        by = rng.normal(0, 0.3, (Y_SIZE, 1))
        if u.family == "rnn":
            params = {"Wax": Wx.T.copy(), "Waa": Wh.T.copy(), "ba": b.reshape(-1, 1).copy(),
                      "Wya": Wy, "by": by}
        else:
            params = {"Wy": Wy, "by": by}
            for k, gate in enumerate(GATES):
                cols = slice(k * H, (k + 1) * H)
                params["W" + gate] = np.concatenate([Wh[:, cols].T, Wx[:, cols].T], axis=1)
                params["b" + gate] = b[cols].reshape(-1, 1).copy()
        xs = x.T.copy() if x.ndim == 2 else x.transpose(2, 0, 1).copy()  # (n_x, m[, T_x])
        user = [xs, h0.T.copy()] + ([args[2].T.copy()] if u.name == "lstm_step" else [])
        watched = {"x" if x.ndim == 3 else "xt": xs, "a0" if x.ndim == 3 else "a_prev": user[1]}
        if u.name == "lstm_step":
            watched["c_prev"] = user[2]
        watched.update({f"parameters['{k}']": v for k, v in params.items()})
        return [*user, params], watched

    def _forward(self, u: Unit, prepared):
        fwd = FUNCS[u.name][0]
        out = self._call(fwd, getattr(self.module, fwd), *prepared)
        if out is None:
            raise _Stub(f"{fwd} returned None")
        # rnn_cell: a, y, cache; rnn: a, y, caches; lstm_cell: a, c, y, cache; lstm: a, y, c, caches
        want = {"rnn_step": 3, "rnn": 3, "lstm_step": 4, "lstm": 4}[u.name]
        if not isinstance(out, tuple) or len(out) != want:
            raise InterfaceError(f"{fwd} should return a tuple of {want} (ending with the "
                                 f"cache), got " + (f"a tuple of {len(out)}" if
                                                    isinstance(out, tuple) else type(out).__name__))
        a = as_float_array(out[0], f"{fwd}'s a")
        outs = [_rows(a)]
        if u.name == "lstm_step":
            outs.append(_rows(as_float_array(out[1], f"{fwd}'s c_next")))
        return outs, (out[-1], prepared[-1])

    def _is_parameter(self, label: str) -> bool:
        return label.startswith("parameters[")

    def _upstream(self, u: Unit, ups):
        user_ups = [_cols(d) for d in ups]  # (n_a, m[, T_x])
        bwd = getattr(self.module, FUNCS[u.name][1])
        canon = {"rnn_step": ("da_next",), "rnn": ("da",),
                 "lstm_step": ("da_next", "dc_next"), "lstm": ("da",)}[u.name]
        return user_ups, dict(zip(_labels(bwd, canon), user_ups, strict=False))

    def _cache(self, u: Unit, state):
        bwd = getattr(self.module, FUNCS[u.name][1])
        n = len(u.outputs)
        return arrays_in(state[0], _labels(bwd, ("da",) * n + ("cache",))[n])

    def _backward(self, u: Unit, user_ups, state):
        cache, params = state
        bwd = FUNCS[u.name][1]
        res = self._call(bwd, getattr(self.module, bwd), *user_ups, cache)
        if res is None:
            raise _Stub(f"{bwd} returned None")
        if not isinstance(res, dict):
            raise InterfaceError(f"{bwd} should return the dict of gradients, got "
                                 f"{type(res).__name__}")
        got = {g: _pick(res, keys, bwd) for g, keys in KEYS[u.name].items()}
        grads = {g: _rows(v) for g, v in got.items()}
        if u.family == "rnn":
            grads["dWx"], grads["dWh"] = got["dWx"].T, got["dWh"].T
            grads["db"] = _bias(got["db"])
        else:
            H = params["Wf"].shape[0]
            dW = [_pick(res, tuple("dW" + k for k in GATE_KEYS.get(g, (g,))), bwd) for g in GATES]
            dbs = [_pick(res, tuple("db" + k for k in GATE_KEYS.get(g, (g,))), bwd) for g in GATES]
            if any(w.ndim != 2 or w.shape[1] <= H for w in dW):
                raise InterfaceError(f"{bwd}'s dWf, dWi, dWc, dWo should have the shape of "
                                     f"Wf (n_a, n_a + n_x), got {[w.shape for w in dW]}")
            grads["dWh"] = np.concatenate([w[:, :H].T for w in dW], axis=1)
            grads["dWx"] = np.concatenate([w[:, H:].T for w in dW], axis=1)
            grads["db"] = np.concatenate([_bias(v) for v in dbs], axis=-1)
        return [grads[g] for g in u.grads]


def _fits(module, fn_name: str) -> bool:
    """The course's signature: rnn_forward(x, a0, parameters), not the layer API's
    rnn_forward(x, h0, Wx, Wh, b) nor the char model's rnn_forward(X, Y, a0, parameters, ...)."""
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        return False
    try:
        ps = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(ps) == ARGS[fn_name] and ps[0].name != "parameters"


def _pick(res: dict, keys: tuple[str, ...], bwd: str) -> np.ndarray:
    for k in keys:
        if k in res:
            return as_float_array(res[k], f"{bwd}'s gradients['{k}']")
    raise InterfaceError(f"{bwd}'s gradients have no '{keys[0]}'" + (
        f" (nor {', '.join(repr(k) for k in keys[1:])})" if len(keys) > 1 else "")
        + f"; keys found: {', '.join(map(repr, res)) or 'none'}")


def _rows(a: np.ndarray) -> np.ndarray:
    """The course's (n, m[, T]) as the canonical (m[, T], n)."""
    return a.T if a.ndim == 2 else a.transpose(1, 2, 0) if a.ndim == 3 else a


def _cols(a: np.ndarray) -> np.ndarray:
    """The canonical (m[, T], n) as the course's (n, m[, T])."""
    return a.T.copy() if a.ndim == 2 else a.transpose(2, 0, 1).copy()


def _bias(db: np.ndarray) -> np.ndarray:
    """A column bias gradient (n, 1) as the canonical (n,); other shapes go on as they are, so
    a bias summed over the wrong axis shows as a wrong shape."""
    return db[:, 0] if db.ndim == 2 and db.shape[1] == 1 else db
