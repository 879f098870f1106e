"""Control: a correct hand-written backward written entry by entry, as C would be: a Python
loop over every entry of every gradient at every step (as many scalar steps as finite
differences would take forward passes)."""
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
        Y, H = Why.shape
        dh = np.zeros_like(dhnext)
        for k in range(Y):
            dby[k, 0] += dy[k, 0]
            for j in range(H):
                dWhy[k, j] += dy[k, 0] * hs[t][j, 0]
                dh[j, 0] += Why[k, j] * dy[k, 0]
        dhraw = np.zeros_like(dh)
        for i in range(H):
            dhraw[i, 0] = (1 - hs[t][i, 0] * hs[t][i, 0]) * (dh[i, 0] + dhnext[i, 0])
            dbh[i, 0] += dhraw[i, 0]
            for j in range(vocab_size):
                dWxh[i, j] += dhraw[i, 0] * xs[t][j, 0]
            for j in range(H):
                dWhh[i, j] += dhraw[i, 0] * hs[t - 1][j, 0]
        dhnext = np.zeros_like(dh)
        for j in range(H):
            for i in range(H):
                dhnext[j, 0] += Whh[i, j] * dhraw[i, 0]
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]
