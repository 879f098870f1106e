# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: rnn
# bpttcheck-variant: no output bias (params Wxh, Whh, Why, bh only)
"""
Vanilla tanh RNN, functional style, whose output layer has no bias:
    h[t+1] = tanh(Wxh x[t] + Whh h[t] + bh)     p[t] = softmax(Why h[t+1])
"""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    return {"Wxh": rng.normal(0, 0.1, (H, X)), "Whh": rng.normal(0, 0.1, (H, H)),
            "Why": rng.normal(0, 0.1, (Y, H)), "bh": np.zeros(H)}


def init_state(H):
    return np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why, bh = params["Wxh"], params["Whh"], params["Why"], params["bh"]
    H, X = Wxh.shape
    hs = [np.asarray(state, dtype=float).copy()]
    ps = []
    loss = 0.0
    for t, ix in enumerate(inputs):
        hs.append(np.tanh(Wxh[:, ix] + Whh @ hs[t] + bh))
        z = Why @ hs[t + 1]
        e = np.exp(z - np.max(z))
        ps.append(e / e.sum())
        loss -= np.log(ps[t][targets[t]])

    dWxh, dWhh, dWhy, dbh = (np.zeros_like(Wxh), np.zeros_like(Whh),
                             np.zeros_like(Why), np.zeros_like(bh))
    dh_next = np.zeros(H)
    for t in reversed(range(len(inputs))):
        dz = ps[t].copy()
        dz[targets[t]] -= 1.0
        dWhy += np.outer(dz, hs[t + 1])
        da = (Why.T @ dz + dh_next) * (1.0 - hs[t + 1] ** 2)
        dWxh[:, inputs[t]] += da
        dWhh += np.outer(da, hs[t])
        dbh += da
        dh_next = Whh.T @ da
    return loss, {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh}, hs[-1]
