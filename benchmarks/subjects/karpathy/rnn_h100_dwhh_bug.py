# bpttcheck-expect: rnn.dwhh-uses-current-h
# arch: rnn
"""
Benchmark subject: a Karpathy-size character RNN (H=100, vocabulary 65, T=25) written the way
min-char-rnn.py is: module-level data and parameters, lossFun(inputs, targets, hprev) with
dict-indexed states, gradients clipped to [-5, 5], an Adagrad training loop.

Unlike the original, the training loop sits under `if __name__ == "__main__":` so the plain-script
baseline of benchmarks/bench.py can import the module and call lossFun once.
input.txt beside this file has exactly 65 distinct characters (the tiny-shakespeare set).
"""
import numpy as np

text = open("input.txt", "r").read()
vocab = sorted(set(text))
vocab_size = len(vocab)                      # 65
stoi = {c: i for i, c in enumerate(vocab)}
itos = {i: c for i, c in enumerate(vocab)}

hidden_size = 100
seq_length = 25
learning_rate = 1e-1

Wxh = np.random.randn(hidden_size, vocab_size) * 0.01    # (H, X)
Whh = np.random.randn(hidden_size, hidden_size) * 0.01   # (H, H)
Why = np.random.randn(vocab_size, hidden_size) * 0.01    # (Y, H)
bh = np.zeros((hidden_size, 1))                           # (H, 1)
by = np.zeros((vocab_size, 1))                            # (Y, 1)


def lossFun(inputs, targets, hprev):
    """Loss summed over the sequence, the five gradients and the last hidden state.
    hs[t] is the state produced by step t; hs[-1] is hprev (a dict key)."""
    xs, hs, ps = {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        logits = Why @ hs[t] + by
        e = np.exp(logits - logits.max())
        ps[t] = e / e.sum()
        loss += -np.log(ps[t][targets[t], 0])

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] ** 2) * dh
        dbh += dhraw
        dWxh += dhraw @ xs[t].T
        dWhh += dhraw @ hs[t].T         # planted bug: current state instead of hs[t - 1]
        dhnext = Whh.T @ dhraw
    for dparam in (dWxh, dWhh, dWhy, dbh, dby):
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def sample(h, seed_ix, n):
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    out = []
    for _ in range(n):
        h = np.tanh(Wxh @ x + Whh @ h + bh)
        logits = Why @ h + by
        p = np.exp(logits - logits.max())
        ix = np.random.choice(vocab_size, p=(p / p.sum()).ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        out.append(ix)
    return out


if __name__ == "__main__":
    n, pos = 0, 0
    mem = [np.zeros_like(p) for p in (Wxh, Whh, Why, bh, by)]
    smooth_loss = -np.log(1.0 / vocab_size) * seq_length
    while True:
        if pos + seq_length + 1 >= len(text) or n == 0:
            hprev = np.zeros((hidden_size, 1))
            pos = 0
        inputs = [stoi[c] for c in text[pos:pos + seq_length]]
        targets = [stoi[c] for c in text[pos + 1:pos + seq_length + 1]]
        if n % 100 == 0:
            print("".join(itos[i] for i in sample(hprev, inputs[0], 200)))
        loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        if n % 100 == 0:
            print("iter %d, loss %f" % (n, smooth_loss))
        for param, dparam, m in zip((Wxh, Whh, Why, bh, by), (dWxh, dWhh, dWhy, dbh, dby), mem):
            m += dparam * dparam
            param += -learning_rate * dparam / np.sqrt(m + 1e-8)
        pos += seq_length
        n += 1
