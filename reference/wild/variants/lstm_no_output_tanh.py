# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: lstm
# bpttcheck-variant: no tanh on the cell output: h = o * c
"""
LSTM, functional style, whose hidden state is the output gate times the raw cell state
(some papers and simplified course notes drop the second tanh):
    v = [h; x]  f, i, o = sigmoid(W. v + b.)  g = tanh(Wg v + bg)
    c' = f * c + i * g     h' = o * c'     p = softmax(Wy h' + by)
"""
import numpy as np

BPTTCHECK = {"arch": "lstm"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    p = {}
    for g in "figo":
        p["W" + g] = rng.normal(0, 0.1, (H, H + X))
        p["b" + g] = np.zeros(H)
    p["Wy"] = rng.normal(0, 0.1, (Y, H))
    p["by"] = np.zeros(Y)
    return p


def init_state(H):
    return np.zeros(H), np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    Wf, Wi, Wg, Wo = params["Wf"], params["Wi"], params["Wg"], params["Wo"]
    bf, bi, bg, bo = params["bf"], params["bi"], params["bg"], params["bo"]
    Wy, by = params["Wy"], params["by"]
    H = Wf.shape[0]
    X = Wf.shape[1] - H
    h = np.array(state[0], dtype=float)
    c = np.array(state[1], dtype=float)

    steps = []
    loss = 0.0
    for t in range(len(inputs)):
        x = np.zeros(X)
        x[inputs[t]] = 1.0
        v = np.concatenate([h, x])
        f = sigmoid(Wf @ v + bf)
        i = sigmoid(Wi @ v + bi)
        g = np.tanh(Wg @ v + bg)
        o = sigmoid(Wo @ v + bo)
        c_new = f * c + i * g
        h_new = o * c_new
        z = Wy @ h_new + by
        p = np.exp(z - z.max())
        p /= p.sum()
        loss -= np.log(p[targets[t]])
        steps.append((v, c, f, i, g, o, c_new, h_new, p))
        h, c = h_new, c_new

    grads = {k: np.zeros_like(w) for k, w in params.items()}
    dh_next = np.zeros(H)
    dc_next = np.zeros(H)
    for t in reversed(range(len(inputs))):
        v, c_prev, f, i, g, o, c_new, h_new, p = steps[t]
        dz = p.copy()
        dz[targets[t]] -= 1.0
        grads["Wy"] += np.outer(dz, h_new)
        grads["by"] += dz
        dh = Wy.T @ dz + dh_next
        do = dh * c_new * o * (1.0 - o)
        dc = dc_next + dh * o
        df = dc * c_prev * f * (1.0 - f)
        di = dc * g * i * (1.0 - i)
        dg = dc * i * (1.0 - g * g)
        dv = np.zeros(H + X)
        for name, d in (("f", df), ("i", di), ("g", dg), ("o", do)):
            grads["W" + name] += np.outer(d, v)
            grads["b" + name] += d
            dv += params["W" + name].T @ d
        dh_next = dv[:H]
        dc_next = dc * f
    return loss, grads, (h, c)
