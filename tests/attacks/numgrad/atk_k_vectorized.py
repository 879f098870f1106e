"""Attack (e): finite differences as ONE batched forward with an extra perturbation axis: every
parameter moved by +-h at once, 2P copies of the model run side by side."""
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
    params = [globals()[n] for n in NAMES]
    flat = np.concatenate([p.ravel() for p in params])
    n, h = flat.size, 1e-5
    batch = np.repeat(flat[None, :], 2 * n, axis=0) + np.vstack([np.eye(n), -np.eye(n)]) * h
    cut = np.cumsum([0] + [p.size for p in params])
    W = [batch[:, cut[k]:cut[k + 1]].reshape(2 * n, *params[k].shape) for k in range(5)]
    hb = np.repeat(hprev[None], 2 * n, axis=0)
    losses = np.zeros(2 * n)
    for t in range(len(inputs)):
        hb = np.tanh(W[0][:, :, inputs[t]:inputs[t] + 1] + W[1] @ hb + W[3])
        yb = W[2] @ hb + W[4]
        yb = yb - yb.max(axis=1, keepdims=True)
        losses -= yb[:, targets[t], 0] - np.log(np.exp(yb).sum(axis=(1, 2)))
    G = (losses[:n] - losses[n:]) / (2 * h)
    grads = [G[cut[k]:cut[k + 1]].reshape(params[k].shape) for k in range(5)]
    return (loss, *grads, hlast)
