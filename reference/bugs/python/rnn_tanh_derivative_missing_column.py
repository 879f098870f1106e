# bpttcheck-expect: rnn.tanh-derivative-missing
# arch: rnn
# groups: Wxh, Whh, bh
# bug: backward: da = dh, the (1 - h^2) tanh factor is missing
"""
Vanilla tanh RNN, functional style with column vectors: bh (H,1), by (Y,1), state (H,1),
one-hot inputs (X,1). The returned last state is (H,1) as well.
"""
import numpy as np

BPTTCHECK = {"arch": "rnn", "column_vectors": True}


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"], params["by"]                   # (H,1), (Y,1)
    H, X = Wxh.shape
    T = len(inputs)

    xs, hs, ps = [], [np.array(state, dtype=float).reshape(H, 1)], []
    loss = 0.0
    for t in range(T):
        x = np.zeros((X, 1))                              # (X,1)
        x[inputs[t], 0] = 1.0
        h = np.tanh(Wxh @ x + Whh @ hs[t] + bh)           # (H,1)
        z = Why @ h + by                                  # (Y,1)
        e = np.exp(z - z.max())
        p = e / e.sum()                                   # (Y,1)
        loss += -np.log(p[targets[t], 0])
        xs.append(x)
        hs.append(h)
        ps.append(p)

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros((H, 1))
    for t in reversed(range(T)):
        dz = ps[t].copy()                                 # (Y,1)
        dz[targets[t], 0] -= 1.0
        dWhy += dz @ hs[t + 1].T                          # (Y,H)
        dby += dz
        dh = Why.T @ dz + dh_next                         # (H,1)
        da = dh                                           # (H,1)
        dWxh += da @ xs[t].T                              # (H,X)
        dWhh += da @ hs[t].T                              # (H,H)
        dbh += da
        dh_next = Whh.T @ da                              # (H,1)

    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, hs[T]
