"""A character LSTM as a class, min-char-rnn's cousin: one stacked gate matrix W (4H, H+X) on
[h; x], gate blocks i, f, o, g, column vectors, lossFun(self, inputs, targets, hprev, cprev).
Test model of `bpttcheck init` (tests/test_init.py); correct."""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LSTM:
    def __init__(self, input_size, hidden_size, output_size, seed=0):
        rng = np.random.default_rng(seed)
        self.H = hidden_size
        self.W = rng.normal(0.0, 0.1, size=(4 * hidden_size, hidden_size + input_size))
        self.b = np.zeros((4 * hidden_size, 1))
        self.Wy = rng.normal(0.0, 0.1, size=(output_size, hidden_size))
        self.by = np.zeros((output_size, 1))
        self.input_size = input_size

    def lossFun(self, inputs, targets, hprev, cprev):
        H = self.H
        xs, vs, hs, cs, gates, ps = {}, {}, {-1: np.copy(hprev)}, {-1: np.copy(cprev)}, {}, {}
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.input_size, 1))
            xs[t][inputs[t]] = 1.0
            vs[t] = np.vstack((hs[t - 1], xs[t]))
            a = self.W @ vs[t] + self.b
            i = sigmoid(a[:H])
            f = sigmoid(a[H:2 * H])
            o = sigmoid(a[2 * H:3 * H])
            g = np.tanh(a[3 * H:])
            gates[t] = (i, f, o, g)
            cs[t] = f * cs[t - 1] + i * g
            hs[t] = o * np.tanh(cs[t])
            z = self.Wy @ hs[t] + self.by
            e = np.exp(z - z.max())
            ps[t] = e / e.sum()
            loss -= np.log(ps[t][targets[t], 0])
        dW, db = np.zeros_like(self.W), np.zeros_like(self.b)
        dWy, dby = np.zeros_like(self.Wy), np.zeros_like(self.by)
        dh_next, dc_next = np.zeros((H, 1)), np.zeros((H, 1))
        for t in reversed(range(len(inputs))):
            i, f, o, g = gates[t]
            dz = np.copy(ps[t])
            dz[targets[t]] -= 1.0
            dWy += dz @ hs[t].T
            dby += dz
            dh = self.Wy.T @ dz + dh_next
            tc = np.tanh(cs[t])
            do = dh * tc
            dc = dh * o * (1 - tc ** 2) + dc_next
            di, df, dg = dc * g, dc * cs[t - 1], dc * i
            da = np.vstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)))
            dW += da @ vs[t].T
            db += da
            dv = self.W.T @ da
            dh_next = dv[:H]
            dc_next = dc * f
        return loss, dW, db, dWy, dby, hs[len(inputs) - 1], cs[len(inputs) - 1]
