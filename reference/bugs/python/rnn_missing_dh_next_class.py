# bpttcheck-expect: rnn.missing-dh-next
# arch: rnn
# groups: Wxh, Whh, bh
# bug: CharRNN.backward: dh ignores dh_next (the gradient arriving from later steps)
"""
Vanilla tanh RNN written as a small class (parameters W_xh, W_hh, W_hy, b_h, b_y).
loss_and_grads() is a thin functional wrapper that builds the object and runs one pass.
"""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


class CharRNN:
    def __init__(self, params):
        self.W_xh = params["W_xh"]     # (H, X)
        self.W_hh = params["W_hh"]     # (H, H)
        self.W_hy = params["W_hy"]     # (Y, H)
        self.b_h = params["b_h"]       # (H,)
        self.b_y = params["b_y"]       # (Y,)
        self.hidden_size, self.vocab_size = self.W_xh.shape

    @staticmethod
    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    def forward(self, inputs, targets, h0):
        self.inputs, self.targets = inputs, targets
        self.xs, self.hs, self.ps = [], [np.array(h0, dtype=float)], []
        loss = 0.0
        for t, (ix, tx) in enumerate(zip(inputs, targets)):
            x = np.zeros(self.vocab_size)                                  # (X,)
            x[ix] = 1.0
            h = np.tanh(self.W_xh @ x + self.W_hh @ self.hs[t] + self.b_h)  # (H,)
            p = self.softmax(self.W_hy @ h + self.b_y)                      # (Y,)
            loss -= np.log(p[tx])
            self.xs.append(x)
            self.hs.append(h)
            self.ps.append(p)
        return loss

    def backward(self):
        g = {"W_xh": np.zeros_like(self.W_xh), "W_hh": np.zeros_like(self.W_hh),
             "W_hy": np.zeros_like(self.W_hy), "b_h": np.zeros_like(self.b_h),
             "b_y": np.zeros_like(self.b_y)}
        dh_next = np.zeros(self.hidden_size)
        for t in reversed(range(len(self.inputs))):
            h, h_prev = self.hs[t + 1], self.hs[t]
            dz = self.ps[t].copy()                        # (Y,)
            dz[self.targets[t]] -= 1.0
            g["W_hy"] += np.outer(dz, h)                  # (Y, H)
            g["b_y"] += dz
            dh = self.W_hy.T @ dz                         # (H,)
            da = (1.0 - h * h) * dh                       # (H,)
            g["W_xh"] += np.outer(da, self.xs[t])         # (H, X)
            g["W_hh"] += np.outer(da, h_prev)             # (H, H)
            g["b_h"] += da
            dh_next = self.W_hh.T @ da
        return g


def loss_and_grads(params, inputs, targets, state):
    net = CharRNN(params)
    loss = net.forward(inputs, targets, state)
    grads = net.backward()
    return float(loss), grads, net.hs[-1]
