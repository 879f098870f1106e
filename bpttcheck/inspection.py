"""What a loaded module that fits no style contains, as plain data: classes with their
training/gradient methods, functions that take caches or return gradients, and module arrays.

It runs in the worker, after the user's module is loaded, and calls none of the user's code:
it reads attributes, signatures (``inspect``) and the ``ast`` of the source (return
statements, ``self.X = ...`` assignments in ``__init__``). The result feeds the "no style
matched" message (``message``) and ``bpttcheck init`` (``glue.py``)."""
from __future__ import annotations

import ast
import inspect
import re
from typing import Any

from bpttcheck.names import canonical_for, guess_arch, strip_grad_prefix

# method names that train or return gradients, as real class-based code spells them
METHODS = ("forward", "backward", "bptt", "train", "train_step", "lossFun", "loss_fun",
           "loss", "step", "forward_backward", "loss_and_grads", "compute_gradients",
           "calculate_loss", "calculate_total_loss", "sgd_step")

# constructor argument names -> the size they stand for
ROLES = {
    "X": ("vocabsize", "inputsize", "inputdim", "worddim", "insize", "nx", "xdim", "vocab",
          "numinputs", "datadim", "vocablen", "ninput", "inputs", "indim", "v"),
    "H": ("hiddensize", "hiddendim", "hidden", "na", "nh", "hiddenunits", "memcellct",
          "numhidden", "hsize", "hdim", "nhidden", "units", "h"),
    "Y": ("outputsize", "outputdim", "outsize", "ny", "numoutputs", "outdim", "noutput",
          "ydim", "numclasses", "nclasses", "y"),
}
INPUTS = ("inputs", "input", "x", "xs", "seq", "sequence", "inputseq", "xseq", "xlist", "data")
TARGETS = ("targets", "target", "y", "ys", "labels", "label", "yseq", "ylist", "t", "ts")
HSTATE = ("hprev", "h0", "hprev", "h", "hidden", "state", "hinit", "aprev", "a0", "prevh",
          "hiddenstate", "hs0", "s0", "initialstate")
CSTATE = ("cprev", "c0", "c", "cell", "cinit", "prevc", "cellstate")
DY = ("dy", "dout", "dys", "dlogits", "doutput", "gradoutput", "delta", "dz", "dscores", "grad",
      "dprobs", "dp")
_INIT_CALLS = {"randn", "rand", "zeros", "ones", "empty", "uniform", "normal", "standard_normal",
               "random", "random_sample", "full", "randint", "xavier", "glorot", "orthogonal"}


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def role_of_arg(name: str) -> str | None:
    n = _norm(name)
    return next((r for r, names in ROLES.items() if n in names), None)


def arg_kind(name: str) -> str | None:
    """inputs | targets | h | c | dy for a method's parameter name, else None."""
    n = _norm(name)
    for kind, names in (("inputs", INPUTS), ("targets", TARGETS), ("c", CSTATE),
                        ("h", HSTATE), ("dy", DY)):
        if n in names:
            return kind
    for kind, parts in (("inputs", ("input",)), ("targets", ("target", "label")),
                        ("c", ("cell",)), ("h", ("hidden", "hprev", "hinit", "state"))):
        if any(p in n for p in parts) and role_of_arg(name) is None:  # hidden_initial
            return kind
    return None


def inspect_module(mod) -> dict:
    """Plain data on what ``mod`` defines (see the module docstring)."""
    src = getattr(mod, "__bpttcheck_source__", "") or ""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        tree = ast.Module([], [])
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    classes, functions, arrays = [], [], []
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_"):
            continue
        node = defs.get(name)
        if inspect.isclass(obj) and isinstance(node, ast.ClassDef):
            classes.append(_class(obj, node))
        elif inspect.isfunction(obj) and isinstance(node, ast.FunctionDef):
            f = _function(obj, node)
            if f["kind"]:
                functions.append(f)
        elif type(getattr(obj, "shape", None)) is tuple and len(obj.shape) in (1, 2):
            arrays.append({"name": name, "shape": [int(s) for s in obj.shape]})
    classes.sort(key=lambda c: -c["score"])
    return {"classes": classes, "functions": functions, "arrays": arrays}


def _signature(fn) -> str:
    """The signature without annotations, and defaults only when short (``p=params`` bound
    to a tuple of arrays would print them all): what the message needs is the names."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "(...)"
    out = []
    for p in sig.parameters.values():
        text = str(p.replace(annotation=p.empty, default=p.empty))
        if p.default is not p.empty:
            shown = repr(p.default)
            text += "=" + (shown if len(shown) <= 20 and "\n" not in shown else "...")
        out.append(text)
    return "(" + ", ".join(out) + ")"


def _params(fn, drop_self: bool) -> list[dict]:
    try:
        ps = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    if drop_self and ps:
        ps = ps[1:]
    return [{"name": p.name,
             "default": None if p.default is inspect.Parameter.empty else repr(p.default),
             "kind": arg_kind(p.name), "role": role_of_arg(p.name)}
            for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _returns(node: ast.FunctionDef) -> list[str]:
    """The elements of the function's last ``return`` with a value, as source text."""
    rets = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
    if not rets:
        return []
    v = rets[-1].value
    assert v is not None
    elts = v.elts if isinstance(v, (ast.Tuple, ast.List)) else [v]
    return [ast.unparse(e) for e in elts]


def _self_assigned(node: ast.FunctionDef) -> list[str]:
    """Attributes the method assigns: ``self.dW = ...`` or ``self.dW += ...``, in order."""
    out: list[str] = []
    for n in ast.walk(node):
        targets = n.targets if isinstance(n, ast.Assign) else (
            [n.target] if isinstance(n, (ast.AugAssign, ast.AnnAssign)) else [])
        for t in targets:
            for e in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if (isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name)
                        and e.value.id == "self" and e.attr not in out):
                    out.append(e.attr)
    return out


def _class(cls, node: ast.ClassDef) -> dict:
    methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
    init = methods.get("__init__")
    ctor = _params(cls.__init__, True) if init else []
    params = _init_params(init, ctor) if init else []
    listed: list[dict[str, Any]] = []
    for m in methods:
        if m in METHODS or _norm(m) in map(_norm, METHODS) or m.startswith(("forward", "backward")):
            fn = getattr(cls, m, None)
            listed.append({"name": m, "signature": _signature(fn), "args": _params(fn, True),
                           "returns": _returns(methods[m]),
                           "assigns": _self_assigned(methods[m]), "line": methods[m].lineno,
                           "softmax": "exp(" in ast.unparse(methods[m])
                           or "softmax" in ast.unparse(methods[m])})
    names = [p["attr"] for p in params]
    arch = guess_arch(names)
    text = (cls.__name__ + " " + " ".join(a["name"] for m in listed for a in m["args"])).lower()
    stacked = next((p["attr"] for p in params if p["shape"] and re.fullmatch(
        r"[34]\*H", p["shape"][0])), None)
    if arch is None:
        if "lstm" in text or any(a["kind"] == "c" for m in listed for a in m["args"]):
            arch = "lstm"
        elif "gru" in text or (stacked and any(p["shape"][0] == "3*H" for p in params
                                               if p["shape"])):
            arch = "gru"
        elif names:
            arch = "rnn"
    for p in params:
        p["canon"] = canonical_for(arch, p["attr"]) if arch else None
    gate_order = _gate_order(node) if arch == "lstm" and stacked else None
    score = len(listed) * 2 + sum(p["canon"] is not None for p in params)
    return {"name": cls.__name__, "line": node.lineno, "ctor": ctor, "params": params,
            "methods": listed, "arch": arch, "stacked": stacked, "gate_order": gate_order,
            "score": score}


def _init_params(init: ast.FunctionDef, ctor: list[dict]) -> list[dict]:
    """``self.NAME = <numpy initialiser>(shape)`` in __init__: the parameter attributes, with
    their shapes written in the sizes X, H, Y where the constructor's names say which."""
    roles = {a["name"]: a["role"] for a in ctor if a["role"]}
    for n in ast.walk(init):  # aliases: self.hidden_size = hidden_size, H = hidden_size
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and isinstance(
                n.value, (ast.Name, ast.Attribute)):
            src = ast.unparse(n.value)
            role = roles.get(src) or roles.get(src.removeprefix("self."))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if role and isinstance(t, (ast.Name, ast.Attribute)):
                    roles[ast.unparse(t)] = role
        elif (isinstance(n, ast.Assign) and isinstance(n.value, ast.BinOp)
              and len(n.targets) == 1 and isinstance(n.targets[0], (ast.Name, ast.Attribute))):
            sized = _sized(n.value, roles)  # concat_len = x_dim + mem_cell_ct -> X+H
            if set(re.findall(r"[A-Za-z_]\w*", sized)) <= {"X", "H", "Y"}:
                roles[ast.unparse(n.targets[0])] = sized
    out = []
    for n in ast.walk(init):
        if isinstance(n, ast.AnnAssign) and n.value is not None:  # self.Wxh: Array = ...
            t = n.target
        elif isinstance(n, ast.Assign) and len(n.targets) == 1:
            t = n.targets[0]
        else:
            continue
        if not (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                and t.value.id == "self"):
            continue
        dims = _init_shape(n.value) if n.value is not None else None
        if dims is None:
            continue
        out.append({"attr": t.attr, "line": n.lineno,
                    "shape": [_sized(d, roles) for d in dims]})
    return out


def _init_shape(value: ast.expr) -> list[ast.expr] | None:
    for c in ast.walk(value):
        if not isinstance(c, ast.Call):
            continue
        fname = c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
        if fname not in _INIT_CALLS:
            continue
        kw = {k.arg: k.value for k in c.keywords}
        shape = kw.get("size") or kw.get("shape")
        if shape is None and fname in ("uniform", "normal", "randint") and len(c.args) >= 3:
            shape = c.args[2]
        if shape is None and fname in ("randn", "rand") and c.args:
            return list(c.args)
        if shape is None and c.args and fname not in ("uniform", "normal", "randint"):
            shape = c.args[0]
        if shape is None:
            return None
        return list(shape.elts) if isinstance(shape, (ast.Tuple, ast.List)) else [shape]
    return None


class _Sizes(ast.NodeTransformer):
    def __init__(self, roles):
        self.roles = roles

    def visit_Name(self, n):
        return ast.Name(self.roles.get(n.id, n.id))

    def visit_Attribute(self, n):
        role = self.roles.get(ast.unparse(n))
        return ast.Name(role) if role else n


def _sized(d: ast.expr, roles: dict) -> str:
    return ast.unparse(_Sizes(roles).visit(ast.parse(ast.unparse(d), mode="eval").body)).replace(" ", "")


# gate variables of a stacked LSTM, normalised -> gate letter
_GATES = {"i": "i", "ig": "i", "it": "i", "inputgate": "i", "igate": "i",
          "f": "f", "fg": "f", "ft": "f", "forgetgate": "f", "fgate": "f",
          "o": "o", "og": "o", "ot": "o", "outputgate": "o", "ogate": "o",
          "g": "g", "gg": "g", "gt": "g", "cbar": "g", "ctilde": "g", "chat": "g", "cc": "g",
          "cand": "g", "candidate": "g", "cct": "g", "u": "g"}


def _gate_order(node: ast.ClassDef) -> str | None:
    """The order of a stacked LSTM's gate blocks, from ``i = sigmoid(a[:H])``-like slices
    (their start, counted in H) or ``i, f, o, g = np.split(a, 4)``; None if not readable."""
    found: dict[str, float] = {}
    for n in ast.walk(node):
        if not isinstance(n, ast.Assign) or len(n.targets) != 1:
            continue
        t = n.targets[0]
        if isinstance(t, ast.Tuple) and len(t.elts) == 4 and "split" in ast.unparse(n.value):
            gates = [_GATES.get(_norm(ast.unparse(e)).removeprefix("self")) for e in t.elts]
            if sorted(filter(None, gates)) == ["f", "g", "i", "o"]:
                return "".join(gates)  # type: ignore[arg-type]
        if not isinstance(t, ast.Name) or _norm(t.id) not in _GATES:
            continue
        gate = _GATES[_norm(t.id)]
        for s in ast.walk(n.value):
            if isinstance(s, ast.Subscript):
                sl = s.slice.elts[0] if isinstance(s.slice, ast.Tuple) else s.slice
                if isinstance(sl, ast.Slice):
                    start = _value(sl.lower) if sl.lower is not None else 0.0
                    if start is not None and gate not in found:
                        found[gate] = start
                    break
    if sorted(found) == ["f", "g", "i", "o"] and len(set(found.values())) == 4:
        return "".join(sorted(found, key=found.__getitem__))
    return None


def _value(e: ast.expr) -> float | None:
    """A slice bound with every name taken as 1 (H): ``2*H`` -> 2; None if not arithmetic."""
    if isinstance(e, ast.Constant) and isinstance(e.value, (int, float)):
        return float(e.value)
    if isinstance(e, (ast.Name, ast.Attribute)):
        return 1.0
    if isinstance(e, ast.BinOp):
        a, b = _value(e.left), _value(e.right)
        if a is None or b is None:
            return None
        ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
        return ops.get(type(e.op))
    return None


def _function(fn, node: ast.FunctionDef) -> dict:
    args = _params(fn, False)
    rets = _returns(node)
    kind = None
    if "cache" in " ".join(a["name"] for a in args).lower() and node.name.endswith("backward"):
        kind = "cache-backward"
    elif any(strip_grad_prefix(r) and re.fullmatch(r"d_?[A-Za-z]\w*", r) for r in rets) or any(
            _norm(r) in ("grads", "gradients") for r in rets):
        kind = "returns-gradients"
    elif node.name.endswith("forward") or node.name in METHODS:
        kind = "forward"
    return {"name": node.name, "signature": _signature(fn), "returns": rets, "kind": kind,
            "line": node.lineno}


# ---------------------------------------------------------------------- the message

def message(found: dict, filename: str = "FILE") -> str:
    """What the module defines and the closest built-in style, for the 'no style' error."""
    parts = []
    for c in found["classes"][:3]:
        ms = ", ".join(f"{m['name']}{m['signature']}" + (f" -> {', '.join(m['returns'])}"
                                                        if m["returns"] else "")
                       for m in c["methods"][:6])
        ps = ", ".join(f"self.{p['attr']} ({', '.join(p['shape'])})" for p in c["params"][:10])
        parts.append(f"class {c['name']}{_signature_text(c)}" + (f" with {ms}" if ms else
                                                                 " (no forward/backward/train "
                                                                 "methods)")
                     + (f"; parameters {ps}" if ps else ""))
    caches = [f for f in found["functions"] if f["kind"] == "cache-backward"]
    grads = [f for f in found["functions"] if f["kind"] == "returns-gradients"]
    if caches:
        parts.append("functions taking caches: " + ", ".join(
            f"{f['name']}{f['signature']}" for f in caches[:6]))
    if grads:
        parts.append("functions returning gradients: " + ", ".join(
            f"{f['name']}{f['signature']} -> {', '.join(f['returns'])}" for f in grads[:6]))
    if found["arrays"]:
        parts.append("module arrays: " + ", ".join(
            f"{a['name']} ({', '.join(map(str, a['shape']))})" for a in found["arrays"][:12]))
    head = ("found none of the entry points bpttcheck knows (the styles karpathy, functional, "
            "split, layers, dlai, dlai-char, dlfs2, wildml: README, \"How your code plugs in\")")
    if not parts:
        return (head + ", and no class, gradient function or parameter array either. Define "
                "loss_and_grads(params, inputs, targets, state) -> (loss, grads, last_state) "
                "(see reference/python/rnn_functional.py).")
    style, missing = closest(found)
    text = head + ". This file defines: " + "; ".join(parts) + "."
    text += f" Closest style: {style} — {missing}."
    if found["classes"] and found["classes"][0]["methods"]:
        text += (f" `bpttcheck init {filename}` writes a wrapper for the class in the functional "
                 "style, to run with `bpttcheck run`.")
    return text


def _signature_text(c: dict) -> str:
    return "(" + ", ".join(a["name"] + (f"={a['default']}" if a["default"] else "")
                           for a in c["ctor"]) + ")"


def closest(found: dict) -> tuple[str, str]:
    """(style, what is missing for it) for the built-in style nearest to what was found."""
    arrays = {a["name"] for a in found["arrays"]}
    if found["classes"]:
        c = found["classes"][0]
        ms = {m["name"] for m in c["methods"]}
        attrs = {p["attr"] for p in c["params"]}
        if "bptt" in ms:
            lack = sorted({"U", "V", "W"} - attrs)
            return "wildml", (f"class {c['name']} has bptt() but " + (
                f"no attributes {', '.join(lack)}" if lack else
                "no calculate_total_loss/calculate_loss") + " as the WildML tutorial's RNNNumpy")
        loss_m = next((m for m in c["methods"] if any(a["kind"] == "targets" for a in m["args"])
                       and any(a["kind"] in ("h", "c") for a in m["args"])), None)
        if loss_m:
            return "karpathy", (f"{c['name']}.{loss_m['name']} is a method, not a module "
                                f"function lossFun({', '.join(a['name'] for a in loss_m['args'])})"
                                f", and the parameters are attributes (self."
                                f"{c['params'][0]['attr'] if attrs else 'Wxh'}), not "
                                "module globals")
        if {"forward", "backward"} <= ms:
            return "dlfs2", (f"{c['name']} has forward/backward, but it is not one of the "
                             "book's RNN/TimeRNN/LSTM/TimeLSTM/GRU/TimeGRU classes (params and "
                             "grads lists)")
        return "functional", (f"class {c['name']} needs a function loss_and_grads(params, "
                              "inputs, targets, state) around it")
    fnames = {f["name"] for f in found["functions"]}
    if any(f["kind"] == "cache-backward" for f in found["functions"]):
        return "layers", ("the backward functions take caches, but their names or arguments "
                          "are not the course API's (rnn_step_backward(dnext_h, cache), "
                          "rnn_backward(dh, cache), lstm_...)")
    if "forward" in fnames or "backward" in fnames:
        return "split", "forward(params, inputs, targets, state) and backward(params, cache) both"
    if {"Wxh", "Whh", "Why"} & arrays or guess_arch(arrays):
        return "karpathy", ("module arrays are there, but no lossFun(inputs, targets, hprev) "
                            "returning (loss, dWxh, dWhh, dWhy, dbh, dby, h_last)")
    return "functional", "a function loss_and_grads(params, inputs, targets, state)"
