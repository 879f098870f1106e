"""A GRU language model as a class with a forward/backward pair: forward(inputs, targets, h0)
returns (loss, last h) and keeps a cache, backward() returns the gradients in a fixed order.
Gates on [h; x], reset before the recurrent product, h' = (1 - z) * n + z * h; Y = vocabulary.
Test model of `bpttcheck init` (tests/test_init.py); correct."""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class GRU:
    def __init__(self, vocab_size, hidden_size, scale=0.1):
        H, X = hidden_size, vocab_size
        self.Wz = np.random.randn(H, H + X) * scale
        self.Wr = np.random.randn(H, H + X) * scale
        self.Wh = np.random.randn(H, H + X) * scale
        self.bz = np.zeros(H)
        self.br = np.zeros(H)
        self.bh = np.zeros(H)
        self.Wy = np.random.randn(X, H) * scale
        self.by = np.zeros(X)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size

    def forward(self, inputs, targets, h0):
        H = self.hidden_size
        hs, cache, loss = [np.array(h0, dtype=float)], [], 0.0
        for t, ix in enumerate(inputs):
            x = np.zeros(self.vocab_size)
            x[ix] = 1.0
            h = hs[-1]
            v = np.concatenate([h, x])
            z = sigmoid(self.Wz @ v + self.bz)
            r = sigmoid(self.Wr @ v + self.br)
            u = np.concatenate([r * h, x])
            n = np.tanh(self.Wh @ u + self.bh)
            h_new = (1 - z) * n + z * h
            s = self.Wy @ h_new + self.by
            p = np.exp(s - s.max())
            p /= p.sum()
            loss -= np.log(p[targets[t]])
            cache.append((v, u, z, r, n, h, h_new, p, targets[t]))
            hs.append(h_new)
        self.cache, self.H = cache, H
        return loss, hs[-1]

    def backward(self):
        H = self.H
        dWz, dWr, dWh = np.zeros_like(self.Wz), np.zeros_like(self.Wr), np.zeros_like(self.Wh)
        dbz, dbr, dbh = np.zeros_like(self.bz), np.zeros_like(self.br), np.zeros_like(self.bh)
        dWy, dby = np.zeros_like(self.Wy), np.zeros_like(self.by)
        dh_next = np.zeros(H)
        for v, u, z, r, n, h, h_new, p, y in reversed(self.cache):
            ds = p.copy()
            ds[y] -= 1.0
            dWy += np.outer(ds, h_new)
            dby += ds
            dh = self.Wy.T @ ds + dh_next
            dn = dh * (1 - z)
            dz = dh * (h - n)
            dh_prev = dh * z
            dan = dn * (1 - n ** 2)
            dWh += np.outer(dan, u)
            dbh += dan
            du = self.Wh.T @ dan
            dr = du[:H] * h
            dh_prev += du[:H] * r
            daz = dz * z * (1 - z)
            dar = dr * r * (1 - r)
            dWz += np.outer(daz, v)
            dbz += daz
            dWr += np.outer(dar, v)
            dbr += dar
            dh_prev += (self.Wz.T @ daz)[:H] + (self.Wr.T @ dar)[:H]
            dh_next = dh_prev
        return dWz, dWr, dWh, dbz, dbr, dbh, dWy, dby
