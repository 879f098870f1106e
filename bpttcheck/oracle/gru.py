"""GRU, the project's convention (Cho et al. 2014 with the reset gate applied before the
recurrent product; PyTorch's interpolation h' = (1 - z) n + z h), forward next to backward.

    v = [h; onehot(x)]
    z = sigmoid(Wz v + bz)            update gate
    r = sigmoid(Wr v + br)            reset gate
    n = tanh(Wn [r * h; onehot(x)] + bn)
    h[t+1] = (1 - z) * n + z * h[t] ;  logits = Wy h[t+1] + by

Variant (the other common convention, not a bug): "variant.z-weighs-candidate",
h[t+1] = z * n + (1 - z) * h[t] (Cho et al.'s original paper, Deep Learning from Scratch 2).
"""
from __future__ import annotations

import numpy as np

from bpttcheck.archmeta import META, gru_shapes
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

NAMES = META["gru"].param_names
VARIANTS = (("variant.z-weighs-candidate",
             "the update gate weighs the candidate: h = z * n + (1 - z) * h_prev"),)


shapes = gru_shapes


def _dsig(gate: str, a: np.ndarray, bugs) -> np.ndarray:
    """sigmoid'(pre-activation) from the gate output a; the bug applies sigmoid to a again."""
    if has(bugs, "gru.gate-derivative-reapplied") in (gate, "all"):
        a = sigmoid(a)
    return a * (1.0 - a)


def run(P, xs, ys, state, bugs=frozenset(), reduction="sum", taps=None,
        keep=False) -> Trace:
    """``taps``, a dict, receives each step's intermediate quantities by (name, t)
    (check/locate.py looks for them in what the user's code computes). ``keep``: keep each
    step's share of every gradient (Trace.contrib; made again on first use otherwise)."""
    tap = taps.__setitem__ if taps is not None else no_tap
    Wz, Wr, Wn, bz, br, bn, Wy, by = (P[k] for k in NAMES)
    (h0,) = state
    dt = P[NAMES[0]].dtype
    T, H, Y = len(xs), Wy.shape[1], Wy.shape[0]
    X = Wz.shape[1] - H
    after = has(bugs, "gru.reset-after") is not None  # n = tanh(Wn_x x + r * (Wn_h h) + bn)
    other = has(bugs, "variant.z-weighs-candidate") is not None  # h' = z n + (1 - z) h

    # forward
    hs = np.empty((T + 1, H), dtype=dt); hs[0] = h0  # (T+1, H)
    vs = np.zeros((T, H + X), dtype=dt)  # (T, H+X)  [h; x]
    us = np.zeros((T, H + X), dtype=dt)  # (T, H+X)  [r*h; x]
    zs, rs, ns, qs = (np.empty((T, H), dtype=dt) for _ in range(4))  # qs = Wn_h @ h (reset-after only)
    ps, loss_steps = np.empty((T, Y), dtype=dt), np.empty(T, dtype=dt)
    for t in range(T):
        h = hs[t]
        vs[t, :H] = h
        vs[t, H + xs[t]] = 1.0
        zs[t] = sigmoid(Wz @ vs[t] + bz)
        rs[t] = sigmoid(Wr @ vs[t] + br)
        if after:
            qs[t] = Wn[:, :H] @ h
            ns[t] = np.tanh(Wn[:, H + xs[t]] + rs[t] * qs[t] + bn)
        else:
            us[t, :H] = rs[t] * h
            us[t, H + xs[t]] = 1.0
            ns[t] = np.tanh(Wn @ us[t] + bn)
        zn = zs[t] if other else 1.0 - zs[t]  # the weight of the candidate
        hs[t + 1] = zn * ns[t] + (1.0 - zn) * h
        ps[t], loss_steps[t] = softmax_xent(Wy @ hs[t + 1] + by, ys[t], bugs)
        for name, v in (("z", zs[t]), ("r", rs[t]), ("n", ns[t]), ("h", hs[t + 1]), ("p", ps[t])):
            tap((name, t), v)

    # backward
    keep = keep or has(bugs, "bptt.truncated") is not None  # truncation rewrites them
    c = Steps(P, NAMES, T, keep)  # each step's share of every gradient
    dhs = np.empty((T, H), dtype=dt)
    dh_next = np.zeros(H, dtype=dt)
    # a backward written for the other convention than the forward's (the bug)
    flipped = (has(bugs, "gru.update-gate-flipped") is not None) != other
    for t in reversed(range(T)):
        h, z, r, n = hs[t], zs[t], rs[t], ns[t]
        dy = output_grad(ps[t], ys[t], bugs)  # (Y,)
        c["Wy"][t] = np.outer(dy, hs[t + 1])
        c["by"][t] = dy
        dh = Wy.T @ dy + dh_next  # (H,)
        dhs[t] = dh
        if flipped:  # backward written for h' = z n + (1 - z) h
            dn, dz, dh_direct = dh * z, dh * (n - h), dh * (1.0 - z)
        else:
            dn, dz, dh_direct = dh * (1.0 - z), dh * (h - n), dh * z
        if has(bugs, "gru.direct-path-missing") is not None:
            dh_direct = np.zeros(H, dtype=dt)
        dn_raw = dn * (1.0 - n**2)  # (H,)  back through tanh
        dz_raw = dz * _dsig("z", z, bugs)
        c["bn"][t] = dn_raw
        if after:
            c["Wn"][t][:, :H] = np.outer(dn_raw * r, h)
            c["Wn"][t][:, H + xs[t]] = dn_raw
            dr = dn_raw * qs[t]
            dh_from_n = Wn[:, :H].T @ (dn_raw * r)
        else:
            c["Wn"][t] = np.outer(dn_raw, us[t])
            drh = Wn[:, :H].T @ dn_raw  # (H,)  gradient at r * h
            dr = drh * h
            dh_from_n = drh * r
        dr_raw = dr * _dsig("r", r, bugs)
        c["Wz"][t] = np.outer(dz_raw, vs[t]); c["bz"][t] = dz_raw
        c["Wr"][t] = np.outer(dr_raw, vs[t]); c["br"][t] = dr_raw
        dv = Wz.T @ dz_raw + Wr.T @ dr_raw  # (H+X,)
        dh_next = dh_direct + dh_from_n + dv[:H]
        for name, v in (("h_prev", h), ("dh_direct", dh_direct), ("dy", dy), ("dh", dh),
                        ("dn", dn), ("dz", dz), ("dn_raw", dn_raw),
                        ("dz_raw", dz_raw), ("dr", dr), ("dr_raw", dr_raw), ("dv", dv),
                        ("dh_next", dh_next)):
            tap((name, t), v)

    loss, loss_steps, grads, magnitude, kept = finish(loss_steps, c, bugs, reduction)
    return Trace(loss, loss_steps, ps, (hs[T].copy(),), grads, kept, dhs, hs, magnitude=magnitude,
                 again=lambda: run(P, xs, ys, state, bugs, reduction, keep=True))


ARCH = Arch(name="gru", param_names=NAMES, state_names=("h",), shapes=shapes, run=run,
            gate_groups=(("Wz", "bz"), ("Wr", "br"), ("Wn", "bn"), ("Wy", "by")),
            variants=VARIANTS)
