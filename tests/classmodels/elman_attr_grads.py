"""An Elman RNN as a layer-like class: forward(inputs, h0) returns the logits of every step,
backward(dy) takes dL/dlogits and stores the gradients as attributes (self.dU, ...), as in
course code that separates the loss from the network. Names U, W, V, b, c; 1-D vectors.
Test model of `bpttcheck init` (tests/test_init.py); correct."""
import numpy as np


class ElmanRNN:
    def __init__(self, input_dim, hidden_dim, output_dim):
        self.U = np.random.uniform(-0.1, 0.1, (hidden_dim, input_dim))
        self.W = np.random.uniform(-0.1, 0.1, (hidden_dim, hidden_dim))
        self.V = np.random.uniform(-0.1, 0.1, (output_dim, hidden_dim))
        self.b = np.zeros(hidden_dim)
        self.c = np.zeros(output_dim)
        self.input_dim = input_dim

    def forward(self, inputs, h0):
        self.xs, self.hs = [], [np.array(h0, dtype=float)]
        zs = []
        for ix in inputs:
            x = np.zeros(self.input_dim)
            x[ix] = 1.0
            h = np.tanh(self.U @ x + self.W @ self.hs[-1] + self.b)
            self.xs.append(x)
            self.hs.append(h)
            zs.append(self.V @ h + self.c)
        return zs

    def backward(self, dy):
        self.dU, self.dW = np.zeros_like(self.U), np.zeros_like(self.W)
        self.dV, self.db, self.dc = np.zeros_like(self.V), np.zeros_like(self.b), np.zeros_like(self.c)
        dh_next = np.zeros_like(self.b)
        for t in reversed(range(len(dy))):
            self.dV += np.outer(dy[t], self.hs[t + 1])
            self.dc += dy[t]
            dh = self.V.T @ dy[t] + dh_next
            da = (1.0 - self.hs[t + 1] ** 2) * dh
            self.dU += np.outer(da, self.xs[t])
            self.dW += np.outer(da, self.hs[t])
            self.db += da
            dh_next = self.W.T @ da
