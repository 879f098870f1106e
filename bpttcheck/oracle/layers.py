"""Float64 reference for the batched layer API (CONTRACT §2.2b, `rnn_layers.py`):
step and sequence functions, x @ W layouts, LSTM gate order i, f, o, g, no softmax; and a
bias-free GRU for the unit styles that have one (below).

Forward next to backward, as the user writes them. ``bugs`` plants the known mistakes
(ids from the catalogue) so a user's gradients can be matched against them:
``rnn.tanh-derivative-missing``, ``rnn.whh-not-transposed``, ``lstm.dc-next-missing-forget``,
``lstm.cell-tanh-derivative-missing``, ``lstm.gate-derivative-reapplied:<gate>``,
``rnn.dwhh-uses-current-h`` (step bugs,
inherited by the sequence functions that call the step) and ``rnn.missing-dh-next``
(sequence functions; ``lstm.missing-dh-next`` for the LSTM's)."""
from __future__ import annotations

import numpy as np

from bpttcheck.oracle.common import has, sigmoid

GATES = ("i", "f", "o", "g")  # the order of the four H-wide blocks of a = x Wx + h Wh + b


# ---------------------------------------------------------------- vanilla RNN

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)  # (N, H)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache, bugs=frozenset()):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h if has(bugs, "rnn.tanh-derivative-missing") is not None else dnext_h * (1 - next_h**2)  # (N, H)
    dx = dz @ Wx.T  # (N, D)
    dprev_h = dz @ (Wh if has(bugs, "rnn.whh-not-transposed") is not None else Wh.T)  # (N, H)
    h_in = next_h if has(bugs, "rnn.dwhh-uses-current-h") is not None else prev_h  # (N, H)
    return dx, dprev_h, x.T @ dz, h_in.T @ dz, dz.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]))  # (N, T, H)
    caches, prev = [], h0
    for t in range(T):
        prev, c = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(c)
    return h, caches


def rnn_backward(dh, caches, bugs=frozenset(), contrib=None):
    """``contrib``, if a dict, receives each step's share of dWx, dWh, db: name -> (T, ...)."""
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = caches[0]
    dx = np.empty((N, T, x0.shape[1]))  # (N, T, D)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    dprev = np.zeros((N, H))  # (N, H) gradient flowing back from step t+1
    steps = []
    for t in reversed(range(T)):
        up = dh[:, t] if has(bugs, "rnn.missing-dh-next") is not None else dh[:, t] + dprev
        dx[:, t], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(up, caches[t], bugs)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        steps.append((t, dWx_t, dWh_t, db_t))
    if contrib is not None:
        _contrib(contrib, steps, T)
    return dx, dprev, dWx, dWh, db


# ---------------------------------------------------------------- LSTM

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H)
    i, f, o = (sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))  # (N, H) each
    g = np.tanh(a[:, 3 * H:])  # (N, H)
    next_c = f * prev_c + i * g  # (N, H)
    tc = np.tanh(next_c)  # (N, H)
    next_h = o * tc  # (N, H)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc)


def _dgate(name, dact, act, bugs):
    """Back through a gate's nonlinearity from its output; the bug applies it once more."""
    if has(bugs, "lstm.gate-derivative-reapplied") in (name, "all"):
        act = np.tanh(act) if name == "g" else sigmoid(act)
    return dact * ((1 - act**2) if name == "g" else act * (1 - act))


def lstm_step_backward(dnext_h, dnext_c, cache, bugs=frozenset()):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc = cache
    dtc = 1.0 if has(bugs, "lstm.cell-tanh-derivative-missing") is not None else 1 - tc**2
    dc = dnext_c + dnext_h * o * dtc  # (N, H) everything reaching next_c
    acts = {"i": i, "f": f, "o": o, "g": g}
    dacts = {"i": dc * g, "f": dc * prev_c, "o": dnext_h * tc, "g": dc * i}
    da = np.concatenate([_dgate(k, dacts[k], acts[k], bugs) for k in GATES], axis=1)  # (N, 4H)
    dprev_c = dc if has(bugs, "lstm.dc-next-missing-forget") is not None else dc * f  # (N, H)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.empty((N, T, H))  # (N, T, H)
    caches, prev_h, prev_c = [], h0, np.zeros((N, H))
    for t in range(T):
        prev_h, prev_c, c = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(c)
    return h, caches


def lstm_backward(dh, caches, bugs=frozenset(), contrib=None):
    N, T, H = dh.shape
    x0, Wx, Wh = caches[0][0], caches[0][3], caches[0][4]
    dx = np.empty((N, T, x0.shape[1]))  # (N, T, D)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    steps = []
    for t in reversed(range(T)):
        up = dh[:, t] if has(bugs, "lstm.missing-dh-next") is not None else dh[:, t] + dprev_h
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            up, dprev_c, caches[t], bugs)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        steps.append((t, dWx_t, dWh_t, db_t))
    if contrib is not None:
        _contrib(contrib, steps, T)
    return dx, dprev_h, dWx, dWh, db


# ---------------------------------------------------------------- GRU (no bias)
# The README's convention, h' = (1 - z) * n + z * h, reset before the recurrent product; Wx (D, 3H)
# and Wh (H, 3H) in blocks z, r, n. Bugs: ``gru.direct-path-missing``,
# ``gru.gate-derivative-reapplied:<z|r>`` (step bugs, inherited by the sequence).

def gru_step_forward(x, prev_h, Wx, Wh):
    H = prev_h.shape[1]
    ax = x @ Wx  # (N, 3H)
    z = sigmoid(ax[:, :H] + prev_h @ Wh[:, :H])  # (N, H)
    r = sigmoid(ax[:, H:2 * H] + prev_h @ Wh[:, H:2 * H])  # (N, H)
    n = np.tanh(ax[:, 2 * H:] + (r * prev_h) @ Wh[:, 2 * H:])  # (N, H)
    next_h = (1 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, z, r, n)


def _dsig(name, dact, act, bugs):
    if has(bugs, "gru.gate-derivative-reapplied") in (name, "all"):
        act = sigmoid(act)
    return dact * act * (1 - act)


def gru_step_backward(dnext_h, cache, bugs=frozenset()):
    x, prev_h, Wx, Wh, z, r, n = cache
    H = prev_h.shape[1]
    dan = dnext_h * (1 - z) * (1 - n**2)  # (N, H) back through n = tanh(a_n)
    drh = dan @ Wh[:, 2 * H:].T  # (N, H) gradient of r * prev_h
    daz = _dsig("z", dnext_h * (prev_h - n), z, bugs)  # (N, H)
    dar = _dsig("r", drh * prev_h, r, bugs)  # (N, H)
    da = np.concatenate([daz, dar, dan], axis=1)  # (N, 3H)
    direct = 0.0 if has(bugs, "gru.direct-path-missing") is not None else dnext_h * z
    dprev_h = daz @ Wh[:, :H].T + dar @ Wh[:, H:2 * H].T + drh * r + direct  # (N, H)
    dWh = np.concatenate([prev_h.T @ daz, prev_h.T @ dar, (r * prev_h).T @ dan], axis=1)
    return da @ Wx.T, dprev_h, x.T @ da, dWh


def gru_forward(x, h0, Wx, Wh):
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]))  # (N, T, H)
    caches, prev = [], h0
    for t in range(T):
        prev, c = gru_step_forward(x[:, t], prev, Wx, Wh)
        h[:, t] = prev
        caches.append(c)
    return h, caches


def gru_backward(dh, caches, bugs=frozenset(), contrib=None):
    N, T, H = dh.shape
    x0, _, Wx, Wh = caches[0][:4]
    dx = np.empty((N, T, x0.shape[1]))  # (N, T, D)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
    dprev = np.zeros((N, H))
    steps = []
    for t in reversed(range(T)):
        up = dh[:, t] if has(bugs, "rnn.missing-dh-next") is not None else dh[:, t] + dprev
        dx[:, t], dprev, dWx_t, dWh_t = gru_step_backward(up, caches[t], bugs)
        dWx, dWh = dWx + dWx_t, dWh + dWh_t
        steps.append((t, dWx_t, dWh_t))
    if contrib is not None:
        _contrib(contrib, steps, T)
    return dx, dprev, dWx, dWh


def _contrib(out: dict, steps, T: int) -> None:
    for name, k in (("dWx", 1), ("dWh", 2), ("db", 3))[:len(steps[0]) - 1]:
        arr = np.empty((T, *steps[0][k].shape))
        for s in steps:
            arr[s[0]] = s[k]
        out[name] = arr
