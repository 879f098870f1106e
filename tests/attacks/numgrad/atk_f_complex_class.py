"""Attack (d) in a class: the complex step with the parameters kept as attributes of an
object (no complex array among the caller's locals or the module's globals)."""
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
        self.xs, self.hs, self.ps = [], [np.array(h0, dtype=self.W_xh.dtype)], []
        loss = 0.0
        for t, (ix, tx) in enumerate(zip(inputs, targets)):
            x = np.zeros(self.vocab_size, dtype=self.W_xh.dtype)                                  # (X,)
            x[ix] = 1.0
            h = np.tanh(self.W_xh @ x + self.W_hh @ self.hs[t] + self.b_h)  # (H,)
            p = self.softmax(self.W_hy @ h + self.b_y)                      # (Y,)
            loss -= np.log(p[tx])
            self.xs.append(x)
            self.hs.append(h)
            self.ps.append(p)
        return loss



def loss_and_grads(params, inputs, targets, state):
    net = CharRNN(params)
    loss = net.forward(inputs, targets, state)
    grads = {}
    for k, v in params.items():
        G = np.zeros_like(v)
        for i in range(v.size):
            stepped = CharRNN({n: (a.astype(complex) if n == k else a.astype(complex))
                               for n, a in params.items()})
            getattr(stepped, {"W_xh": "W_xh", "W_hh": "W_hh", "W_hy": "W_hy", "b_h": "b_h",
                              "b_y": "b_y"}[k]).flat[i] += 1e-30j
            G.flat[i] = stepped.forward(inputs, targets, state).imag / 1e-30
        grads[k] = G
    return float(loss), grads, net.hs[-1]
