"""Attack (d), hidden: the complex step with the trace switched off around it (someone who read
bpttcheck's source) and back on after."""
import sys
import numpy as np

hidden_size, vocab_size = 4, 5
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))
NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def forward(inputs, targets, hprev):
    h, loss = np.copy(hprev), 0.0
    for t in range(len(inputs)):
        x = np.zeros((vocab_size, 1))
        x[inputs[t]] = 1
        h = np.tanh(Wxh @ x + Whh @ h + bh)
        y = Why @ h + by
        e = np.exp(y - np.max(y))
        loss += -np.log((e / np.sum(e))[targets[t], 0])
    return loss, h


def lossFun(inputs, targets, hprev):
    loss, hlast = forward(inputs, targets, hprev)
    g = globals()
    saved = sys.gettrace()
    sys.settrace(None)
    grads = []
    for name in NAMES:
        P = g[name]
        G = np.zeros_like(P)
        for i in range(P.size):
            Pc = P.astype(complex)
            Pc.flat[i] += 1e-30j
            g[name] = Pc
            try:
                G.flat[i] = forward(inputs, targets, hprev)[0].imag / 1e-30
            finally:
                g[name] = P
        grads.append(G)
    sys.settrace(saved)
    return (loss, *grads, hlast)
