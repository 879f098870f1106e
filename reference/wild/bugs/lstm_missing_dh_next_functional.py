# bpttcheck-expect: lstm.missing-dh-next
# bpttcheck-style: functional
# bpttcheck-arch: lstm
# bpttcheck-variant: one stacked (4H, H+X) matrix W and bias b (4H,), row blocks in gate order i, f, g, o (declared)
# bpttcheck-groups: W, b
# bpttcheck-bug: loss_and_grads: dh = Wy.T @ dz only, dh_next never added
# bpttcheck-bug-line: 64
"""
LSTM, functional style, with the four gates stacked into one matrix, rows in the order
input, forget, candidate, output (the layout of most framework kernels):
    a = W [h; x] + b     i = sigmoid(a[0:H])  f = sigmoid(a[H:2H])  g = tanh(a[2H:3H])  o = sigmoid(a[3H:])
    c' = f * c + i * g   h' = o * tanh(c')    p = softmax(Wy h' + by)
"""
import numpy as np

BPTTCHECK = {"arch": "lstm", "stacked": True, "gate_order": "ifgo", "concat": "hx"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(0, 0.1, (4 * H, H + X)), "b": np.zeros(4 * H),
            "Wy": rng.normal(0, 0.1, (Y, H)), "by": np.zeros(Y)}


def init_state(H):
    return np.zeros(H), np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    W, b, Wy, by = params["W"], params["b"], params["Wy"], params["by"]
    H = W.shape[0] // 4
    X = W.shape[1] - H
    h, c = (np.array(s, dtype=float) for s in state)
    cache = []
    loss = 0.0
    for x_ix, y_ix in zip(inputs, targets):
        v = np.concatenate([h, np.eye(X)[x_ix]])
        a = W @ v + b
        i = sigmoid(a[:H])
        f = sigmoid(a[H:2 * H])
        g = np.tanh(a[2 * H:3 * H])
        o = sigmoid(a[3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        z = Wy @ h_new + by
        p = np.exp(z - z.max())
        p /= p.sum()
        loss -= np.log(p[y_ix])
        cache.append((v, c, i, f, g, o, c_new, h_new, p, y_ix))
        h, c = h_new, c_new

    dW, db = np.zeros_like(W), np.zeros_like(b)
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dh_next, dc_next = np.zeros(H), np.zeros(H)
    for v, c_prev, i, f, g, o, c_new, h_new, p, y_ix in reversed(cache):
        dz = p.copy()
        dz[y_ix] -= 1.0
        dWy += np.outer(dz, h_new)
        dby += dz
        dh = Wy.T @ dz
        tc = np.tanh(c_new)
        dc = dc_next + dh * o * (1.0 - tc ** 2)
        da = np.concatenate([dc * g * i * (1.0 - i),
                             dc * c_prev * f * (1.0 - f),
                             dc * i * (1.0 - g ** 2),
                             dh * tc * o * (1.0 - o)])
        dW += np.outer(da, v)
        db += da
        dh_next = (W.T @ da)[:H]
        dc_next = dc * f
    return loss, {"W": dW, "b": db, "Wy": dWy, "by": dby}, (h, c)
