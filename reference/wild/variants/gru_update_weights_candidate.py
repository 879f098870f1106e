# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: gru
# bpttcheck-variant: update gate weights the candidate: h = (1 - z) * h_prev + z * n (opposite of the README convention)
"""
GRU in the functional style with the interpolation used by Cho et al. (2014) and by
"Deep Learning from Scratch 2": the update gate z selects the NEW candidate.
    v = [h; x]   z = sigmoid(Wz v + bz)   r = sigmoid(Wr v + br)
    n = tanh(Wn [r * h; x] + bn)          h' = (1 - z) * h + z * n
    p = softmax(Wy h' + by)
"""
import numpy as np

BPTTCHECK = {"arch": "gru"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    p = {}
    for g in ("z", "r", "n"):
        p["W" + g] = rng.normal(0, 0.1, (H, H + X))
        p["b" + g] = np.zeros(H)
    p["Wy"] = rng.normal(0, 0.1, (Y, H))
    p["by"] = np.zeros(Y)
    return p


def init_state(H):
    return np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    Wz, Wr, Wn, Wy = params["Wz"], params["Wr"], params["Wn"], params["Wy"]
    bz, br, bn, by = params["bz"], params["br"], params["bn"], params["by"]
    H = Wz.shape[0]
    X = Wz.shape[1] - H

    h = np.array(state, dtype=float)
    tape = []
    loss = 0.0
    for x_ix, y_ix in zip(inputs, targets):
        x = np.zeros(X)
        x[x_ix] = 1.0
        v = np.concatenate([h, x])
        z = sigmoid(Wz @ v + bz)
        r = sigmoid(Wr @ v + br)
        u = np.concatenate([r * h, x])
        n = np.tanh(Wn @ u + bn)
        h_new = (1.0 - z) * h + z * n
        logits = Wy @ h_new + by
        e = np.exp(logits - logits.max())
        p = e / e.sum()
        loss += -np.log(p[y_ix])
        tape.append((h, v, z, r, u, n, h_new, p, y_ix))
        h = h_new

    grads = {name: np.zeros_like(w) for name, w in params.items()}
    carry = np.zeros(H)
    for h_prev, v, z, r, u, n, h_new, p, y_ix in reversed(tape):
        dlogits = p.copy()
        dlogits[y_ix] -= 1.0
        grads["Wy"] += np.outer(dlogits, h_new)
        grads["by"] += dlogits
        dh = Wy.T @ dlogits + carry

        dh_prev = dh * (1.0 - z)
        dn_pre = dh * z * (1.0 - n ** 2)
        dz_pre = dh * (n - h_prev) * z * (1.0 - z)

        grads["Wn"] += np.outer(dn_pre, u)
        grads["bn"] += dn_pre
        du = Wn.T @ dn_pre
        dr_pre = du[:H] * h_prev * r * (1.0 - r)
        dh_prev += du[:H] * r

        grads["Wz"] += np.outer(dz_pre, v)
        grads["bz"] += dz_pre
        grads["Wr"] += np.outer(dr_pre, v)
        grads["br"] += dr_pre
        dh_prev += (Wz.T @ dz_pre + Wr.T @ dr_pre)[:H]
        carry = dh_prev

    return loss, grads, h
