"""
Independent label check for reference/wild/: for every subject file, run its gradient routine on a
small random case and compare it with central finite differences of the file's OWN loss or
forward pass (layer and cell APIs: L = sum(upstream * outputs) with random upstream gradients).

  correct files           every group agrees with finite differences (tolerance by dtype)
  buggy files             exactly the groups named in `# bpttcheck-groups:` disagree
  note bptt.truncated     groups are compared with a truncated-BPTT reference written here,
                          and finite differences must disagree with it somewhere
  grad.params-modified    the call must change a parameter array it was given (or a global)
  loss.mean-over-classes  the gradients times the number of classes equal the gradients of the
                          summed cross-entropy (computed here from a reference RNN loss)

Usage:  python reference/wild/_check_wild.py [-v] [FILE_OR_DIR ...]
Prints one line per file and finally "N as labelled, M not". Exit status 0 when M == 0.
This script shares no code with bpttcheck.
"""
import ast
import copy
import importlib.util
import os
import sys
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOL64 = 1e-6
TOL32 = 5e-3
EPS64 = 1e-5
EPS32 = 1e-3


# ----------------------------------------------------------------------------- labels

def read_labels(path):
    labels = {}
    with open(path) as fh:
        for k, line in enumerate(fh):
            if k > 12:
                break
            if line.startswith("# bpttcheck-"):
                key, _, val = line[len("# bpttcheck-"):].partition(":")
                labels[key.strip()] = val.strip()
    expect = labels.get("expect", "")
    parts = [p.strip() for p in expect.split(";")]
    ids = [s.strip() for s in parts[0].split(",") if s.strip()]
    notes = [p[len("note"):].strip() for p in parts[1:] if p.startswith("note")]
    groups = [s.strip() for s in labels.get("groups", "").split(",") if s.strip()]
    return labels, ids, notes, groups


def load_module(path):
    name = "wild_subject_" + os.path.relpath(path, HERE).replace(os.sep, "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    old = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        spec.loader.exec_module(mod)
    finally:
        os.chdir(old)
    return mod


# ----------------------------------------------------------------------------- numerics

def fd_grad(fun, arr, eps):
    """Central differences of fun() with respect to every entry of arr (perturbed in place)."""
    g = np.zeros(arr.shape, dtype=np.float64)
    it = np.nditer(arr, flags=["multi_index"])
    while not it.finished:
        ix = it.multi_index
        old = arr[ix].copy()
        arr[ix] = old + eps
        fp = float(fun())
        arr[ix] = old - eps
        fm = float(fun())
        arr[ix] = old
        g[ix] = (fp - fm) / (2 * eps)
        it.iternext()
    return g


def relerr(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        if a.size == b.size:
            a = a.reshape(b.shape)
        else:
            return np.inf
    if not np.all(np.isfinite(a)):
        return np.inf
    scale = max(np.max(np.abs(b)) if b.size else 0.0, 1e-8)
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


class Result:
    def __init__(self):
        self.groups = {}          # name -> (analytic, target)
        self.modified = False
        self.extra_ok = True
        self.extra_msgs = []
        self.tol = TOL64

    def add(self, name, analytic, target):
        self.groups[name] = (np.asarray(analytic, dtype=np.float64), np.asarray(target, dtype=np.float64))


def rand(rng, *shape, scale=0.6):
    return rng.normal(0.0, scale, shape)


def snapshot(d):
    return {k: np.array(v, copy=True) for k, v in d.items()}


def changed(before, after_dict):
    return any(not np.array_equal(before[k], after_dict[k]) for k in before)


# ----------------------------------------------------------------------------- reference RNN loss
# Used only for loss.mean-over-classes: the summed cross-entropy of a plain tanh RNN.

def ref_rnn_loss(Wxh, Whh, Why, bh, by, inputs, targets, h0):
    h = np.asarray(h0, dtype=np.float64).reshape(-1)
    loss = 0.0
    for x_ix, y_ix in zip(inputs, targets):
        a = Whh @ h + bh.reshape(-1)
        if x_ix is not None:
            a = a + Wxh[:, x_ix]
        h = np.tanh(a)
        z = Why @ h + by.reshape(-1)
        z = z - z.max()
        loss -= z[y_ix] - np.log(np.exp(z).sum())
    return loss


def ref_rnn_grads(P, names, inputs, targets, h0, eps=1e-6):
    """Finite-difference gradients of ref_rnn_loss; names maps canonical -> user key."""
    Q = {k: np.array(P[names[k]], dtype=np.float64) for k in ("Wxh", "Whh", "Why", "bh", "by")}

    def L():
        return ref_rnn_loss(Q["Wxh"], Q["Whh"], Q["Why"], Q["bh"], Q["by"], inputs, targets, h0)
    return {names[k]: fd_grad(L, Q[k], eps) for k in Q}, L()


# ----------------------------------------------------------------------------- dlai (step by step)

def check_dlai(mod, labels, ids, notes, rng):
    r = Result()
    n_x, n_a, n_y, m, T = 3, 4, 2, 3, 5
    if hasattr(mod, "rnn_cell_backward"):
        P = {"Wax": rand(rng, n_a, n_x), "Waa": rand(rng, n_a, n_a), "Wya": rand(rng, n_y, n_a),
             "ba": rand(rng, n_a, 1), "by": rand(rng, n_y, 1)}
        xt, a_prev, da_next = rand(rng, n_x, m), rand(rng, n_a, m), rand(rng, n_a, m)

        def L():
            a_next, _, _ = mod.rnn_cell_forward(xt, a_prev, P)
            return np.sum(da_next * a_next)
        before = snapshot(P)
        _, _, cache = mod.rnn_cell_forward(xt, a_prev, P)
        g = mod.rnn_cell_backward(da_next, cache)
        r.modified |= changed(before, P)
        for key, arr in (("dxt", xt), ("da_prev", a_prev), ("dWax", P["Wax"]), ("dWaa", P["Waa"]),
                         ("dba", P["ba"])):
            r.add("rnn_cell_backward." + key, g[key], fd_grad(L, arr, EPS64))
    if hasattr(mod, "rnn_backward"):
        P = {"Wax": rand(rng, n_a, n_x), "Waa": rand(rng, n_a, n_a), "Wya": rand(rng, n_y, n_a),
             "ba": rand(rng, n_a, 1), "by": rand(rng, n_y, 1)}
        x, a0, da = rand(rng, n_x, m, T), rand(rng, n_a, m), rand(rng, n_a, m, T)

        def L():
            a, _, _ = mod.rnn_forward(x, a0, P)
            return np.sum(da * a)
        before = snapshot(P)
        _, _, caches = mod.rnn_forward(x, a0, P)
        g = mod.rnn_backward(da, caches)
        r.modified |= changed(before, P)
        for key, arr in (("dx", x), ("da0", a0), ("dWax", P["Wax"]), ("dWaa", P["Waa"]), ("dba", P["ba"])):
            r.add("rnn_backward." + key, g[key], fd_grad(L, arr, EPS64))
    lstm_keys = ("dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo")

    def lstm_params():
        P = {}
        for gname in "fico":
            P["W" + gname] = rand(rng, n_a, n_a + n_x)
            P["b" + gname] = rand(rng, n_a, 1)
        P["Wy"], P["by"] = rand(rng, n_y, n_a), rand(rng, n_y, 1)
        return P
    if hasattr(mod, "lstm_cell_backward"):
        P = lstm_params()
        xt, a_prev, c_prev = rand(rng, n_x, m), rand(rng, n_a, m), rand(rng, n_a, m)
        da_next, dc_next = rand(rng, n_a, m), rand(rng, n_a, m)

        def L():
            a_next, c_next, _, _ = mod.lstm_cell_forward(xt, a_prev, c_prev, P)
            return np.sum(da_next * a_next) + np.sum(dc_next * c_next)
        before = snapshot(P)
        _, _, _, cache = mod.lstm_cell_forward(xt, a_prev, c_prev, P)
        g = mod.lstm_cell_backward(da_next, dc_next, cache)
        r.modified |= changed(before, P)
        pairs = [("dxt", xt), ("da_prev", a_prev), ("dc_prev", c_prev)]
        pairs += [(k, P[k[1:]]) for k in lstm_keys]
        for key, arr in pairs:
            r.add("lstm_cell_backward." + key, g[key], fd_grad(L, arr, EPS64))
    if hasattr(mod, "lstm_backward"):
        P = lstm_params()
        x, a0, da = rand(rng, n_x, m, T), rand(rng, n_a, m), rand(rng, n_a, m, T)

        def L():
            a, _, _, _ = mod.lstm_forward(x, a0, P)
            return np.sum(da * a)
        before = snapshot(P)
        _, _, _, caches = mod.lstm_forward(x, a0, P)
        g = mod.lstm_backward(da, caches)
        r.modified |= changed(before, P)
        pairs = [("dx", x), ("da0", a0)] + [(k, P[k[1:]]) for k in lstm_keys]
        for key, arr in pairs:
            r.add("lstm_backward." + key, g[key], fd_grad(L, arr, EPS64))
    return r


# ----------------------------------------------------------------------------- dlai (Dinosaur Island)

def check_dlai_char(mod, labels, ids, notes, rng):
    r = Result()
    V, n_a, T = 6, 4, 6
    P = {"Wax": rand(rng, n_a, V), "Waa": rand(rng, n_a, n_a), "Wya": rand(rng, V, n_a),
         "b": rand(rng, n_a, 1), "by": rand(rng, V, 1)}
    X = [None] + [int(i) for i in rng.integers(0, V, T - 1)]
    Y = X[1:] + [int(rng.integers(0, V))]
    a0 = rand(rng, n_a, 1)

    def L():
        return mod.rnn_forward(X, Y, a0, P, V)[0]
    before = snapshot(P)
    loss, cache = mod.rnn_forward(X, Y, a0, P, V)
    g, _ = mod.rnn_backward(X, Y, P, cache)
    g = {k: np.array(v, copy=True) for k, v in g.items()}
    r.modified |= changed(before, P)
    for k in before:
        P[k][...] = before[k]
    pairs = [("d" + k, P[k]) for k in ("Wax", "Waa", "Wya", "b", "by")] + [("da_next", a0)]
    for key, arr in pairs:
        r.add("rnn_backward." + key, g[key], fd_grad(L, arr, EPS64))
    if "loss.mean-over-classes" in ids:
        names = {"Wxh": "Wax", "Whh": "Waa", "Why": "Wya", "bh": "b", "by": "by"}
        true, _ = ref_rnn_grads(P, names, X, Y, a0)
        for canon, user in names.items():
            if relerr(g["d" + user] * V, true[user]) > 1e-5:
                r.extra_ok = False
                r.extra_msgs.append("d%s * V != summed-CE gradient" % user)
        r.extra_msgs.append("grads x V match the summed cross-entropy" if r.extra_ok else "")
    return r


# ----------------------------------------------------------------------------- dlfs2

def check_dlfs2(mod, labels, ids, notes, rng):
    r = Result()
    r.tol = TOL32
    N, T, D, H = 2, 6, 3, 4

    def grads_of(layer):
        if hasattr(layer, "grads"):
            return [np.array(g, copy=True) for g in layer.grads]
        return [np.array(layer.dWx, copy=True), np.array(layer.dWh, copy=True)]

    specs = []
    if hasattr(mod, "RNN"):
        specs.append(("RNN", "TimeRNN", [(D, H), (H, H), (H,)], ["Wx", "Wh", "b"], False))
    if hasattr(mod, "LSTM"):
        specs.append(("LSTM", "TimeLSTM", [(D, 4 * H), (H, 4 * H), (4 * H,)], ["Wx", "Wh", "b"], True))
    if hasattr(mod, "GRU"):
        specs.append(("GRU", "TimeGRU", [(D, 3 * H), (H, 3 * H)], ["Wx", "Wh"], False))
    for cell_name, time_name, shapes, pnames, is_lstm in specs:
        Cell = getattr(mod, cell_name)
        base = [rand(rng, *s) for s in shapes]
        # --- one cell, float64 (the cell code itself has no float32 buffers)
        W = [b.copy() for b in base]
        x, h_prev, dh = rand(rng, N, D), rand(rng, N, H), rand(rng, N, H)
        c_prev, dc = rand(rng, N, H), rand(rng, N, H)

        def Lcell():
            cell = Cell(*W)
            if is_lstm:
                h, c = cell.forward(x, h_prev, c_prev)
                return np.sum(dh * h) + np.sum(dc * c)
            return np.sum(dh * cell.forward(x, h_prev))
        cell = Cell(*W)
        if is_lstm:
            cell.forward(x, h_prev, c_prev)
            dx, dhp, dcp = cell.backward(dh, dc)
        else:
            cell.forward(x, h_prev)
            dx, dhp = cell.backward(dh)
        cg = grads_of(cell)
        r.add(cell_name + ".dx", dx, fd_grad(Lcell, x, EPS32))
        r.add(cell_name + ".dh_prev", dhp, fd_grad(Lcell, h_prev, EPS32))
        if is_lstm:
            r.add(cell_name + ".dc_prev", dcp, fd_grad(Lcell, c_prev, EPS32))
        for k, nm in enumerate(pnames):
            r.add(cell_name + "." + nm, cg[k], fd_grad(Lcell, W[k], EPS32))
        # --- time layer: analytic with float32 weights (the book's habit), FD with float64 copies
        Time = getattr(mod, time_name)
        xs, dhs = rand(rng, N, T, D), rand(rng, N, T, H)
        h0, c0 = rand(rng, N, H), rand(rng, N, H)

        def run(weights, xs_):
            layer = Time(*weights, stateful=True)
            if is_lstm:
                layer.set_state(h0.astype('f'), c0.astype('f'))
            else:
                layer.set_state(h0.astype('f'))
            return layer, layer.forward(xs_)
        W32 = [b.astype('f') for b in base]
        before = [w.copy() for w in W32]
        layer, hs = run(W32, xs.astype('f'))
        dxs = layer.backward(dhs.astype('f'))
        tg = grads_of(layer)
        dh0 = np.array(layer.dh, copy=True)
        r.modified |= any(not np.array_equal(a, b) for a, b in zip(before, W32))
        W64 = [b.copy() for b in base]
        xs64 = xs.copy()
        state = {"h0": h0}

        def Ltime():
            layer = Time(*W64, stateful=True)
            if is_lstm:
                layer.set_state(state["h0"], c0)
            else:
                layer.set_state(state["h0"])
            return np.sum(dhs * layer.forward(xs64))
        r.add(time_name + ".dxs", dxs, fd_grad(Ltime, xs64, EPS32))
        r.add(time_name + ".dh", dh0, fd_grad(Ltime, h0, EPS32))
        for k, nm in enumerate(pnames):
            r.add(time_name + "." + nm, tg[k], fd_grad(Ltime, W64[k], EPS32))
    return r


# ----------------------------------------------------------------------------- wildml

def truncated_bptt(U, V, W, x, y, k):
    """Reference for the WildML truncation: the loss at step t reaches back to steps t-k .. t."""
    T = len(x)
    H = W.shape[0]
    s = np.zeros((T + 1, H))          # s[-1] (= s[T]) is the zero start state
    o = np.zeros((T, V.shape[0]))
    for t in range(T):
        s[t] = np.tanh(U[:, x[t]] + W @ s[t - 1])
        e = np.exp(V @ s[t] - np.max(V @ s[t]))
        o[t] = e / e.sum()
    dU, dV, dW = np.zeros_like(U), np.zeros_like(V), np.zeros_like(W)
    for t in range(T):
        dy = o[t].copy()
        dy[y[t]] -= 1.0
        dV += np.outer(dy, s[t])
        delta = (V.T @ dy) * (1.0 - s[t] ** 2)
        j = t
        while j >= max(0, t - k):
            prev = s[j - 1] if j > 0 else np.zeros(H)
            dW += np.outer(delta, prev)
            dU[:, x[j]] += delta
            delta = (W.T @ delta) * (1.0 - prev ** 2)
            j -= 1
    return dU, dV, dW


def check_wildml(mod, labels, ids, notes, rng):
    r = Result()
    word_dim, hidden, T = 6, 5, 9
    model = mod.RNNNumpy(word_dim, hidden)
    model.U = rand(rng, hidden, word_dim, scale=0.8)
    model.V = rand(rng, word_dim, hidden, scale=0.8)
    model.W = rand(rng, hidden, hidden, scale=0.8)
    x = [int(i) for i in rng.integers(0, word_dim, T)]
    y = x[1:] + [int(rng.integers(0, word_dim))]
    before = {"U": model.U.copy(), "V": model.V.copy(), "W": model.W.copy()}
    grads = [np.array(g, copy=True) for g in model.bptt(x, y)]
    r.modified |= changed(before, {"U": model.U, "V": model.V, "W": model.W})
    model.U, model.V, model.W = before["U"].copy(), before["V"].copy(), before["W"].copy()

    def L():
        return model.calculate_total_loss([x], [y])
    fds = [fd_grad(L, model.U, EPS64), fd_grad(L, model.V, EPS64), fd_grad(L, model.W, EPS64)]
    if "bptt.truncated" in notes:
        ref = truncated_bptt(before["U"], before["V"], before["W"], x, y, model.bptt_truncate)
        for nm, a, t in zip(("dLdU", "dLdV", "dLdW"), grads, ref):
            r.add("bptt." + nm, a, t)
        gap = max(relerr(t, f) for t, f in zip(ref, fds))
        if gap < 1e-3:
            r.extra_ok = False
        r.extra_msgs.append("truncated ref vs FD differ by %.2g" % gap)
    else:
        for nm, a, t in zip(("dLdU", "dLdV", "dLdW"), grads, fds):
            r.add("bptt." + nm, a, t)
    return r


# ----------------------------------------------------------------------------- functional

def check_functional(mod, labels, ids, notes, rng):
    r = Result()
    float32 = "float32" in labels.get("variant", "")
    if float32:
        r.tol = TOL32
    eps = EPS32 if float32 else EPS64
    X, H, T = 5, 4, 7
    Y = X if "X = Y only" in labels.get("variant", "") else 4
    P = {k: rand(rng, *np.shape(v), scale=0.5) for k, v in mod.init_params(X, H, Y, 0).items()}
    st = mod.init_state(H)
    if isinstance(st, tuple):
        state = tuple(rand(rng, *np.shape(s), scale=0.5) for s in st)
    else:
        state = rand(rng, *np.shape(st), scale=0.5)
    inputs = [int(i) for i in rng.integers(0, X, T)]
    targets = [int(i) for i in rng.integers(0, Y, T)]
    given = copy.deepcopy(P)
    loss, grads, _ = mod.loss_and_grads(given, list(inputs), list(targets), copy.deepcopy(state))
    r.modified |= changed(P, given)

    work = copy.deepcopy(P)

    def L():
        return mod.loss_and_grads(copy.deepcopy(work), list(inputs), list(targets), copy.deepcopy(state))[0]
    for k in P:
        r.add(k, grads[k], fd_grad(L, work[k], eps))
    if "loss.mean-over-classes" in ids:
        names = {n: n for n in ("Wxh", "Whh", "Why", "bh", "by")}
        true, ref_loss = ref_rnn_grads(P, names, inputs, targets, state)
        for k in P:
            r.groups[k] = (r.groups[k][0], true[k])          # judged against the summed CE
            if relerr(np.asarray(grads[k]) * Y, true[k]) > 1e-5:
                r.extra_ok = False
                r.extra_msgs.append("d%s * Y != summed-CE gradient" % k)
        r.extra_msgs.append("loss %.6g vs summed CE %.6g; grads x Y %s"
                            % (loss, ref_loss, "match" if r.extra_ok else "do not match"))
    return r


# ----------------------------------------------------------------------------- karpathy

def karpathy_returns(path):
    """Names in lossFun's final return statement."""
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "lossFun":
            rets = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
            value = rets[-1].value
            elts = value.elts if isinstance(value, ast.Tuple) else [value]
            out = []
            for e in elts:
                out.append(e.id if isinstance(e, ast.Name) else None)
            return out, len(node.args.args)
    raise ValueError("no lossFun")


def check_karpathy(mod, labels, ids, notes, rng, path):
    r = Result()
    names, nargs = karpathy_returns(path)
    pnames = [n[1:] for n in names if n and n.startswith("d") and isinstance(getattr(mod, n[1:], None), np.ndarray)]
    float32 = any(getattr(mod, p).dtype == np.float32 for p in pnames)
    if float32:
        r.tol = TOL32
    X, H, T = mod.vocab_size, mod.hidden_size, 7
    Y = getattr(mod, pnames[-1]).shape[0]
    for p in pnames:
        arr = getattr(mod, p)
        setattr(mod, p, rand(rng, *arr.shape, scale=0.5).astype(arr.dtype))
    dt = np.float32 if float32 else np.float64
    states = [rand(rng, H, 1, scale=0.5).astype(dt) for _ in range(nargs - 2)]
    inputs = [int(i) for i in rng.integers(0, X, T)]
    targets = [int(i) for i in rng.integers(0, Y, T)]
    before = {p: getattr(mod, p).copy() for p in pnames}
    out = mod.lossFun(list(inputs), list(targets), *[s.copy() for s in states])
    got = {n[1:]: np.array(v, copy=True) for n, v in zip(names, out) if n and n[1:] in pnames}
    loss = out[0]
    r.modified |= changed(before, {p: getattr(mod, p) for p in pnames})
    # finite differences in float64 from the same starting values
    for p in pnames:
        setattr(mod, p, before[p].astype(np.float64))
    st64 = [s.astype(np.float64) for s in states]

    def L():
        keep = {q: getattr(mod, q).copy() for q in pnames}
        res = mod.lossFun(list(inputs), list(targets), *[s.copy() for s in st64])
        for q in pnames:                      # undo anything lossFun itself did to the globals
            getattr(mod, q)[...] = keep[q]
        return res[0]
    eps = EPS32 if float32 else EPS64
    fds = {}
    for p in pnames:
        fds[p] = fd_grad(L, getattr(mod, p), eps)
    for p in pnames:
        r.add(p, got[p], fds[p])
    if "loss.mean-over-classes" in ids:
        canon = {n: n for n in ("Wxh", "Whh", "Why", "bh", "by")}
        P = {k: before[k].astype(np.float64) for k in canon}
        true, ref_loss = ref_rnn_grads(P, canon, inputs, targets, st64[0])
        for k in canon:
            if relerr(got[k] * Y, true[k]) > 1e-5:
                r.extra_ok = False
                r.extra_msgs.append("d%s * Y != summed-CE gradient" % k)
        r.extra_msgs.append("loss %.6g vs summed CE %.6g; grads x Y %s"
                            % (loss, ref_loss, "match" if r.extra_ok else "do not match"))
    for p in pnames:
        setattr(mod, p, before[p])
    return r


# ----------------------------------------------------------------------------- driver

def check_file(path, verbose=False):
    labels, ids, notes, groups = read_labels(path)
    style = labels.get("style", "")
    rng = np.random.default_rng(1234)
    mod = load_module(path)
    if style == "dlai":
        r = check_dlai(mod, labels, ids, notes, rng)
    elif style == "dlai-char":
        r = check_dlai_char(mod, labels, ids, notes, rng)
    elif style == "dlfs2":
        r = check_dlfs2(mod, labels, ids, notes, rng)
    elif style == "wildml":
        r = check_wildml(mod, labels, ids, notes, rng)
    elif style == "functional":
        r = check_functional(mod, labels, ids, notes, rng)
    elif style == "karpathy":
        r = check_karpathy(mod, labels, ids, notes, rng, path)
    else:
        raise ValueError("unknown style %r" % style)

    errs = {n: relerr(a, t) for n, (a, t) in r.groups.items()}
    failing = {n for n, e in errs.items() if e > r.tol}
    expect_pass = ids == ["pass"]
    expected_fail = set() if expect_pass else set(groups)
    expect_modified = "grad.params-modified" in ids
    problems = []
    if failing != expected_fail:
        extra = sorted(failing - expected_fail)
        missing = sorted(expected_fail - failing)
        if extra:
            problems.append("unexpected failing groups " + ", ".join(extra))
        if missing:
            problems.append("labelled groups that agree " + ", ".join(missing))
    if r.modified != expect_modified:
        problems.append("parameters %s modified" % ("were" if r.modified else "were not"))
    if not r.extra_ok:
        problems.append("; ".join(m for m in r.extra_msgs if m))
    if not expect_pass and not failing and not expect_modified and "loss.mean-over-classes" not in ids:
        problems.append("labelled buggy but nothing disagrees")
    worst_ok = max([e for n, e in errs.items() if n not in failing] or [0.0])
    best_fail = min([errs[n] for n in failing] or [np.inf])
    summary = "%d groups, agree <= %.1e" % (len(errs), worst_ok)
    if failing:
        summary += ", disagree >= %.1e (%d: %s)" % (best_fail, len(failing), ", ".join(sorted(failing)))
    if r.modified:
        summary += ", params modified"
    msgs = [m for m in r.extra_msgs if m]
    if msgs:
        summary += "; " + "; ".join(msgs)
    if verbose:
        for n in sorted(errs):
            print("      %-32s %.2e" % (n, errs[n]))
    return not problems, summary, problems, labels.get("expect", "")


def collect(args):
    paths = []
    for a in args or [HERE]:
        if os.path.isdir(a):
            for root, dirs, files in os.walk(a):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith(".py") and not f.startswith("_"):
                        paths.append(os.path.join(root, f))
        else:
            paths.append(a)
    return paths


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    good = bad = 0
    for path in collect(args):
        rel = os.path.relpath(path, HERE)
        try:
            ok, summary, problems, expect = check_file(path, verbose)
        except Exception as exc:                      # a subject that cannot run is "not as labelled"
            ok, summary, problems, expect = False, "", ["raised %s: %s" % (type(exc).__name__, exc)], ""
            if verbose:
                traceback.print_exc()
        if ok:
            good += 1
            print("ok   %-48s [%s] %s" % (rel, expect, summary))
        else:
            bad += 1
            print("NOT  %-48s [%s] %s -- %s" % (rel, expect, summary, "; ".join(problems)))
    print("%d as labelled, %d not" % (good, bad))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
