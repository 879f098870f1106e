# bpttcheck-expect: layout.gate-order
# arch: lstm
# groups: Wf, Wi, Wg, Wo, bf, bi, bg, bo, Wy, by
# bug: BPTTCHECK declares gate_order "ifgo" but forward and backward both use the row blocks as f, i, g, o (self-consistent, so finite differences agree; read as declared, every group differs from the reference)
"""
LSTM with ONE stacked gate matrix W (4H, H+X) acting on v = [h; x] and one stacked bias b (4H,).
Row blocks: f, i, g, o. Output layer Wy (Y, H), by (Y,). 1-D vectors.
"""
import numpy as np

BPTTCHECK = {"arch": "lstm", "stacked": True, "gate_order": "ifgo"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(params, inputs, targets, state):
    W, b, Wy, by = params["W"], params["b"], params["Wy"], params["by"]
    H = W.shape[0] // 4
    X = W.shape[1] - H
    h, c = (np.array(s, dtype=float) for s in state)

    cache = []
    loss = 0.0
    for ix, tx in zip(inputs, targets):
        x = np.zeros(X)
        x[ix] = 1.0
        v = np.concatenate([h, x])                        # (H+X,)
        a = W @ v + b                                     # (4H,) all gates at once
        f = sigmoid(a[0:H])                               # (H,)
        i = sigmoid(a[H:2 * H])                           # (H,)
        g = np.tanh(a[2 * H:3 * H])                       # (H,)
        o = sigmoid(a[3 * H:4 * H])                       # (H,)
        c_prev = c
        c = f * c_prev + i * g                            # (H,)
        h = o * np.tanh(c)                                # (H,)
        zy = Wy @ h + by                                  # (Y,)
        p = np.exp(zy - zy.max())
        p /= p.sum()
        loss -= np.log(p[tx])
        cache.append((v, i, f, g, o, c_prev, c, h, p, tx))

    dW, db = np.zeros_like(W), np.zeros_like(b)
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dh_next, dc_next = np.zeros(H), np.zeros(H)
    for v, i, f, g, o, c_prev, c_t, h_t, p, tx in reversed(cache):
        dy = p.copy()
        dy[tx] -= 1.0                                     # (Y,)
        dWy += np.outer(dy, h_t)                          # (Y, H)
        dby += dy
        dh = Wy.T @ dy + dh_next                          # (H,)
        tc = np.tanh(c_t)
        dc = dc_next + dh * o * (1.0 - tc * tc)           # (H,)
        da = np.concatenate([
            dc * c_prev * f * (1.0 - f),                  # forget gate
            dc * g * i * (1.0 - i),                       # input gate
            dc * i * (1.0 - g * g),                       # candidate
            dh * tc * o * (1.0 - o),                      # output gate
        ])                                                # (4H,)
        dW += np.outer(da, v)                             # (4H, H+X)
        db += da
        dv = W.T @ da                                     # (H+X,)
        dh_next = dv[:H]
        dc_next = dc * f

    grads = {"W": dW, "b": db, "Wy": dWy, "by": dby}
    return float(loss), grads, (h, c)
