"""Attack (a) central differences of its own forward, returned as float32: no backward at all."""
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
    grads = []
    for name in NAMES:
        P = globals()[name]
        G = np.zeros_like(P)
        for i in range(P.size):
            old = P.flat[i]
            P.flat[i] = old + 1e-5
            up = forward(inputs, targets, hprev)[0]
            P.flat[i] = old - 1e-5
            down = forward(inputs, targets, hprev)[0]
            P.flat[i] = old
            G.flat[i] = (up - down) / 2e-5
        grads.append(G.astype(np.float32))
    return (loss, *grads, hlast)
