# bpttcheck-expect: loss.mean-grad-sum
# arch: rnn
# groups: Wxh, Whh, Why, bh, by
# bug: the loss is divided by T but the output gradients are not (the dz /= T line is missing)
"""
Vanilla tanh RNN whose loss is the MEAN cross-entropy over the T time steps.
The gradients are of that mean loss, so every output gradient carries a 1/T factor.
"""
import numpy as np


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"], params["by"]
    H, X = Wxh.shape
    T = len(inputs)

    xs, hs, ps = [], [np.array(state, dtype=float)], []
    total = 0.0
    for t in range(T):
        x = np.zeros(X)                                   # (X,)
        x[inputs[t]] = 1.0
        h = np.tanh(Wxh @ x + Whh @ hs[t] + bh)           # (H,)
        p = softmax(Why @ h + by)                         # (Y,)
        total -= np.log(p[targets[t]])
        xs.append(x)
        hs.append(h)
        ps.append(p)
    loss = total / T

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros(H)
    for t in reversed(range(T)):
        dz = ps[t].copy()
        dz[targets[t]] -= 1.0                             # (Y,)
        dWhy += np.outer(dz, hs[t + 1])                   # (Y, H)
        dby += dz
        dh = Why.T @ dz + dh_next                         # (H,)
        da = (1.0 - hs[t + 1] ** 2) * dh                  # (H,)
        dWxh += np.outer(da, xs[t])                       # (H, X)
        dWhh += np.outer(da, hs[t])                       # (H, H)
        dbh += da
        dh_next = Whh.T @ da

    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, hs[T]
