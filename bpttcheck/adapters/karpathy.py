"""Karpathy style (CONTRACT 2.1): parameters are module globals, ``lossFun(inputs, targets,
hprev[, cprev])`` returns the loss, the gradients and the last state in the order its
``return`` statement names them (``dWf`` goes with the global ``Wf``)."""
from __future__ import annotations

import ast
import contextlib

import numpy as np

from bpttcheck.adapters.base import (
    PythonAdapter,
    as_float_array,
    as_loss,
    dims_from_shapes,
    modified,
    n_positional,
    snapshot,
)
from bpttcheck.archmeta import Dims, concat_weights, meta, without
from bpttcheck.errors import InterfaceError
from bpttcheck.layout import Layout
from bpttcheck.names import canonical_for, guess_arch, strip_grad_prefix


class KarpathyAdapter(PythonAdapter):
    name = "karpathy"
    priority = 10
    fixed_sizes = "XHY"  # the globals fix X, H and Y; lossFun takes any T
    entry = "lossFun"

    @classmethod
    def detect(cls, module, path: str) -> bool:
        return callable(getattr(module, "lossFun", None))

    def __init__(self, module, path, options):
        super().__init__(module, path, options)
        self.fn = module.lossFun
        arrays = {k: v for k, v in vars(module).items()
                  if isinstance(v, np.ndarray) and v.ndim in (1, 2) and not k.startswith("_")}
        guessed = guess_arch(arrays)
        takes_c = n_positional(self.fn) == 4  # lossFun(inputs, targets, hprev, cprev)
        if takes_c and guessed == "rnn" and not options.get("arch"):
            guessed = "lstm"  # the signature outranks RNN-looking names (stacked LSTMs use them)
        self.arch_name = options.get("arch") or guessed or ("lstm" if takes_c else "rnn")
        if guessed and guessed != self.arch_name:
            self.arch_mismatch = (self.arch_name, guessed)
        full = meta(self.arch_name)
        self.globals: dict[str, str] = dict(options.get("names", {}))  # canonical -> global
        for k in arrays:
            canon = canonical_for(self.arch_name, k)
            if canon and (canon not in self.globals or k == canon):
                self.globals[canon] = k
        self._by_elimination(full, arrays)
        missing = [c for c in full.param_names if c not in self.globals]
        # a bias the module has no global for is a bias the model does not have; a weight is not
        vectors = {k for k, s in full.shapes(Dims(T=1, X=2, H=3, Y=5)).items() if len(s) == 1}
        self.absent = [c for c in missing if c in vectors]
        weights = [c for c in missing if c not in vectors]
        if weights:
            raise InterfaceError(self._unmapped(weights, arrays, takes_c))
        self.arch = without(full, self.absent)
        shapes = {c: arrays[g].shape for c, g in self.globals.items()}
        biases = [s for c, s in shapes.items() if c in vectors]
        # column vectors, as min-char-rnn; a model without biases says so only through hprev
        self.column = any(len(s) == 2 and s[1] == 1 for s in biases) if biases else None
        flat = {c: (s[0],) if c[0] == "b" else s for c, s in shapes.items()}
        self.dims = dims_from_shapes(self.arch_name, flat)
        self.order = self._return_order()
        # globals kept in a narrower float (float32, to halve memory): the code computes in it,
        # so the parameters are handed over in it too, and it is judged at that precision
        self.narrow = {g: arrays[g].dtype for g in self.globals.values() if g in arrays
                       and np.issubdtype(arrays[g].dtype, np.floating)
                       and arrays[g].dtype.itemsize < 8}
        if self.narrow:
            names = ", ".join(f"{g} {d}" for g, d in self.narrow.items())
            self.notes.append({"id": "precision", "title": "Parameters kept in your globals' dtype",
                               "evidence": f"your globals are {names}: your code computes in "
                                           f"that precision, so they were set in it for every "
                                           f"call and judged at its precision"})

    def _by_elimination(self, arch, arrays: dict) -> None:
        """One gate matrix left unnamed (Wcc, Wa, ...) while the others are known: the one
        unmapped global of a gate matrix's shape is that gate; its bias is b + the same suffix."""
        gates = concat_weights(arch)
        left = [c for c in gates if c not in self.globals]
        if len(left) != 1 or not any(c in self.globals for c in gates):
            return
        shape = arrays[self.globals[next(c for c in gates if c in self.globals)]].shape
        taken = set(self.globals.values())
        free = [k for k, v in arrays.items() if k not in taken and v.shape == shape
                and k[:1] in "Ww"]
        if len(free) != 1:
            return
        self.globals[left[0]] = free[0]
        bias, user_bias = "b" + left[0][1:], "b" + free[0][1:]
        if bias in arch.param_names and bias not in self.globals and user_bias in arrays:
            self.globals[bias] = user_bias

    def _unmapped(self, weights: list[str], arrays: dict, takes_c: bool) -> str:
        have = ", ".join(f"{k} {arrays[k].shape}" for k in arrays) or "none"
        msg = (f"lossFun found, but no module globals for {', '.join(weights)} "
               f"({self.arch_name}); the module's arrays are: {have}. ")
        if takes_c and self.arch_name == "lstm" and "Wxh" in arrays:
            msg += ("lossFun takes (inputs, targets, hprev, cprev), an LSTM, but its globals have "
                    "the RNN's names; stacked gate blocks in Wxh/Whh/bh are not supported yet: "
                    "keep one matrix per gate (Wf, Wi, Wg, Wo on [h; x]) or name them in a spec")
        else:
            msg += ("define them at module level as min-char-rnn does, or name them in a spec "
                    f"([names] {weights[0]} = \"your_name\")")
        return msg

    def _return_order(self) -> list[tuple[str, str]]:
        """[(kind, what)]: ('loss', ''), ('grad', canonical) or ('state', 'h'|'c') per position."""
        declared = self.options.get("returns")
        if declared:
            return [_declared(label, self.arch_name, self.arch.param_names) for label in declared]
        src = getattr(self.module, "__bpttcheck_source__", "")
        fn_node = next((n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)
                        and n.name == "lossFun"), None) if src else None
        rets = [n.value for n in ast.walk(fn_node) if isinstance(n, ast.Return)
                and isinstance(n.value, ast.Tuple)] if fn_node else []
        by_global = {g: c for c, g in self.globals.items()}
        for ret in rets:
            order = []
            for elt in ret.elts:
                label = _label(elt)
                base = strip_grad_prefix(label) if label else None
                canon = (by_global.get(base) or canonical_for(self.arch_name, base)) if base else None
                if label and "loss" in label.lower():
                    order.append(("loss", ""))
                elif canon:
                    order.append(("grad", canon))
                elif label and label.lower().lstrip("_")[:1] in ("h", "c"):
                    order.append(("state", label.lower().lstrip("_")[0]))
                else:
                    order = []
                    break
            if order and sum(k == "grad" for k, _ in order) == len(self.arch.param_names):
                return order
        default = [("loss", "")] + [("grad", c) for c in self.arch.param_names]
        return default + [("state", s) for s in self.arch.state_names]

    def describe(self) -> dict:
        columns = [self.column] if self.column is not None else [True, False]
        concats = ["hx"]
        if concat_weights(self.arch):  # gate matrices act on [h; x] or [x; h]
            declared = self.options.get("concat")
            concats = [declared] if declared else ["hx", "xh"]
        layouts = [Layout(names=self.globals, column=col, concat=c)
                   for c in concats for col in columns]
        if self.order[0] != ("loss", ""):
            self.notes.append({"id": "layout.inferred", "title": "Return order read from lossFun",
                               "evidence": "lossFun returns " + ", ".join(
                                   w or k for k, w in self.order)})
        return {"arch": self.arch_name, "dims": self.dims, "layouts": layouts,
                "model": {"absent": self.absent}}

    def call(self, P, xs, ys, state, layout: Layout, want_grads: bool):
        H = self.dims.H
        user = layout.params_to_user(self.arch, P, H)
        g = vars(self.module)
        for k, v in user.items():
            g[k] = v.astype(self.narrow[k]) if k in self.narrow else v
        states = [s.reshape(-1, 1) if layout.column else s.copy()
                  for s in layout.state_to_user(state)]
        xs_l, ys_l = list(xs), list(ys)
        # the initial state is the caller's too (its hprev): a lossFun that writes into it
        # changes the state the training loop carries on with
        handed = {"inputs": xs_l, "targets": ys_l,
                  **dict(zip(self._state_labels(len(states)), states, strict=False))}
        before = snapshot({**{k: g[k] for k in user}, **handed})
        with _size_globals(g, self.dims.X, H, len(xs)):
            out = self.fn(xs_l, ys_l, *states)
        changes = modified(before, {**{k: g[k] for k in user}, **handed})  # g[k]: rebound too
        if not isinstance(out, tuple) or len(out) != len(self.order):
            got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
            raise InterfaceError(f"lossFun returned {got}; expected {len(self.order)} values: "
                                 + ", ".join(w or k for k, w in self.order))
        loss, grads, new_state = None, {}, {}
        for (kind, what), val in zip(self.order, out, strict=False):
            if kind == "loss":
                loss = as_loss(val)
            elif kind == "grad":
                grads[layout.user_name(what)] = as_float_array(val, f"d{layout.user_name(what)}")
            else:
                new_state[what] = val
        self._note_dtype(grads.values())
        canon = layout.grads_from_user(self.arch, grads, self.arch.shapes(self._dims_for(len(xs))), H)
        last = tuple(layout.state_from_user(new_state.get(s), H, f"last {s}") if s in new_state
                     else None for s in self.arch.state_names)
        return loss, canon, last, changes

    def _state_labels(self, n: int) -> list[str]:
        """lossFun's names of its state arguments (hprev, cprev), after inputs and targets."""
        import inspect
        try:
            names = list(inspect.signature(self.fn).parameters)[2:]
        except (TypeError, ValueError):
            names = []
        return [names[i] if i < len(names) else ("hprev", "cprev")[i % 2] for i in range(n)]

    def _dims_for(self, T):
        d = self.dims
        return type(d)(T=T, X=d.X, H=d.H, Y=d.Y)


# the size globals min-char-rnn and its LSTM cousins read inside lossFun
SIZE_GLOBALS = {"vocab_size": "X", "V": "X", "hidden_size": "H", "H": "H", "HV": "H+X",
                "seq_length": "T"}


@contextlib.contextmanager
def _size_globals(g: dict, X: int, H: int, T: int):
    """Set the module's integer size globals to the case's sizes for one call, then put the
    user's values back (they may be read by code that runs later, such as sampling)."""
    sizes = {"X": X, "H": H, "H+X": H + X, "T": T}
    saved = {k: g[k] for k in SIZE_GLOBALS if type(g.get(k)) is int}
    g.update({k: sizes[SIZE_GLOBALS[k]] for k in saved})
    try:
        yield
    finally:
        g.update(saved)


def _declared(label: str, arch: str, names) -> tuple[str, str]:
    """A spec's `returns` entry: "loss", "h", "c", or a gradient such as "dWf" / "dW_f"."""
    if label == "loss":
        return ("loss", "")
    if label in ("h", "c"):
        return ("state", label)
    base = strip_grad_prefix(label)
    canon = base if base in names else canonical_for(arch, base or label)
    if canon is None:
        raise InterfaceError(f"returns entry {label!r} is neither loss, h, c nor the gradient of "
                             f"a parameter ({', '.join('d' + n for n in names)})")
    return ("grad", canon)


def _label(node) -> str | None:
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call) and node.args:  # np.copy(hs[-1]) and the like
        return _label(node.args[0])
    return None
