# line_zoo: fs_missing_dh_next.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""
LSTM with one stacked weight matrix W of shape (4H, X+H) acting on [x; h].
Row blocks of W and b, top to bottom: input gate, forget gate, candidate, output gate.
"""
import numpy as np

BPTTCHECK = {"arch": "lstm", "stacked": True, "gate_order": "ifgo", "concat": "xh"}


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(params, inputs, targets, state):
    W, b, Wy, by = params["W"], params["b"], params["Wy"], params["by"]
    H = W.shape[0] // 4
    X = W.shape[1] - H
    h, c = state
    h = np.array(h, dtype=float)
    c = np.array(c, dtype=float)

    cache = []
    loss = 0.0
    for t, (ix, target) in enumerate(zip(inputs, targets)):
        x = np.zeros(X)
        x[ix] = 1.0
        xh = np.concatenate((x, h))
        a = W @ xh + b
        i_g = sig(a[0:H])
        f_g = sig(a[H:2 * H])
        g_g = np.tanh(a[2 * H:3 * H])
        o_g = sig(a[3 * H:4 * H])
        c_prev = c
        c = f_g * c_prev + i_g * g_g
        h = o_g * np.tanh(c)
        y = Wy @ h + by
        p = np.exp(y - y.max())
        p /= p.sum()
        loss -= np.log(p[target])
        cache.append((xh, i_g, f_g, g_g, o_g, c_prev, c, h, p))

    dW, db = np.zeros_like(W), np.zeros_like(b)
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dh_next = np.zeros(H)
    dc_next = np.zeros(H)
    for t in reversed(range(len(inputs))):
        xh, i_g, f_g, g_g, o_g, c_prev, c_t, h_t, p = cache[t]
        dy = p.copy()
        dy[targets[t]] -= 1.0
        dWy += np.outer(dy, h_t)
        dby += dy
        dh = Wy.T @ dy + dh_next
        dc = dc_next + dh * o_g * (1.0 - np.tanh(c_t) ** 2)
        d_i = dc * g_g * i_g * (1.0 - i_g)
        d_f = dc * c_prev * f_g * (1.0 - f_g)
        d_g = dc * i_g * (1.0 - g_g ** 2)
        d_o = dh * np.tanh(c_t) * o_g * (1.0 - o_g)
        da = np.concatenate((d_i, d_f, d_g, d_o))
        dW += np.outer(da, xh)
        db += da
        dxh = W.T @ da
        dh_next = dxh[X:]
        dc_next = dc * f_g
    return loss, {"W": dW, "b": db, "Wy": dWy, "by": dby}, (h, c)
