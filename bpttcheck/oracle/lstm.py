"""LSTM with per-gate matrices on v = [h; onehot(x)] (CONTRACT §1), forward next to backward.

    f = sigmoid(Wf v + bf)  i = sigmoid(Wi v + bi)  g = tanh(Wg v + bg)  o = sigmoid(Wo v + bo)
    c[t+1] = f * c[t] + i * g ;  h[t+1] = o * tanh(c[t+1]) ;  z[t] = Wy h[t+1] + by

Variant (a legitimate cell, not a bug): "variant.no-output-tanh", h[t+1] = o * c[t+1].
"""
from __future__ import annotations

import numpy as np

from bpttcheck.archmeta import META, lstm_shapes
from bpttcheck.oracle.common import (
    Arch,
    Steps,
    Trace,
    finish,
    has,
    no_tap,
    output_grad,
    sigmoid,
    softmax_xent,
)

GATES = ("f", "i", "g", "o")
VARIANTS = (("variant.no-output-tanh", "an LSTM without the output tanh: h = o * c"),)
NAMES = META["lstm"].param_names


shapes = lstm_shapes


def _gate_grad(name: str, dact: np.ndarray, act: np.ndarray, bugs) -> np.ndarray:
    """Back through a gate's nonlinearity, given its output act: sigmoid' = a(1-a), tanh' = 1-a^2.
    The reapplied-derivative bug evaluates the nonlinearity once more on the output."""
    if has(bugs, "lstm.gate-derivative-reapplied") in (name, "all"):
        act = np.tanh(act) if name == "g" else sigmoid(act)
    return dact * ((1.0 - act**2) if name == "g" else act * (1.0 - act))


def run(P, xs, ys, state, bugs=frozenset(), reduction="sum", taps=None,
        keep=False) -> Trace:
    """``taps``, a dict, receives each step's intermediate quantities by (name, t)
    (check/locate.py looks for them in what the user's code computes). ``keep``: keep each
    step's share of every gradient (Trace.contrib; made again on first use otherwise)."""
    tap = taps.__setitem__ if taps is not None else no_tap
    W = {k: P[f"W{k}"] for k in GATES}  # each (H, H+X)
    b = {k: P[f"b{k}"] for k in GATES}  # each (H,)
    Wy, by = P["Wy"], P["by"]
    h0, c0 = state
    dt = P[NAMES[0]].dtype
    T, H, Y = len(xs), Wy.shape[1], Wy.shape[0]
    X = W["f"].shape[1] - H

    squash = (lambda c: c) if has(bugs, "variant.no-output-tanh") is not None else np.tanh

    # forward
    hs = np.empty((T + 1, H), dtype=dt); hs[0] = h0  # (T+1, H)
    cs = np.empty((T + 1, H), dtype=dt); cs[0] = c0  # (T+1, H)
    vs = np.zeros((T, H + X), dtype=dt)  # (T, H+X)  v[t] = [h[t]; onehot(x[t])]
    acts = {k: np.empty((T, H), dtype=dt) for k in GATES}  # gate outputs per step
    ps, loss_steps = np.empty((T, Y), dtype=dt), np.empty(T, dtype=dt)
    for t in range(T):
        vs[t, :H] = hs[t]
        vs[t, H + xs[t]] = 1.0
        for k in GATES:
            a = W[k] @ vs[t] + b[k]  # (H,)
            acts[k][t] = np.tanh(a) if k == "g" else sigmoid(a)
        f, i, g, o = (acts[k][t] for k in GATES)
        cs[t + 1] = f * cs[t] + i * g
        hs[t + 1] = o * squash(cs[t + 1])
        ps[t], loss_steps[t] = softmax_xent(Wy @ hs[t + 1] + by, ys[t], bugs)
        for name, v in (("v", vs[t]), ("f", f), ("i", i), ("g", g), ("o", o), ("c", cs[t + 1]),
                        ("tanh_c", np.tanh(cs[t + 1])), ("h", hs[t + 1]), ("p", ps[t])):
            tap((name, t), v)

    # backward
    keep = keep or has(bugs, "bptt.truncated") is not None  # truncation rewrites them
    c = Steps(P, NAMES, T, keep)  # each step's share of every gradient
    dhs = np.empty((T, H), dtype=dt)
    dh_next, dc_next = np.zeros(H, dtype=dt), np.zeros(H, dtype=dt)
    offset = has(bugs, "lstm.state-offset") is not None
    wrap = has(bugs, "lstm.cprev-wraparound") is not None
    slice_bug = has(bugs, "lstm.dh-next-wrong-slice")
    for t in reversed(range(T)):
        f, i, g, o = (acts[k][t] for k in GATES)
        h_cur, c_cur = (hs[t], cs[t]) if offset else (hs[t + 1], cs[t + 1])
        c_prev = cs[t - 1] if wrap else cs[t]  # cs[-1] is the LAST state: the wraparound bug
        if wrap and has(bugs, "lstm.cprev-wraparound") == "first-step":
            c_prev = cs[T] if t == 0 else cs[t]  # right except at t = 0, where it wraps
        if offset and has(bugs, "lstm.state-offset") == "shifted":
            c_prev = cs[max(t - 1, 0)]  # everything one step early, guarded at t = 0
        dy = output_grad(ps[t], ys[t], bugs)  # (Y,)
        c["Wy"][t] = np.outer(dy, h_cur)
        c["by"][t] = dy
        dh = Wy.T @ dy  # (H,)
        if has(bugs, "lstm.missing-dh-next") is None:
            dh = dh + dh_next  # later steps reach h[t+1] through dh_next
        dhs[t] = dh
        tc = squash(c_cur)  # (H,)
        do = dh * tc
        if has(bugs, "lstm.cell-tanh-derivative-missing") is not None or squash is not np.tanh:
            dc = dc_next + dh * o  # (with no output tanh, this is the right derivative)
        else:
            dc = dc_next + dh * o * (1.0 - tc**2)
        dact = {"f": dc * c_prev, "i": dc * g, "g": dc * i, "o": do}
        dv = np.zeros(H + X, dtype=dt)  # (H+X,)
        for name, v in (("h_cur", h_cur), ("c_cur", c_cur), ("c_prev", c_prev),
                        ("h_prev", vs[t, :H]), ("tanh_c", tc), ("dy", dy),
                        ("dh", dh), ("dc", dc), ("do", do), ("df", dact["f"]),
                        ("di", dact["i"]), ("dg", dact["g"])):
            tap((name, t), v)
        for k in GATES:
            da = _gate_grad(k, dact[k], acts[k][t], bugs)  # (H,) gradient at the pre-activation
            tap((f"da_{k}", t), da)
            c[f"W{k}"][t] = np.outer(da, vs[t])
            c[f"b{k}"][t] = da
            dv += W[k].T @ da
        if slice_bug is None:
            dh_next = dv[:H]
        elif slice_bug == "xh":  # user concatenates [x; h] and takes the first H entries
            dh_next = np.concatenate([dv[H:], dv[:H]])[:H]
        else:  # user concatenates [h; x] and takes the last H entries
            dh_next = dv[-H:]
        dc_next = dc if has(bugs, "lstm.dc-next-missing-forget") is not None else dc * f
        tap(("dv", t), dv); tap(("dh_next", t), dh_next); tap(("dc_next", t), dc_next)

    loss, loss_steps, grads, magnitude, kept = finish(loss_steps, c, bugs, reduction)
    return Trace(loss, loss_steps, ps, (hs[T].copy(), cs[T].copy()), grads, kept, dhs, hs, magnitude=magnitude,
                 again=lambda: run(P, xs, ys, state, bugs, reduction, keep=True))


ARCH = Arch(name="lstm", param_names=NAMES, state_names=("h", "c"), shapes=shapes, run=run,
            gate_groups=(*tuple((f"W{k}", f"b{k}") for k in GATES), ("Wy", "by")),
            variants=VARIANTS)
