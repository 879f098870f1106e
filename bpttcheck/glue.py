"""``bpttcheck init``: the text of a functional-style wrapper (CONTRACT §2.2) around a class
found by ``inspection.py``. Pure: plain data in, Python source out; nothing here runs user
code. Every guess the user may have to correct is on a line marked ``MARK``."""
from __future__ import annotations

import re

from bpttcheck.names import strip_grad_prefix

HEADER = "# bpttcheck init: wrapper written by `bpttcheck init`"  # --force replaces only these
MARK = "  # bpttcheck init: check this"
_LOSS_HINTS = ("train", "train_step", "lossFun", "loss_fun", "loss", "forward_backward",
               "loss_and_grads", "compute_gradients", "step", "bptt")
_GUESSES = {"learningrate": "0.1", "lr": "0.1", "seqlength": "25", "seqlen": "25",
            "bptttruncate": "1000", "batchsize": "1"}


_DICTS = ("grads", "gradients", "grad", "dparams", "derivatives")  # {name: gradient}


class _Out:
    """The wrapper's lines, and the guesses among them (marked for the user)."""

    def __init__(self):
        self.lines: list[str] = []
        self.marks: list[str] = []

    def add(self, text: str, why: str | None = None) -> None:
        if why:
            self.marks.append(why)
            text += MARK + f" ({why})"
        self.lines.append(text)

    def extend(self, texts: list[str]) -> None:
        self.lines.extend(texts)


class NoClass(Exception):
    """The inspection found no class the wrapper could drive; the message says why."""


def written_by_init(text: str) -> bool:
    return text.startswith(HEADER)


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _grad_of(expr: str, attrs: list[str]) -> str | None:
    """The parameter attribute a returned name is the gradient of: dWxh -> Wxh."""
    name = expr.removeprefix("self.")
    base = strip_grad_prefix(name)
    if base is None:
        return None
    return next((a for a in attrs if _norm(a) == _norm(base)), None)


def classify(expr: str, attrs: list[str]) -> tuple[str, str | None]:
    """What a returned expression is: ('loss'|'grad'|'h'|'c'|'other', attribute)."""
    g = _grad_of(expr, attrs)
    if g:
        return "grad", g
    low = expr.lower()
    if _norm(expr.removeprefix("self.")) in _DICTS:
        return "grads", None
    if "loss" in low or low in ("l", "cost", "j", "err", "error"):
        return "loss", None
    head = _norm(expr.split("[")[0].removeprefix("self."))
    if head in ("h", "hs", "hprev", "hlast", "hnext", "hidden", "a", "s", "state", "hn", "ht"):
        return "h", None
    if head in ("c", "cs", "cprev", "clast", "cnext", "cell", "cn", "ct"):
        return "c", None
    return "other", None


def pick(found: dict) -> tuple[dict, str, dict, dict | None]:
    """(class, mode, loss method or forward, backward) the wrapper drives: mode 'loss' (one
    method returns the loss and the gradients) or 'pair' (forward, then backward)."""
    for c in found["classes"]:
        attrs = [p["attr"] for p in c["params"]]
        if not attrs:
            continue
        ms = {m["name"]: m for m in c["methods"]}
        loss_ms = [m for m in c["methods"]
                   if (sum(classify(r, attrs)[0] == "grad" for r in m["returns"]) >= 2
                       or any(classify(r, attrs)[0] == "grads" for r in m["returns"]))
                   and any(a["kind"] == "inputs" for a in m["args"])]
        loss_ms.sort(key=lambda m: (m["name"] not in _LOSS_HINTS, m["line"]))
        if loss_ms:
            return c, "loss", loss_ms[0], None
        fw = ms.get("forward")
        bw = ms.get("backward") or next((m for n, m in ms.items() if n.startswith("backward")),
                                        None)
        if fw and bw:
            return c, "pair", fw, bw
    names = ", ".join(c["name"] for c in found["classes"]) or "none"
    raise NoClass("bpttcheck init found no class it can wrap (classes: " + names + "): it needs "
                  "parameters set in __init__ (self.W = np.random.randn(...)) and either a "
                  "method that returns the loss and the gradients (train, lossFun, ...) or a "
                  "forward/backward pair")


def render(found: dict, filename: str, version: str = "") -> tuple[str, list[str]]:
    """(the wrapper's source, the guesses it marks) for the module ``filename``."""
    c, mode, m, bw = pick(found)
    attrs = [p["attr"] for p in c["params"]]
    arch = c["arch"] or "rnn"
    lstm = arch == "lstm"
    out = _Out()
    L, line = out.lines, out.add
    L += [HEADER + f" {filename}" + (f" (bpttcheck {version})" if version else "")
          + "; `bpttcheck init --force` may replace it",
          '"""Runs class ' + c["name"] + " of " + filename + " in bpttcheck's functional style:",
          "loss_and_grads(params, inputs, targets, state) -> (loss, grads, last_state).",
          "Lines marked `bpttcheck init: check this` are guesses: read them before trusting a",
          'verdict. Check it with `bpttcheck run ' + filename[:-3] + '_bpttcheck.py`."""',
          "import ast", "import os", "import types", "", "import numpy as np", "",
          "_HERE = os.path.dirname(os.path.abspath(__file__))", "", "",
          "def _load(name):",
          '    """Runs the model file as a module, without its top-level `while` loops (training',
          '    loops; bpttcheck skips them in the files it checks, this does the same here)."""',
          "    path = os.path.join(_HERE, name)",
          "    with open(path, encoding=\"utf-8\") as f:",
          "        tree = ast.parse(f.read(), path)",
          "    tree.body = [s for s in tree.body if not isinstance(s, ast.While)]",
          "    mod = types.ModuleType(os.path.splitext(name)[0])",
          "    mod.__file__ = path",
          "    exec(compile(tree, path, \"exec\"), mod.__dict__)",
          "    return mod", "", "",
          f"MODEL = _load({filename!r}).{c['name']}", ""]
    # the parameters: attributes set in __init__, with the canonical group each stands for
    stacked = c["stacked"]
    names: dict[str, str] = {}
    L.append("# the parameters: attributes __init__ sets, with their shapes in __init__")
    L.append("PARAMS = [")
    for p in c["params"]:
        shape = "(" + ", ".join(p["shape"]) + ")"
        if stacked and p["shape"] and re.fullmatch(r"[34]\*H", p["shape"][0]):
            line(f"    {p['attr']!r},  # {shape}, stacked gate blocks")
            continue
        if p["canon"]:
            names[p["canon"]] = p["attr"]
            line(f"    {p['attr']!r},  # {shape} -> {p['canon']}")
        else:
            line(f"    {p['attr']!r},  # {shape}, not a parameter group bpttcheck knows",
                 f"self.{p['attr']}: remove it if it is not a parameter, or name it in "
                 "BPTTCHECK['names']")
    L.append("]")
    L.append("")
    L.append("BPTTCHECK = {")
    line(f"    \"arch\": {arch!r},", None if c["arch"] else "architecture guessed")
    L.append("    \"names\": {" + ", ".join(f"{k!r}: {v!r}" for k, v in names.items()) + "},")
    if stacked:
        bias = next((p["attr"] for p in c["params"] if p["attr"] != stacked and p["shape"]
                     and re.fullmatch(r"[34]\*H", p["shape"][0])), "b")
        L.append("    \"stacked\": True,")
        L.append(f"    \"stacked_names\": ({stacked!r}, {bias!r}),")
        if c["gate_order"]:
            line(f"    \"gate_order\": {c['gate_order']!r},  # read from the slices in the source")
        else:
            line("    \"gate_order\": \"ifgo\",", "order of the gate blocks in "
                 f"self.{stacked}, not readable from the source")
    roles = {a["role"] for a in c["ctor"]}
    if "Y" not in roles:
        L.append("    \"same_xy\": True,  # the constructor has no output size: Y = X")
    fw_args = m["args"]
    if not any(a["kind"] == "h" for a in fw_args):
        L.append("    \"state\": \"zeros\",  # the method takes no initial state")
    L += ["}", "", ""]
    _build(c, lstm, out)
    L += ["", "", "def loss_and_grads(params, inputs, targets, state):",
          "    X, H, Y = _sizes(params, state)",
          "    model = _build(X, H, Y)",
          "    for name in PARAMS:  # copies: the method may update them in place",
          "        setattr(model, name, np.array(params[name], dtype=float))",
          "    h0, c0 = state if isinstance(state, tuple) else (state, None)",
          "    h0 = np.array(h0, dtype=float)",
          "    c0 = None if c0 is None else np.array(c0, dtype=float)"]
    if mode == "loss":
        _loss_mode(m, attrs, out)
    else:
        assert bw is not None  # pick() pairs a forward with a backward
        _pair_mode(m, bw, attrs, out)
    L.append("    return loss, grads, " + ("(h, c)" if lstm else "h"))
    if mode == "pair":
        L += ["", "", "def _rows(ys, T):", '    """The outputs as a (T, Y) array."""',
              "    return np.asarray(ys, dtype=float).reshape(T, -1)", "", "",
              "def _like(d, ys):", '    """d (T, Y) in the form the outputs came in."""',
              "    if isinstance(ys, (list, tuple)):",
              "        return [d[t].reshape(np.shape(y)) for t, y in enumerate(ys)]",
              "    return d.reshape(np.shape(ys))"]
    return "\n".join(L) + "\n", out.marks


def _call_args(args: list[dict], out, what: str) -> str:
    vals = []
    for a in args:
        k = a["kind"]
        if k == "inputs":
            vals.append("list(inputs)")
        elif k == "targets":
            vals.append("list(targets)")
        elif k == "h":
            vals.append("h0")
        elif k == "c":
            vals.append("c0")
        elif k == "dy":
            vals.append("dy")
        elif a["role"]:  # train(self, inputs, targets, vocab_size, hidden_initial)
            vals.append(a["role"])
        elif a["default"] is None:
            vals.append("None")
            out.add(f"    # {what}: argument {a['name']!r} is passed None", f"argument {a['name']}")
    return ", ".join(vals)


def _build(c: dict, lstm: bool, out) -> None:
    out.extend(["def _sizes(params, state):",
                '    """X, H, Y of this case, read from the shapes of its arrays."""',
                "    h0 = state[0] if isinstance(state, tuple) else state",
                "    H = np.shape(h0)[0]"])
    where = {}
    for p in c["params"]:
        for axis, d in enumerate(p["shape"]):
            for role in ("X", "Y"):
                if d == role and role not in where:
                    where[role] = f"np.shape(params[{p['attr']!r}])[{axis}]"
                elif d in (f"H+{role}", f"{role}+H") and role not in where:
                    where.setdefault(role + "?", f"np.shape(params[{p['attr']!r}])[{axis}] - H")
    roles = {a["role"] for a in c["ctor"]}
    for role in ("X", "Y"):
        expr = where.get(role) or where.get(role + "?")
        if role == "Y" and "Y" not in roles:
            out.add("    Y = X  # the constructor has no output size")
        elif expr:
            out.add(f"    {role} = {expr}")
        else:
            out.add(f"    {role} = None", f"the size {role} is read from no parameter's shape")
    out.extend(["    return X, H, Y", "", "",
                "def _build(X, H, Y):",
                '    """A fresh model of these sizes, built by its own constructor."""'])
    kw = []
    for a in c["ctor"]:
        if a["role"]:
            kw.append(f"{a['name']}={a['role']}")
        elif a["default"] is None:
            guess = _GUESSES.get(_norm(a["name"]), "None")
            kw.append(f"{a['name']}={guess}")
    guessed = [a["name"] for a in c["ctor"] if not a["role"] and a["default"] is None]
    out.add(f"    return MODEL({', '.join(kw)})", "guessed constructor argument "
            + ", ".join(guessed) if guessed else None)


def _loss_mode(m: dict, attrs: list[str], out) -> None:
    rets = [classify(r, attrs) for r in m["returns"]]
    targets = []
    grads = {}
    for i, (kind, attr) in enumerate(rets):
        if kind == "grad":
            targets.append(f"d_{attr}")
            grads[attr] = f"d_{attr}"
        elif kind == "grads":  # a dict: bpttcheck reads its keys (dWxh, Wxh, ...) itself
            targets.append("returned")
        elif kind in ("loss", "h", "c"):
            targets.append(kind if kind not in [k for k, _ in rets[:i]] else "_")
        else:
            targets.append("_")
    call = f"model.{m['name']}({_call_args(m['args'], out, m['name'])})"
    out.add(f"    # {m['name']} returns {', '.join(m['returns'])}")
    out.add(f"    {', '.join(targets)} = {call}")
    kinds = [k for k, _ in rets]
    if "loss" not in kinds:
        out.add("    loss = None", f"{m['name']}'s return has no loss")
    if "h" not in kinds:
        out.add("    h = None  # no last hidden state among the returned values")
    if "c" not in kinds:
        out.add("    c = None")
    if "grads" in kinds:
        out.add("    grads = dict(returned)  # keyed by your names (with or without a d prefix)")
        return
    out.add("    grads = {" + ", ".join(f"{k!r}: {v}" for k, v in grads.items()) + "}")
    missing = [a for a in attrs if a not in grads]
    if missing:
        out.add(f"    # no gradient returned for {', '.join(missing)}",
             "gradients missing from the return")


def _pair_mode(fw: dict, bw: dict, attrs: list[str], out) -> None:
    rets = [classify(r, attrs) for r in fw["returns"]]
    kinds = [k for k, _ in rets]
    call = f"model.forward({_call_args(fw['args'], out, 'forward')})"
    out.add(f"    # forward returns {', '.join(fw['returns']) or 'nothing'}")
    if len(rets) > 1:
        names = []
        for k, _ in rets:
            names.append(k if k in ("loss", "h", "c") and k not in names else
                         ("ys" if "ys" not in names else "_"))
        out.add(f"    {', '.join(names)} = {call}")
    else:
        name = "loss" if kinds == ["loss"] else "ys"
        out.add(f"    {name} = {call}")
        names = [name]
    if "loss" not in names:
        probs = fw["softmax"]
        out.add("    T = len(inputs)")
        if probs:
            out.add("    p = _rows(ys, T)  # forward returns probabilities",
                 "forward's outputs taken as softmax probabilities")
        else:
            out.add("    z = _rows(ys, T)  # forward returns logits",
                 "forward's outputs taken as logits (no softmax in forward)")
            out.extend(["    e = np.exp(z - z.max(axis=1, keepdims=True))",
                  "    p = e / e.sum(axis=1, keepdims=True)"])
        out.extend(["    loss = -np.log(p[np.arange(T), targets]).sum()",
              "    d = p.copy()",
              "    d[np.arange(T), targets] -= 1.0  # dL/dlogits = p - onehot(target)",
              "    dy = _like(d, ys)"])
    for k in ("h", "c"):
        if k not in names:
            out.add(f"    {k} = None  # forward returns no last state")
    bcall = f"model.{bw['name']}({_call_args(bw['args'], out, bw['name'])})"
    brets = [classify(r, attrs) for r in bw["returns"]]
    grads = {}
    if sum(k == "grad" for k, _ in brets) >= 2:
        targets = [f"d_{a}" if k == "grad" else "_" for k, a in brets]
        out.add(f"    # {bw['name']} returns {', '.join(bw['returns'])}")
        out.add(f"    {', '.join(targets)} = {bcall}")
        grads = {a: f"d_{a}" for k, a in brets if k == "grad"}
    elif [k for k, _ in brets] == ["grads"]:
        out.add(f"    grads = dict({bcall})  # keyed by your names (with or without a d prefix)")
        return
    else:
        out.add(f"    {bcall}")
        for attr in bw["assigns"]:
            g = _grad_of(attr, attrs)
            if g and g not in grads:
                grads[g] = f"model.{attr}"
        out.add(f"    # {bw['name']} stores the gradients as attributes")
    out.add("    grads = {" + ", ".join(f"{k!r}: {v}" for k, v in grads.items()) + "}")
    missing = [a for a in attrs if a not in grads]
    if missing:
        out.add(f"    # no gradient found for {', '.join(missing)}", "gradients not found")

