# line_zoo: cg_dh_wrong_slice.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""
GRU cell as a class (reset gate applied to h before the candidate's matrix):
    z = sigmoid(Wz [h; x] + bz),  r = sigmoid(Wr [h; x] + br)
    n = tanh(Wn [r*h; x] + bn),   h_new = (1 - z) * n + z * h
"""
import numpy as np

BPTTCHECK = {"arch": "gru"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class GRU:
    def __init__(self, params):
        self.params = params
        self.H = params["Wz"].shape[0]
        self.X = params["Wz"].shape[1] - self.H

    def step_forward(self, x, h):
        P = self.params
        hx = np.concatenate([h, x])
        z = sigmoid(P["Wz"] @ hx + P["bz"])
        r = sigmoid(P["Wr"] @ hx + P["br"])
        rhx = np.concatenate([r * h, x])
        n = np.tanh(P["Wn"] @ rhx + P["bn"])
        h_new = (1 - z) * n + z * h
        return h_new, (h, hx, z, r, rhx, n)

    def step_backward(self, dh_new, cache, grads):
        P = self.params
        h, hx, z, r, rhx, n = cache
        dn = dh_new * (1 - z)
        dz = dh_new * (h - n)
        dh = dh_new * z
        dn_pre = dn * (1 - n ** 2)
        grads["Wn"] += np.outer(dn_pre, rhx)
        grads["bn"] += dn_pre
        drhx = P["Wn"].T @ dn_pre
        d_rh = drhx[:self.H]
        dh += d_rh * r
        dr = d_rh * h
        dz_pre = dz * z * (1 - z)
        dr_pre = dr * r * (1 - r)
        grads["Wz"] += np.outer(dz_pre, hx)
        grads["bz"] += dz_pre
        grads["Wr"] += np.outer(dr_pre, hx)
        grads["br"] += dr_pre
        dhx = P["Wz"].T @ dz_pre + P["Wr"].T @ dr_pre
        dh += dhx[-self.H:]
        return dh

    def loss_and_backward(self, inputs, targets, h0):
        P = self.params
        h = h0
        caches, probs = [], []
        loss = 0.0
        for t in range(len(inputs)):
            x = np.zeros(self.X)
            x[inputs[t]] = 1
            h, cache = self.step_forward(x, h)
            caches.append((cache, h))
            s = P["Wy"] @ h + P["by"]
            q = np.exp(s - s.max())
            q = q / q.sum()
            probs.append(q)
            loss += -np.log(q[targets[t]])
        grads = {k: np.zeros_like(v) for k, v in P.items()}
        dh_next = np.zeros(self.H)
        for t in reversed(range(len(inputs))):
            cache, h_t = caches[t]
            ds = probs[t].copy()
            ds[targets[t]] -= 1
            grads["Wy"] += np.outer(ds, h_t)
            grads["by"] += ds
            dh_total = P["Wy"].T @ ds + dh_next
            dh_next = self.step_backward(dh_total, cache, grads)
        return loss, grads, h


def loss_and_grads(params, inputs, targets, state):
    return GRU(params).loss_and_backward(inputs, targets, np.asarray(state, dtype=float))
