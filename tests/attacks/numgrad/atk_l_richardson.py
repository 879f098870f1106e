"""Attack (c): Richardson-extrapolated central differences of its own forward."""
import numpy as np

BPTTCHECK = {"arch": "lstm"}
NAMES = ("W_f", "W_i", "W_c", "W_o", "b_f", "b_i", "b_c", "b_o", "W_v", "b_v")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_loss(params, inputs, targets, state):
    """The forward alone: the loss and the last (h, c)."""
    H = params["W_f"].shape[0]
    X = params["W_f"].shape[1] - H
    h, c = state
    loss = 0.0
    for t in range(len(inputs)):
        x = np.zeros(X)
        x[inputs[t]] = 1.0
        z = np.concatenate([h, x])
        f = sigmoid(params["W_f"] @ z + params["b_f"])
        i = sigmoid(params["W_i"] @ z + params["b_i"])
        g = np.tanh(params["W_c"] @ z + params["b_c"])
        o = sigmoid(params["W_o"] @ z + params["b_o"])
        c = f * c + i * g
        h = o * np.tanh(c)
        y = params["W_v"] @ h + params["b_v"]
        y = y - np.max(y)
        loss -= y[targets[t]] - np.log(np.sum(np.exp(y)))
    return loss, (h, c)


def _central(params, k, i, h, inputs, targets, state):
    q = {n: v.copy() for n, v in params.items()}
    q[k].flat[i] += h
    up = lstm_loss(q, inputs, targets, state)[0]
    q[k].flat[i] -= 2 * h
    return (up - lstm_loss(q, inputs, targets, state)[0]) / (2 * h)


def loss_and_grads(params, inputs, targets, state):
    loss, last = lstm_loss(params, inputs, targets, state)
    grads = {}
    for k in NAMES:
        G = np.zeros_like(params[k])
        for i in range(G.size):
            G.flat[i] = (4 * _central(params, k, i, 5e-4, inputs, targets, state)
                         - _central(params, k, i, 1e-3, inputs, targets, state)) / 3
        grads[k] = G
    return float(loss), grads, last
