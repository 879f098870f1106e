# bpttcheck-expect: gru.gate-derivative-reapplied
# arch: gru
# groups: Wz, Wr, Wn, bz, br, bn
# bug: backward: the update-gate derivative is sigmoid(zg) * (1 - sigmoid(zg)) although zg is already the gate output
"""
GRU, functional style, 1-D vectors. Convention (reset applied to h BEFORE the product):

    v  = [h; x]                       (H+X,)
    zg = sigmoid(Wz @ v + bz)         update gate
    r  = sigmoid(Wr @ v + br)         reset gate
    u  = [r * h; x]                   (H+X,)
    n  = tanh(Wn @ u + bn)            candidate
    h' = (1 - zg) * n + zg * h
    logits = Wy @ h' + by
"""
import numpy as np

BPTTCHECK = {"arch": "gru"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(a):
    e = np.exp(a - np.max(a))
    return e / np.sum(e)


def loss_and_grads(params, inputs, targets, state):
    Wz, Wr, Wn = params["Wz"], params["Wr"], params["Wn"]
    bz, br, bn = params["bz"], params["br"], params["bn"]
    Wy, by = params["Wy"], params["by"]
    H = Wz.shape[0]
    X = Wz.shape[1] - H
    T = len(inputs)

    hs = [np.array(state, dtype=float)]
    steps = []
    loss = 0.0
    for t in range(T):
        h = hs[t]
        x = np.zeros(X)
        x[inputs[t]] = 1.0
        v = np.concatenate([h, x])                        # (H+X,)
        zg = sigmoid(Wz @ v + bz)                         # (H,)
        r = sigmoid(Wr @ v + br)                          # (H,)
        u = np.concatenate([r * h, x])                    # (H+X,)
        n = np.tanh(Wn @ u + bn)                          # (H,)
        h_new = (1.0 - zg) * n + zg * h                   # (H,)
        p = softmax(Wy @ h_new + by)                      # (Y,)
        loss -= np.log(p[targets[t]])
        hs.append(h_new)
        steps.append((v, zg, r, u, n, p))

    grads = {k: np.zeros_like(w) for k, w in params.items()}
    dh_next = np.zeros(H)
    for t in reversed(range(T)):
        v, zg, r, u, n, p = steps[t]
        h, h_new = hs[t], hs[t + 1]
        dy = p.copy()
        dy[targets[t]] -= 1.0                             # (Y,)
        grads["Wy"] += np.outer(dy, h_new)                # (Y, H)
        grads["by"] += dy
        dh = Wy.T @ dy + dh_next                          # (H,) total grad into h'

        dn = dh * (1.0 - zg)                              # (H,)
        dzg = dh * (h - n)                                # (H,)
        dh_prev = dh * zg                                 # (H,) direct path h -> h'

        dn_raw = dn * (1.0 - n * n)                       # (H,) through tanh
        grads["Wn"] += np.outer(dn_raw, u)                # (H, H+X)
        grads["bn"] += dn_raw
        du = Wn.T @ dn_raw                                # (H+X,)
        drh = du[:H]                                      # grad of r * h
        dr = drh * h
        dh_prev += drh * r

        dzg_raw = dzg * sigmoid(zg) * (1.0 - sigmoid(zg))   # (H,)
        dr_raw = dr * r * (1.0 - r)
        grads["Wz"] += np.outer(dzg_raw, v)               # (H, H+X)
        grads["bz"] += dzg_raw
        grads["Wr"] += np.outer(dr_raw, v)
        grads["br"] += dr_raw
        dv = Wz.T @ dzg_raw + Wr.T @ dr_raw               # (H+X,)
        dh_prev += dv[:H]
        dh_next = dh_prev

    return float(loss), grads, hs[T]
