"""Attack (e): finite differences as ONE batched forward with an extra perturbation axis."""
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


def loss_and_grads(params, inputs, targets, state):
    loss, last = lstm_loss(params, inputs, targets, state)
    flat = np.concatenate([params[k].ravel() for k in NAMES])
    n, s = flat.size, 1e-5
    B = np.repeat(flat[None], 2 * n, axis=0) + np.vstack([np.eye(n), -np.eye(n)]) * s
    cut = np.cumsum([0] + [params[k].size for k in NAMES])
    P = {k: B[:, cut[j]:cut[j + 1]].reshape(2 * n, *params[k].shape) for j, k in enumerate(NAMES)}
    H = params["W_f"].shape[0]
    h = np.repeat(np.asarray(state[0], float)[None], 2 * n, axis=0)
    c = np.repeat(np.asarray(state[1], float)[None], 2 * n, axis=0)
    losses = np.zeros(2 * n)
    for t in range(len(inputs)):
        x = np.zeros((2 * n, params["W_f"].shape[1] - H))
        x[:, inputs[t]] = 1.0
        z = np.concatenate([h, x], axis=1)[:, :, None]
        f, i, o = (sigmoid((P[w] @ z)[:, :, 0] + P[b]) for w, b in
                   (("W_f", "b_f"), ("W_i", "b_i"), ("W_o", "b_o")))
        c = f * c + i * np.tanh((P["W_c"] @ z)[:, :, 0] + P["b_c"])
        h = o * np.tanh(c)
        y = (P["W_v"] @ h[:, :, None])[:, :, 0] + P["b_v"]
        y = y - y.max(axis=1, keepdims=True)
        losses -= y[:, targets[t]] - np.log(np.exp(y).sum(axis=1))
    G = (losses[:n] - losses[n:]) / (2 * s)
    grads = {k: G[cut[j]:cut[j + 1]].reshape(params[k].shape) for j, k in enumerate(NAMES)}
    return float(loss), grads, last
