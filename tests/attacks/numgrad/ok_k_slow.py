"""Control: a correct hand-written backward, slow: a Python loop over the hidden units."""
import numpy as np

hidden_size, vocab_size = 4, 5
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))


def lossFun(inputs, targets, hprev):
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        y = Why @ hs[t] + by
        e = np.exp(y - np.max(y))
        ps[t] = e / np.sum(e)
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hprev)
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        dhraw = np.zeros_like(dh)
        for j in range(hidden_size):           # one hidden unit at a time
            dhraw[j, 0] = (1 - hs[t][j, 0] ** 2) * dh[j, 0]
            dbh[j, 0] += dhraw[j, 0]
            dWxh[j, :] += dhraw[j, 0] * xs[t][:, 0]
            dWhh[j, :] += dhraw[j, 0] * hs[t - 1][:, 0]
        dhnext = np.zeros_like(dh)
        for j in range(hidden_size):
            dhnext[j, 0] = np.sum(Whh[:, j] * dhraw[:, 0])
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]
