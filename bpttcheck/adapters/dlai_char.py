"""deeplearning.ai "Dinosaur Island" character model (Course 5, week 1, assignment 2):
``rnn_forward(X, Y, a0, parameters, vocab_size=27) -> (loss, cache)`` and
``rnn_backward(X, Y, parameters, cache) -> (gradients, a)``, parameters ``Wax, Waa, Wya, b``
(``ba`` in some copies) and ``by`` as column vectors, gradients keyed ``dWax, dWaa, dWya, db,
dby`` (plus ``da_next``, the gradient with respect to a0, which is not a parameter group).

The names collide with the course-assignment layer API (``rnn_forward(x, h0, Wx, Wh, b)``,
``rnn_backward(dh, cache)``) and with the step-by-step notebook (``rnn_forward(x, a0,
parameters)``, ``rnn_backward(da, caches)``); what only this style has is a backward that takes
the sequences again: ``rnn_backward(X, Y, parameters, cache)``. Its priority is above the layer
style's, so such a file is checked as one whole-sequence model."""
from __future__ import annotations

import inspect

import numpy as np

from bpttcheck.adapters.base import (
    PythonAdapter,
    as_float_array,
    as_loss,
    modified,
    module_strings,
    n_positional,
    snapshot,
)
from bpttcheck.archmeta import meta, without
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout
from bpttcheck.names import strip_grad_prefix

NAMES = {"Wxh": "Wax", "Whh": "Waa", "Why": "Wya", "bh": "b", "by": "by"}


class DlaiCharAdapter(PythonAdapter):
    name = "dlai-char"
    priority = 35  # above the layer style (30), whose function names this style reuses
    entry = "rnn_forward/rnn_backward"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        fw, bw = getattr(module, "rnn_forward", None), getattr(module, "rnn_backward", None)
        return (module is not None and callable(fw) and callable(bw)
                and n_positional(fw) >= 4 and n_positional(bw) == 4)

    def __init__(self, module, path, options):
        super().__init__(module, path, options)
        self.arch_name = "rnn"
        strings = module_strings(module)
        names = dict(NAMES)
        if "ba" in strings and "b" not in strings:
            names["bh"] = "ba"  # the copies that name the hidden bias ba (and its gradient dba)
        names.update(options.get("names", {}))
        self.names = names
        # a bias no string of the module names is a bias the model does not have
        self.absent = [c for c in ("bh", "by") if strings and names[c] not in strings
                       and "d" + names[c] not in strings]
        self.arch = without(meta("rnn"), self.absent)
        try:
            self.vocab_kw = "vocab_size" in inspect.signature(module.rnn_forward).parameters
        except (TypeError, ValueError):
            self.vocab_kw = False

    def describe(self) -> dict:
        return {"arch": "rnn", "dims": None,
                "layouts": [Layout(names=self.names, column=True)],
                "model": {"absent": self.absent}}

    def call(self, P, xs, ys, state, layout: Layout, want_grads: bool):
        H, X = P["Wxh"].shape
        params = layout.params_to_user(self.arch, P, H)
        a0 = layout.state_to_user(state)[0]
        xs_l, ys_l = list(xs), list(ys)
        before = snapshot({**params, "a0": a0, "X": xs_l, "Y": ys_l})
        kw = {"vocab_size": X} if self.vocab_kw else {}
        out = self.module.rnn_forward(xs_l, ys_l, a0, params, **kw)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InterfaceError(f"rnn_forward returned {type(out).__name__}; expected "
                                 "(loss, cache)")
        loss = as_loss(out[0], "rnn_forward's loss")
        grads, last = None, (None,)
        if want_grads:
            back = self.module.rnn_backward(xs_l, ys_l, params, out[1])
            G, a = back if isinstance(back, (tuple, list)) and len(back) == 2 else (back, None)
            grads = self._read_grads(G, layout, H)
            last = (self._last(a, len(xs_l), H),)
        changes = modified(before, {**params, "a0": a0, "X": xs_l, "Y": ys_l})
        return loss, grads, last, changes

    def _read_grads(self, G, layout: Layout, H: int):
        if not isinstance(G, dict):
            raise InterfaceError("rnn_backward should return (gradients, a) with gradients a "
                                 f"dict keyed dWax, dWaa, ...; got {type(G).__name__}")
        users = {layout.user_name(c) for c in self.arch.param_names}
        by_user = {}
        for key, val in G.items():
            base = strip_grad_prefix(str(key))
            if base in users:
                by_user[base] = as_float_array(val, f"gradients[{key!r}]")
        self._note_dtype(by_user.values())
        return layout.grads_from_user(self.arch, by_user, self.arch.shapes(self._dims), H)

    @staticmethod
    def _last(a, T: int, H: int):
        """a[T-1] of the states rnn_backward hands back (a dict keyed -1..T-1), if it fits."""
        try:
            v = np.asarray(a[T - 1], dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return v.reshape(H) if v.size == H else None
