# bpttcheck-expect: pass
# functions: -
# bug: none: correct, but the sequence functions do not call the step functions (loops written inline, time-major caches, gates sliced with np.split)
"""
Batched RNN / LSTM layers (course assignment rnn_layers.py API), written another
way round: rnn_forward / lstm_forward and their backward passes run the whole
recurrence inline over stacked time-major arrays, and the LSTM gates are cut
with np.split. The step functions exist too and are also correct.
Gate order i, f, o, g; c0 = 0.
"""
import numpy as np


def sigmoid(x):
    """Logistic function, stable for large |x| (exp of a non-positive number only)."""
    out = np.empty_like(x, dtype=float)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(np.dot(x, Wx) + np.dot(prev_h, Wh) + b)   # (N,H)
    return next_h, {"x": x, "h_in": prev_h, "h_out": next_h, "Wx": Wx, "Wh": Wh}


def rnn_step_backward(dnext_h, cache):
    dz = (1.0 - np.square(cache["h_out"])) * dnext_h           # (N,H)
    dx = np.dot(dz, cache["Wx"].T)                             # (N,D)
    dprev_h = np.dot(dz, cache["Wh"].T)                        # (N,H)
    dWx = np.dot(cache["x"].T, dz)                             # (D,H)
    dWh = np.dot(cache["h_in"].T, dz)                          # (H,H)
    db = np.sum(dz, axis=0)                                    # (H,)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    xs = np.transpose(x, (1, 0, 2))                            # (T,N,D) time-major
    T = xs.shape[0]
    hs = np.empty((T + 1,) + h0.shape)                         # (T+1,N,H), hs[0] = h0
    hs[0] = h0
    for t in range(T):
        hs[t + 1] = np.tanh(xs[t] @ Wx + hs[t] @ Wh + b)       # (N,H)
    h = np.transpose(hs[1:], (1, 0, 2))                        # (N,T,H)
    return h, (xs, hs, Wx, Wh)


def rnn_backward(dh, cache):
    xs, hs, Wx, Wh = cache
    dhs = np.transpose(dh, (1, 0, 2))                          # (T,N,H)
    T = dhs.shape[0]
    dxs = np.empty_like(xs)                                    # (T,N,D)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)            # (D,H), (H,H)
    db = np.zeros(Wh.shape[0])                                 # (H,)
    carry = np.zeros_like(hs[0])                               # (N,H)
    for t in range(T - 1, -1, -1):
        dz = (dhs[t] + carry) * (1.0 - hs[t + 1] ** 2)         # (N,H)
        dxs[t] = dz @ Wx.T
        dWx += xs[t].T @ dz
        dWh += hs[t].T @ dz
        db += dz.sum(0)
        carry = dz @ Wh.T                                      # (N,H)
    return np.transpose(dxs, (1, 0, 2)), carry, dWx, dWh, db


def _gates(a):
    ai, af, ao, ag = np.split(a, 4, axis=1)                    # 4 x (N,H)
    return sigmoid(ai), sigmoid(af), sigmoid(ao), np.tanh(ag)


def _gate_grads(dc, dh, c_prev, i, f, o, g, tc):
    """Pre-activation gradient (N,4H) given the total cell gradient dc."""
    return np.hstack([
        dc * g * i * (1.0 - i),
        dc * c_prev * f * (1.0 - f),
        dh * tc * o * (1.0 - o),
        dc * i * (1.0 - g * g),
    ])


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    i, f, o, g = _gates(np.dot(x, Wx) + np.dot(prev_h, Wh) + b)
    next_c = f * prev_c + i * g                                # (N,H)
    next_h = o * np.tanh(next_c)                               # (N,H)
    cache = {"x": x, "h": prev_h, "c": prev_c, "gates": (i, f, o, g),
             "tc": np.tanh(next_c), "Wx": Wx, "Wh": Wh}
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    i, f, o, g = cache["gates"]
    tc = cache["tc"]
    dc = dnext_c + dnext_h * o * (1.0 - tc * tc)               # (N,H)
    da = _gate_grads(dc, dnext_h, cache["c"], i, f, o, g, tc)  # (N,4H)
    dx = np.dot(da, cache["Wx"].T)                             # (N,D)
    dprev_h = np.dot(da, cache["Wh"].T)                        # (N,H)
    dprev_c = f * dc                                           # (N,H)
    dWx = np.dot(cache["x"].T, da)                             # (D,4H)
    dWh = np.dot(cache["h"].T, da)                             # (H,4H)
    db = np.sum(da, axis=0)                                    # (4H,)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    xs = np.transpose(x, (1, 0, 2))                            # (T,N,D)
    T = xs.shape[0]
    hs = np.empty((T + 1,) + h0.shape)                         # (T+1,N,H)
    cs = np.zeros((T + 1,) + h0.shape)                         # (T+1,N,H), cs[0] = 0
    gs = []
    hs[0] = h0
    for t in range(T):
        i, f, o, g = _gates(xs[t] @ Wx + hs[t] @ Wh + b)
        cs[t + 1] = f * cs[t] + i * g
        hs[t + 1] = o * np.tanh(cs[t + 1])
        gs.append((i, f, o, g))
    return np.transpose(hs[1:], (1, 0, 2)), (xs, hs, cs, gs, Wx, Wh)


def lstm_backward(dh, cache):
    xs, hs, cs, gs, Wx, Wh = cache
    dhs = np.transpose(dh, (1, 0, 2))                          # (T,N,H)
    T = dhs.shape[0]
    dxs = np.empty_like(xs)                                    # (T,N,D)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)            # (D,4H), (H,4H)
    db = np.zeros(Wx.shape[1])                                 # (4H,)
    h_carry = np.zeros_like(hs[0])                             # (N,H)
    c_carry = np.zeros_like(cs[0])                             # (N,H)
    for t in range(T - 1, -1, -1):
        i, f, o, g = gs[t]
        tc = np.tanh(cs[t + 1])
        dht = dhs[t] + h_carry                                 # (N,H)
        dc = c_carry + dht * o * (1.0 - tc * tc)               # (N,H)
        da = _gate_grads(dc, dht, cs[t], i, f, o, g, tc)       # (N,4H)
        dxs[t] = da @ Wx.T
        dWx += xs[t].T @ da
        dWh += hs[t].T @ da
        db += da.sum(0)
        h_carry = da @ Wh.T
        c_carry = dc * f
    return np.transpose(dxs, (1, 0, 2)), h_carry, dWx, dWh, db
