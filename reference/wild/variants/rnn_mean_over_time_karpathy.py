# bpttcheck-expect: pass; note loss.mean
# bpttcheck-style: karpathy
# bpttcheck-arch: rnn
# bpttcheck-variant: loss averaged over the T steps, every output gradient divided by T to match
"""
min-char-rnn whose loss is the mean cross-entropy per character (so it does not grow with
seq_length); dy is divided by len(inputs), which makes every gradient that of the mean loss.
"""
import numpy as np

vocab_size = 12
hidden_size = 20
seq_length = 16
learning_rate = 1e-1

Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))


def lossFun(inputs, targets, hprev):
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    n = len(inputs)
    loss = 0
    for t in range(n):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t] - np.max(ys[t])) / np.sum(np.exp(ys[t] - np.max(ys[t])))
        loss += -np.log(ps[t][targets[t], 0])
    loss /= n
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(n)):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dy /= n
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[n - 1]


if __name__ == "__main__":
    data = "the mean of the loss. " * 30
    chars = sorted(set(data))
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    params = [Wxh, Whh, Why, bh, by]
    mems = [np.zeros_like(q) for q in params]
    hprev = np.zeros((hidden_size, 1))
    p = 0
    for it in range(300):
        if p + seq_length + 1 >= len(data):
            hprev = np.zeros((hidden_size, 1))
            p = 0
        inputs = [char_to_ix[ch] for ch in data[p:p + seq_length]]
        targets = [char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]
        loss, *grads, hprev = lossFun(inputs, targets, hprev)
        for q, dq, m in zip(params, grads, mems):
            m += dq * dq
            q += -learning_rate * dq / np.sqrt(m + 1e-8)
        p += seq_length
    print("mean loss %.3f" % loss)
