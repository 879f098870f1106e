# bpttcheck-expect: gru.reset-after
# arch: gru
# groups: Wz, Wr, Wn, bz, br, bn, Wy, by
# bug: forward and backward consistently use n = tanh(Wn_x @ x + r * (Wn_h @ h) + bn) (reset AFTER the recurrent product), not the project's reset-before convention (self-consistent, so finite differences agree; every group differs from the reference)
"""
GRU, functional style, 1-D vectors, with Wn = [Wn_h | Wn_x] split by columns:

    v  = [h; x]                       (H+X,)
    zg = sigmoid(Wz @ v + bz)         update gate
    r  = sigmoid(Wr @ v + br)         reset gate
    n  = tanh(Wn_x @ x + r * (Wn_h @ h) + bn)   candidate
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
        a_h = Wn[:, :H] @ h                               # (H,) recurrent part
        n = np.tanh(Wn[:, H:] @ x + r * a_h + bn)         # (H,)
        h_new = (1.0 - zg) * n + zg * h                   # (H,)
        p = softmax(Wy @ h_new + by)                      # (Y,)
        loss -= np.log(p[targets[t]])
        hs.append(h_new)
        steps.append((v, x, zg, r, a_h, n, p))

    grads = {k: np.zeros_like(w) for k, w in params.items()}
    dh_next = np.zeros(H)
    for t in reversed(range(T)):
        v, x, zg, r, a_h, n, p = steps[t]
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
        grads["Wn"][:, H:] += np.outer(dn_raw, x)         # (H, X)
        grads["bn"] += dn_raw
        dr = dn_raw * a_h                                 # (H,)
        da_h = dn_raw * r                                 # (H,) grad of Wn_h @ h
        grads["Wn"][:, :H] += np.outer(da_h, h)           # (H, H)
        dh_prev += Wn[:, :H].T @ da_h

        dzg_raw = dzg * zg * (1.0 - zg)                   # (H,) through sigmoid
        dr_raw = dr * r * (1.0 - r)
        grads["Wz"] += np.outer(dzg_raw, v)               # (H, H+X)
        grads["bz"] += dzg_raw
        grads["Wr"] += np.outer(dr_raw, v)
        grads["br"] += dr_raw
        dv = Wz.T @ dzg_raw + Wr.T @ dr_raw               # (H+X,)
        dh_prev += dv[:H]
        dh_next = dh_prev

    return float(loss), grads, hs[T]
