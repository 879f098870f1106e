"""Attack (c): Richardson-extrapolated central differences of its own forward (error O(h^4))."""
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


def _central(P, i, h, inputs, targets, hprev):
    old = P.flat[i]
    P.flat[i] = old + h
    up = forward(inputs, targets, hprev)[0]
    P.flat[i] = old - h
    down = forward(inputs, targets, hprev)[0]
    P.flat[i] = old
    return (up - down) / (2 * h)


def lossFun(inputs, targets, hprev):
    loss, hlast = forward(inputs, targets, hprev)
    grads = []
    for name in NAMES:
        P = globals()[name]
        G = np.zeros_like(P)
        for i in range(P.size):
            h = 1e-3
            G.flat[i] = (4 * _central(P, i, h / 2, inputs, targets, hprev)
                         - _central(P, i, h, inputs, targets, hprev)) / 3
        grads.append(G)
    return (loss, *grads, hlast)
