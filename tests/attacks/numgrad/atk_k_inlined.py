"""Attack (f): central differences over an inlined copy of the forward (no named loss
function is ever called for them)."""
import numpy as np

hidden_size, vocab_size = 4, 5
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))
NAMES = ("Wxh", "Whh", "Why", "bh", "by")



def lossFun(inputs, targets, hprev):
    grads, loss, hlast = [], None, None
    for name in (None,) + NAMES:
        P = globals()[name] if name else np.zeros(1)
        G = np.zeros_like(P)
        for i in range(P.size if name else 1):
            vals = []
            for s in ((1e-5, -1e-5) if name else (0.0,)):
                old = P.flat[i]
                P.flat[i] = old + s
                h, L = np.copy(hprev), 0.0
                for t in range(len(inputs)):
                    h = np.tanh(Wxh[:, inputs[t]:inputs[t] + 1] + Whh @ h + bh)
                    y = Why @ h + by
                    L -= y[targets[t], 0] - np.max(y) - np.log(np.sum(np.exp(y - np.max(y))))
                P.flat[i] = old
                vals.append(L)
            if name:
                G.flat[i] = (vals[0] - vals[1]) / 2e-5
            else:
                loss, hlast = vals[0], h
        if name:
            grads.append(G)
    return (loss, *grads, hlast)
