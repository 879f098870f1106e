# bpttcheck-expect: lstm.missing-dh-next
# functions: lstm_backward
# bug: lstm_backward calls lstm_step_backward with dh[:, t] only: the dprev_h coming back from step t+1 is dropped (dprev_c is still passed on)
"""
Batched vanilla-RNN and LSTM layers, numpy only, in the style of the course
assignment file rnn_layers.py.

Shapes: N batch, T time steps, D input size, H hidden size.
  RNN : next_h = tanh(x @ Wx + prev_h @ Wh + b)        Wx (D,H), Wh (H,H), b (H,)
  LSTM: a = x @ Wx + prev_h @ Wh + b, split i, f, o, g  Wx (D,4H), Wh (H,4H), b (4H,)
        i, f, o = sigmoid, g = tanh
        next_c = f * prev_c + i * g,  next_h = o * tanh(next_c)
The sequence functions loop over the step functions; the backward passes add
the upstream dh[:, t] to the gradient coming back from step t+1.
"""
import numpy as np


def sigmoid(x):
    """Numerically stable logistic function."""
    e = np.exp(-np.abs(x))                              # in (0, 1], never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# ----------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    z = x @ Wx + prev_h @ Wh + b                        # (N,H)
    next_h = np.tanh(z)                                 # (N,H)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1.0 - next_h ** 2)                  # (N,H)
    dx = dz @ Wx.T                                      # (N,D)
    dprev_h = dz @ Wh.T                                 # (N,H)
    dWx = x.T @ dz                                      # (D,H)
    dWh = prev_h.T @ dz                                 # (H,H)
    db = dz.sum(axis=0)                                 # (H,)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))                             # (N,T,H)
    steps = []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        steps.append(step_cache)
    cache = (steps, D)
    return h, cache


def rnn_backward(dh, cache):
    steps, D = cache
    N, T, H = dh.shape
    dx = np.zeros((N, T, D))                            # (N,T,D)
    dWx = np.zeros((D, H))                              # (D,H)
    dWh = np.zeros((H, H))                              # (H,H)
    db = np.zeros(H)                                    # (H,)
    dh_next = np.zeros((N, H))                          # (N,H) from step t+1
    for t in reversed(range(T)):
        dx_t, dh_next, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dh_next, steps[t])
        dx[:, t] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dh_next                                       # (N,H)
    return dx, dh0, dWx, dWh, db


# ----------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b                        # (N,4H)
    i = sigmoid(a[:, 0 * H:1 * H])                      # (N,H) input gate
    f = sigmoid(a[:, 1 * H:2 * H])                      # (N,H) forget gate
    o = sigmoid(a[:, 2 * H:3 * H])                      # (N,H) output gate
    g = np.tanh(a[:, 3 * H:4 * H])                      # (N,H) candidate
    next_c = f * prev_c + i * g                         # (N,H)
    tc = np.tanh(next_c)                                # (N,H)
    next_h = o * tc                                     # (N,H)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc = cache
    dc = dnext_c + dnext_h * o * (1.0 - tc ** 2)        # (N,H) total cell gradient
    di = dc * g                                         # (N,H)
    df = dc * prev_c                                    # (N,H)
    do = dnext_h * tc                                   # (N,H)
    dg = dc * i                                         # (N,H)
    dprev_c = dc * f                                    # (N,H)
    dai = di * i * (1.0 - i)                            # (N,H)
    daf = df * f * (1.0 - f)                            # (N,H)
    dao = do * o * (1.0 - o)                            # (N,H)
    dag = dg * (1.0 - g ** 2)                           # (N,H)
    da = np.concatenate([dai, daf, dao, dag], axis=1)   # (N,4H)
    dx = da @ Wx.T                                      # (N,D)
    dprev_h = da @ Wh.T                                 # (N,H)
    dWx = x.T @ da                                      # (D,4H)
    dWh = prev_h.T @ da                                 # (H,4H)
    db = da.sum(axis=0)                                 # (4H,)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))                             # (N,T,H)
    steps = []
    prev_h = h0
    prev_c = np.zeros((N, H))                           # (N,H) c0 = 0
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        steps.append(step_cache)
    cache = (steps, D)
    return h, cache


def lstm_backward(dh, cache):
    steps, D = cache
    N, T, H = dh.shape
    dx = np.zeros((N, T, D))                            # (N,T,D)
    dWx = np.zeros((D, 4 * H))                          # (D,4H)
    dWh = np.zeros((H, 4 * H))                          # (H,4H)
    db = np.zeros(4 * H)                                # (4H,)
    dh_next = np.zeros((N, H))                          # (N,H) from step t+1
    dc_next = np.zeros((N, H))                          # (N,H) from step t+1
    for t in reversed(range(T)):
        dx_t, dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t], dc_next, steps[t])
        dx[:, t] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dh_next                                       # (N,H)
    return dx, dh0, dWx, dWh, db
