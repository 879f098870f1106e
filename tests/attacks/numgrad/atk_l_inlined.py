"""Attack (f): central differences over an inlined copy of the forward (no named loss
function is called for them)."""
import numpy as np

BPTTCHECK = {"arch": "lstm"}
NAMES = ("W_f", "W_i", "W_c", "W_o", "b_f", "b_i", "b_c", "b_o", "W_v", "b_v")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(params, inputs, targets, state):
    H = params["W_f"].shape[0]
    X = params["W_f"].shape[1] - H
    jobs = [(None, 0, 0.0)] + [(k, i, s) for k in NAMES for i in range(params[k].size)
                               for s in (1e-5, -1e-5)]
    found = {}
    for k, i, s in jobs:
        q = {n: v.copy() for n, v in params.items()}
        if k:
            q[k].flat[i] += s
        h, c = state
        L = 0.0
        for t in range(len(inputs)):
            x = np.zeros(X)
            x[inputs[t]] = 1.0
            z = np.concatenate([h, x])
            f = sigmoid(q["W_f"] @ z + q["b_f"])
            ig = sigmoid(q["W_i"] @ z + q["b_i"])
            g = np.tanh(q["W_c"] @ z + q["b_c"])
            o = sigmoid(q["W_o"] @ z + q["b_o"])
            c = f * c + ig * g
            h = o * np.tanh(c)
            y = q["W_v"] @ h + q["b_v"]
            L -= y[targets[t]] - np.max(y) - np.log(np.sum(np.exp(y - np.max(y))))
        found[k, i, s] = (L, (h, c))
    grads = {k: np.zeros_like(params[k]) for k in NAMES}
    for k in NAMES:
        for i in range(params[k].size):
            grads[k].flat[i] = (found[k, i, 1e-5][0] - found[k, i, -1e-5][0]) / 2e-5
    loss, last = found[None, 0, 0.0]
    return float(loss), grads, last
