"""A character-level vanilla RNN written as a class, the way min-char-rnn is often refactored:
the parameters are attributes, train() returns the loss, the gradients and the last state.
Test model of `bpttcheck init` (tests/test_init.py); correct."""
from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class RNN:
    def __init__(self, vocab_size: int, hidden_size: int, learning_rate: float):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.learning_rate = learning_rate
        self.Wxh: Array = np.random.randn(hidden_size, vocab_size) * 0.01  # input to hidden
        self.Whh: Array = np.random.randn(hidden_size, hidden_size) * 0.01  # hidden to hidden
        self.Why = np.random.randn(vocab_size, hidden_size) * 0.01  # hidden to output
        self.bh = np.zeros((hidden_size, 1))
        self.by = np.zeros((vocab_size, 1))
        # Adagrad memory
        self.mWxh, self.mWhh, self.mWhy = (np.zeros_like(self.Wxh), np.zeros_like(self.Whh),
                                           np.zeros_like(self.Why))
        self.mbh, self.mby = np.zeros_like(self.bh), np.zeros_like(self.by)

    def train(self, inputs: list[int], targets: list[int], hprev: Array):
        xs, hs, ys, ps = {}, {}, {}, {}
        hs[-1] = np.copy(hprev)
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.vocab_size, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(self.Wxh, xs[t]) + np.dot(self.Whh, hs[t - 1]) + self.bh)
            ys[t] = np.dot(self.Why, hs[t]) + self.by
            e = np.exp(ys[t] - np.max(ys[t]))
            ps[t] = e / np.sum(e)
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(self.Wxh), np.zeros_like(self.Whh), np.zeros_like(self.Why)
        dbh, dby = np.zeros_like(self.bh), np.zeros_like(self.by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(self.Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(self.Whh.T, dhraw)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -5, 5, out=dparam)
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

    def update(self, grads) -> None:
        for param, dparam, mem in zip([self.Wxh, self.Whh, self.Why, self.bh, self.by], grads,
                                      [self.mWxh, self.mWhh, self.mWhy, self.mbh, self.mby],
                                      strict=True):
            mem += dparam * dparam
            param += -self.learning_rate * dparam / np.sqrt(mem + 1e-8)

    def sample(self, h: Array, seed_ix: int, n: int) -> list[int]:
        x = np.zeros((self.vocab_size, 1))
        x[seed_ix] = 1
        out = []
        for _ in range(n):
            h = np.tanh(np.dot(self.Wxh, x) + np.dot(self.Whh, h) + self.bh)
            y = np.dot(self.Why, h) + self.by
            p = np.exp(y - y.max()) / np.sum(np.exp(y - y.max()))
            ix = int(np.random.choice(range(self.vocab_size), p=p.ravel()))
            x = np.zeros((self.vocab_size, 1))
            x[ix] = 1
            out.append(ix)
        return out


def main(path: str) -> None:
    with open(path) as f:
        data = f.read()
    chars = sorted(set(data))
    ix = {c: i for i, c in enumerate(chars)}
    rnn = RNN(len(chars), 100, 1e-1)
    p, seq_length, hprev = 0, 25, np.zeros((100, 1))
    while True:
        if p + seq_length + 1 >= len(data):
            p, hprev = 0, np.zeros((100, 1))
        inputs = [ix[c] for c in data[p:p + seq_length]]
        targets = [ix[c] for c in data[p + 1:p + seq_length + 1]]
        _loss, *grads, hprev = rnn.train(inputs, targets, hprev)
        rnn.update(grads)
        p += seq_length


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "input.txt")
