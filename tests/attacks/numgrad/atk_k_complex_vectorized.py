"""Attack (d) and (e) together: the complex step for every parameter at once, one batched
complex forward with a perturbation axis."""
import numpy as np

hidden_size, vocab_size = 4, 5
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))
NAMES = ("Wxh", "Whh", "Why", "bh", "by")



def lossFun(inputs, targets, hprev):
    params = [globals()[n] for n in NAMES]
    flat = np.concatenate([p.ravel() for p in params])
    n = flat.size
    batch = flat[None, :] + 1e-30j * np.eye(n + 1, n)   # the last row: no step, the loss
    cut = np.cumsum([0] + [p.size for p in params])
    W = [batch[:, cut[k]:cut[k + 1]].reshape(n + 1, *params[k].shape) for k in range(5)]
    hb = np.repeat(hprev[None], n + 1, axis=0).astype(complex)
    losses = np.zeros(n + 1, dtype=complex)
    for t in range(len(inputs)):
        hb = np.tanh(W[0][:, :, inputs[t]:inputs[t] + 1] + W[1] @ hb + W[3])
        yb = W[2] @ hb + W[4]
        yb = yb - yb.real.max(axis=1, keepdims=True)
        losses -= yb[:, targets[t], 0] - np.log(np.exp(yb).sum(axis=(1, 2)))
    G = losses[:n].imag / 1e-30
    grads = [G[cut[k]:cut[k + 1]].reshape(params[k].shape) for k in range(5)]
    return (losses[n].real, *grads, hb[n].real)
