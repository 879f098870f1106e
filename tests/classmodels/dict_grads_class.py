"""A char RNN class whose train_step returns (loss, grads, h) with grads a dict keyed by the
attribute names (W_xh, ...), 1-D vectors. Test model of `bpttcheck init` (tests/test_init.py);
correct."""
import numpy as np


class CharRNN:
    def __init__(self, vocab_size, hidden_size):
        self.W_xh = np.random.randn(hidden_size, vocab_size) * 0.01
        self.W_hh = np.random.randn(hidden_size, hidden_size) * 0.01
        self.W_hy = np.random.randn(vocab_size, hidden_size) * 0.01
        self.b_h = np.zeros(hidden_size)
        self.b_y = np.zeros(vocab_size)

    def train_step(self, inputs, targets, h_prev):
        hs, ps, xs = {-1: h_prev}, {}, {}
        loss = 0.0
        V = self.W_xh.shape[1]
        for t, ix in enumerate(inputs):
            xs[t] = np.eye(V)[ix]
            hs[t] = np.tanh(self.W_xh @ xs[t] + self.W_hh @ hs[t - 1] + self.b_h)
            z = self.W_hy @ hs[t] + self.b_y
            ps[t] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            loss -= np.log(ps[t][targets[t]])
        grads = {k: np.zeros_like(getattr(self, k)) for k in ("W_xh", "W_hh", "W_hy", "b_h", "b_y")}
        dh_next = np.zeros_like(h_prev)
        for t in reversed(range(len(inputs))):
            dz = ps[t].copy()
            dz[targets[t]] -= 1
            grads["W_hy"] += np.outer(dz, hs[t])
            grads["b_y"] += dz
            da = (1 - hs[t] ** 2) * (self.W_hy.T @ dz + dh_next)
            grads["W_xh"] += np.outer(da, xs[t])
            grads["W_hh"] += np.outer(da, hs[t - 1])
            grads["b_h"] += da
            dh_next = self.W_hh.T @ da
        return loss, grads, hs[len(inputs) - 1]
