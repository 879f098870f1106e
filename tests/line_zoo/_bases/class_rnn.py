"""A vanilla RNN as a class with forward() and backward() (column vectors)."""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


class SimpleRNN:
    def __init__(self, Wxh, Whh, Why, bh, by):
        self.Wxh, self.Whh, self.Why = Wxh, Whh, Why
        self.bh, self.by = bh.reshape(-1, 1), by.reshape(-1, 1)

    def forward(self, inputs, h0):
        self.inputs = inputs
        self.xs, self.hs, self.ps = {}, {}, {}
        self.hs[-1] = h0.reshape(-1, 1).copy()
        n_in = self.Wxh.shape[1]
        for t, ix in enumerate(inputs):
            self.xs[t] = np.zeros((n_in, 1))
            self.xs[t][ix] = 1.0
            self.hs[t] = np.tanh(self.Wxh @ self.xs[t] + self.Whh @ self.hs[t - 1] + self.bh)
            out = self.Why @ self.hs[t] + self.by
            e = np.exp(out - out.max())
            self.ps[t] = e / e.sum()
        return self.ps

    def loss(self, targets):
        return -sum(np.log(self.ps[t][y, 0]) for t, y in enumerate(targets))

    def backward(self, targets):
        dWxh, dWhh, dWhy = np.zeros_like(self.Wxh), np.zeros_like(self.Whh), np.zeros_like(self.Why)
        dbh, dby = np.zeros_like(self.bh), np.zeros_like(self.by)
        dh_next = np.zeros_like(self.hs[0])
        for t in reversed(range(len(self.inputs))):
            dout = self.ps[t].copy()
            dout[targets[t]] -= 1.0
            dWhy += dout @ self.hs[t].T
            dby += dout
            dh = self.Why.T @ dout + dh_next
            dh_raw = (1.0 - self.hs[t] ** 2) * dh
            dbh += dh_raw
            dWxh += dh_raw @ self.xs[t].T
            dWhh += dh_raw @ self.hs[t - 1].T
            dh_next = self.Whh.T @ dh_raw
        return dWxh, dWhh, dWhy, dbh.ravel(), dby.ravel()


def loss_and_grads(params, inputs, targets, state):
    net = SimpleRNN(params["Wxh"], params["Whh"], params["Why"], params["bh"], params["by"])
    net.forward(inputs, state)
    loss = net.loss(targets)
    dWxh, dWhh, dWhy, dbh, dby = net.backward(targets)
    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, net.hs[len(inputs) - 1].ravel()
