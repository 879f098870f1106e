"""Vanilla tanh RNN (CONTRACT §1), forward next to backward.

    h[t+1] = tanh(Wxh @ onehot(x[t]) + Whh @ h[t] + bh)
    z[t]   = Why @ h[t+1] + by ;  p[t] = softmax(z[t]) ;  loss = sum_t -log p[t][y[t]]

Besides the catalogue's bugs, ``bptt.truncated:k`` back-propagates each step's loss only k
steps (truncated BPTT where full BPTT is meant): not a diagnosis of its own, a measurement
the checker reports when nothing else matches.
"""
from __future__ import annotations

import numpy as np

from bpttcheck.archmeta import META, rnn_shapes
from bpttcheck.oracle.common import (
    Arch,
    Steps,
    Trace,
    finish,
    has,
    no_tap,
    output_grad,
    softmax_xent,
)

NAMES = META["rnn"].param_names


shapes = rnn_shapes


def run(P, xs, ys, state, bugs=frozenset(), reduction="sum", taps=None,
        keep=False) -> Trace:
    """``taps``, a dict, receives each step's intermediate quantities by (name, t)
    (check/locate.py looks for them in what the user's code computes). ``keep``: keep each
    step's share of every gradient (Trace.contrib; made again on first use otherwise)."""
    tap = taps.__setitem__ if taps is not None else no_tap
    Wxh, Whh, Why, bh, by = (P[k] for k in NAMES)
    (h0,) = state
    dt = P[NAMES[0]].dtype
    T, H, Y = len(xs), Whh.shape[0], Why.shape[0]

    # forward
    hs = np.empty((T + 1, H), dtype=dt); hs[0] = h0  # (T+1, H)  hs[t+1] is the state after step t
    ps = np.empty((T, Y), dtype=dt)  # (T, Y)
    loss_steps = np.empty(T, dtype=dt)  # (T,)
    for t in range(T):
        a = Wxh[:, xs[t]] + Whh @ hs[t] + bh  # (H,)  one-hot input picks a column
        hs[t + 1] = np.tanh(a)
        z = Why @ hs[t + 1] + by  # (Y,)
        ps[t], loss_steps[t] = softmax_xent(z, ys[t], bugs)
        tap(("a", t), a); tap(("h", t), hs[t + 1]); tap(("z", t), z); tap(("p", t), ps[t])

    # backward
    keep = keep or has(bugs, "bptt.truncated") is not None  # truncation rewrites them
    c = Steps(P, NAMES, T, keep)  # each step's share of every gradient
    dhs = np.empty((T, H), dtype=dt)  # (T, H)
    dh_next = np.zeros(H, dtype=dt)  # (H,)
    dys = np.empty((T, Y), dtype=dt)  # (T, Y)
    for t in reversed(range(T)):
        dy = dys[t] = output_grad(ps[t], ys[t], bugs)  # (Y,)
        h_out = hs[t] if has(bugs, "rnn.dwhy-uses-prev-h") is not None else hs[t + 1]
        c["Why"][t] = np.outer(dy, h_out)  # (Y, H)
        c["by"][t] = dy
        dh = Why.T @ dy  # (H,)
        if has(bugs, "rnn.missing-dh-next") is None:
            dh = dh + dh_next
        dhs[t] = dh
        if has(bugs, "rnn.tanh-derivative-missing") is None:
            draw = (1.0 - hs[t + 1] ** 2) * dh  # (H,)  back through tanh
        else:
            draw = dh
        c["bh"][t] = draw
        c["Wxh"][t][:, xs[t]] = draw
        h_in = hs[t + 1] if has(bugs, "rnn.dwhh-uses-current-h") is not None else hs[t]
        c["Whh"][t] = np.outer(draw, h_in)  # (H, H)
        W = Whh if has(bugs, "rnn.whh-not-transposed") is not None else Whh.T
        dh_next = W @ draw  # (H,)
        tap(("dy", t), dy); tap(("dh", t), dh); tap(("dh_raw", t), draw); tap(("h_prev", t), hs[t])
        tap(("dh_next", t), dh_next)
    depth = has(bugs, "bptt.truncated")
    if depth is not None:
        _truncate(c.arrays(), P, xs, hs, dys, int(depth))

    loss, loss_steps, grads, magnitude, kept = finish(loss_steps, c, bugs, reduction)
    return Trace(loss, loss_steps, ps, (hs[T].copy(),), grads, kept, dhs, hs, magnitude=magnitude,
                 again=lambda: run(P, xs, ys, state, bugs, reduction, keep=True))


def _truncate(c, P, xs, hs, dys, k: int) -> None:
    """Contributions to Wxh, Whh, bh when each step's loss is back-propagated only k steps."""
    for n in ("Wxh", "Whh", "bh"):
        c[n][:] = 0.0
    for t in range(len(xs)):
        dh = P["Why"].T @ dys[t]  # (H,)
        for s in range(t, max(t - k, -1), -1):
            draw = (1.0 - hs[s + 1] ** 2) * dh  # (H,)
            c["bh"][s] += draw
            c["Wxh"][s][:, xs[s]] += draw
            c["Whh"][s] += np.outer(draw, hs[s])
            dh = P["Whh"].T @ draw


ARCH = Arch(name="rnn", param_names=NAMES, state_names=("h",), shapes=shapes, run=run,
            gate_groups=(("Wxh", "Whh", "bh"), ("Why", "by")))
