"""Functional style (CONTRACT 2.2): ``loss_and_grads(params, inputs, targets, state)`` with
dicts of arrays; and the split style (2.2b): ``forward(...) -> (loss, cache)`` and
``backward(params, cache)`` or ``backward(cache)``."""
from __future__ import annotations

import itertools
from dataclasses import replace

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
from bpttcheck.archmeta import Dims, concat_weights, meta, without
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout, gate_order
from bpttcheck.names import canonical_for, guess_arch, strip_grad_prefix


class FunctionalAdapter(PythonAdapter):
    name = "functional"
    priority = 20
    entry = "loss_and_grads"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return callable(getattr(module, cls.entry, None))

    def __init__(self, module, path, options):
        super().__init__(module, path, options)
        strings = module_strings(module)
        guessed = guess_arch(strings)
        self.arch_name = options.get("arch") or guessed or "rnn"
        if guessed and guessed != self.arch_name:
            self.arch_mismatch = (self.arch_name, guessed)
        self.arch = meta(self.arch_name)
        names: dict[str, str] = {}
        for s in sorted(strings):
            canon = canonical_for(self.arch_name, s)
            if canon and (canon not in names or s == canon):
                names[canon] = s
        declared = dict(options.get("names", {}))
        names.update(declared)
        if options.get("split"):  # a split half follows the name declared for its gate:
            for canon, user in declared.items():  # Wg declared as "Wc" makes Whg "Whc"
                if canon.startswith("W") and user.startswith("W"):
                    for half in ("Wh", "Wx"):
                        names.setdefault(half + canon[1:], half + user[1:])
        self.names = names

    def describe(self) -> dict:
        o = self.options
        stacked = o.get("gate_order") if o.get("stacked") else None
        if stacked:
            stacked = gate_order(self.arch_name, stacked)
        if o.get("split") and stacked:
            raise InterfaceError("split and stacked gate matrices together are not supported; "
                                 "declare one of them")
        base = {"names": self.names, "transposed": bool(o.get("transposed", False)),
                "split": bool(o.get("split", False)), "stacked": stacked,
                "stacked_names": tuple(o.get("stacked_names", ("W", "b")))}
        columns = [o["column_vectors"]] if "column_vectors" in o else [False, True]
        plain = not concat_weights(self.arch)  # no matrix acts on [h; x]: the order is moot
        concats = [o.get("concat", "hx")] if "concat" in o or plain else ["hx", "xh"]
        layouts = [Layout(**base, column=col, concat=cat) for cat in concats for col in columns]
        if stacked:
            # other gate orders are candidates too: a consistent other order is layout.gate-order
            declared = list(layouts)
            for perm in itertools.permutations(stacked):
                if "".join(perm) != stacked:
                    layouts += [replace(lay, stacked="".join(perm)) for lay in declared]
        model = self._model_from_init()
        self.arch = without(self.arch, model.get("absent", ()))
        return {"arch": self.arch_name, "dims": None, "layouts": layouts, "model": model}

    def _model_from_init(self) -> dict:
        """What the module's own ``init_params(X, H, Y)`` says of the model, if it has one:
        a bias it never creates is absent (every weight must be there, else its keys are in a
        layout this cannot read), and one that only works with Y = X asks for same_xy."""
        init = getattr(self.module, "init_params", None)
        if not callable(init) or n_positional(init) < 3:
            return {}
        X, H, Y = 5, 4, 3  # all different, as the checker's cases
        same_xy = False
        try:
            P = init(X, H, Y)
        except Exception:  # noqa: BLE001 - user code: any failure means "not these sizes"
            try:
                P, same_xy = init(X, H, X), True
            except Exception:  # noqa: BLE001
                return {}
        model: dict = {"same_xy": True} if same_xy else {}
        if not isinstance(P, dict):
            return model
        by_user = {u: c for c, u in self.names.items()}
        present = {by_user.get(str(k)) or canonical_for(self.arch_name, str(k)) for k in P}
        vectors = {k for k, v in self.arch.shapes(Dims(T=1, X=2, H=3, Y=5)).items()
                   if len(v) == 1}
        missing = [c for c in self.arch.param_names if c not in present]
        if missing and all(c in vectors for c in missing):
            model["absent"] = missing
        return model

    def _user_inputs(self, P, xs, ys, state, layout):
        H = len(state[0])
        user = layout.params_to_user(self.arch, P, H)
        st = layout.state_to_user(state)
        st_arg = st[0] if len(st) == 1 else tuple(st)
        return user, list(xs), list(ys), st, st_arg

    def call(self, P, xs, ys, state, layout: Layout, want_grads: bool):
        user, xs_l, ys_l, st, st_arg = self._user_inputs(P, xs, ys, state, layout)
        before = snapshot({**user, "inputs": xs_l, "targets": ys_l, **_states(st)})
        out = self.module.loss_and_grads(user, xs_l, ys_l, st_arg)
        changes = modified(before, {**user, "inputs": xs_l, "targets": ys_l, **_states(st)})
        if out is None:
            from bpttcheck.adapters.base import NotImplementedByUser
            raise NotImplementedByUser("loss_and_grads returned None: is it still a stub?")
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise InterfaceError(
                f"loss_and_grads returned {type(out).__name__}"
                f"{' of ' + str(len(out)) if isinstance(out, (tuple, list)) else ''}; "
                "expected (loss, grads, last_state)")
        loss = as_loss(out[0])
        grads = self._read_grads(out[1], user, layout, "loss_and_grads") if want_grads else None
        last = self._read_state(out[2] if len(out) == 3 else None, layout, len(state[0]))
        return loss, grads, last, changes

    def _read_grads(self, G, user: dict, layout: Layout, fn: str):
        if not isinstance(G, dict):
            raise InterfaceError(f"{fn} should return the gradients as a dict keyed by parameter "
                                 f"name; got {type(G).__name__}")
        by_user: dict[str, np.ndarray] = {}
        for gk, gv in G.items():
            key = str(gk)
            target = key if key in user else strip_grad_prefix(key)
            if target not in user:
                canon = canonical_for(self.arch_name, target or key)
                target = layout.user_name(canon) if canon else None
            if target is not None and target in user:
                by_user[target] = as_float_array(gv, f"gradient {key!r}")
        self._note_dtype(by_user.values())
        H = self._H
        shapes = self.arch.shapes(self._dims)
        return layout.grads_from_user(self.arch, by_user, shapes, H)

    def _read_state(self, s, layout: Layout, H: int):
        names = self.arch.state_names
        if s is None:
            return tuple(None for _ in names)
        if len(names) == 2:
            if not isinstance(s, (tuple, list)) or len(s) != 2:
                raise InterfaceError("the last state of an LSTM should be a pair (h, c); got "
                                     f"{type(s).__name__}")
            return tuple(layout.state_from_user(as_float_array(v, f"last {n}"), H, f"last {n}")
                         for n, v in zip(names, s, strict=False))
        return (layout.state_from_user(as_float_array(s, "last h"), H, "last h"),)


class SplitAdapter(FunctionalAdapter):
    name = "split"
    priority = 15
    entry = "forward"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        """forward(params, inputs, targets, state) and backward: a forward of another
        signature (forward(inputs, h, params) in many notebooks) is not this style's, and
        calling it as if it were would blame the user's code for our guess."""
        fw = getattr(module, "forward", None)
        return callable(fw) and callable(getattr(module, "backward", None)) and (
            n_positional(fw) in (-1, 4) or _takes_varargs(fw)) and _first_arg(fw) not in (
            "inputs", "input", "x", "xs", "X", "seq", "sequence", "data", "self")

    def call(self, P, xs, ys, state, layout: Layout, want_grads: bool):
        user, xs_l, ys_l, st, st_arg = self._user_inputs(P, xs, ys, state, layout)
        before = snapshot({**user, "inputs": xs_l, "targets": ys_l, **_states(st)})
        out = self.module.forward(user, xs_l, ys_l, st_arg)
        if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
            raise InterfaceError(f"forward returned {type(out).__name__}; expected (loss, cache) "
                                 "or (loss, cache, last_state)")
        loss = as_loss(out[0])
        grads = None
        if want_grads:
            bw = self.module.backward
            G = bw(user, out[1]) if n_positional(bw) >= 2 else bw(out[1])
            grads = self._read_grads(G, user, layout, "backward")
        changes = modified(before, {**user, "inputs": xs_l, "targets": ys_l, **_states(st)})
        last = self._read_state(out[2] if len(out) == 3 else None, layout, len(state[0]))
        return loss, grads, last, changes


def _first_arg(fn) -> str:
    import inspect
    try:
        return next(iter(inspect.signature(fn).parameters), "")
    except (TypeError, ValueError):
        return ""


def _takes_varargs(fn) -> bool:
    import inspect
    try:
        return any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False


def _states(st) -> dict:
    """The initial state arrays handed to the user's code, by how it reaches them: ``state``
    alone, ``state[0]``/``state[1]`` for an (h, c) pair (both are the caller's)."""
    return {"state": st[0]} if len(st) == 1 else {f"state[{i}]": s for i, s in enumerate(st)}
