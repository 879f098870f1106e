# bpttcheck-expect: pass; warning softmax.unstable
# arch: rnn
# groups: -
# bug: softmax() exponentiates the raw logits without subtracting their max (overflows for large logits)
"""
Vanilla tanh RNN, functional style, explicit loops over time, 1-D vectors.

    h[t+1] = tanh(Wxh @ x[t] + Whh @ h[t] + bh)      h[0] = h0
    z[t]   = Why @ h[t+1] + by
    loss   = sum_t -log softmax(z[t])[targets[t]]
"""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def softmax(z):
    e = np.exp(z)
    return e / np.sum(e)


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"], params["by"]
    H, X = Wxh.shape
    T = len(inputs)

    # forward: hs[t] is the state entering step t, hs[t+1] the state it produces
    xs, hs, ps = [], [np.array(state, dtype=float)], []
    loss = 0.0
    for t in range(T):
        x = np.zeros(X)                                   # (X,) one-hot
        x[inputs[t]] = 1.0
        h = np.tanh(Wxh @ x + Whh @ hs[t] + bh)           # (H,)
        p = softmax(Why @ h + by)                         # (Y,)
        loss -= np.log(p[targets[t]])
        xs.append(x)
        hs.append(h)
        ps.append(p)

    # backward
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros(H)                                 # (H,) gradient from step t+1
    for t in reversed(range(T)):
        dz = ps[t].copy()                                 # (Y,)
        dz[targets[t]] -= 1.0                             # p - onehot(target)
        dWhy += np.outer(dz, hs[t + 1])                   # (Y, H) current state
        dby += dz
        dh = Why.T @ dz + dh_next                         # (H,)
        da = (1.0 - hs[t + 1] ** 2) * dh                  # (H,) through tanh
        dWxh += np.outer(da, xs[t])                       # (H, X)
        dWhh += np.outer(da, hs[t])                       # (H, H) previous state
        dbh += da
        dh_next = Whh.T @ da                              # (H,)

    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, hs[T]
