# bpttcheck-expect: unmatched
# arch: rnn
# groups: bh
# bug: lossFun backward: dbh accumulates dh, the gradient after the tanh, not dhraw (no catalogue entry: the line is located and repaired by value)
"""
Minimal character-level vanilla RNN, laid out like Andrej Karpathy's min-char-rnn.py
(BSD licence): read input.txt, build the vocabulary, define the parameters as globals,
lossFun / sample, then train forever with Adagrad. Ported to Python 3; the softmax subtracts
the max logit. As in the original, lossFun clips every gradient to [-5, 5].
"""
import numpy as np

# data I/O (input.txt is read from the current directory, as in the original)
data = open('input.txt', 'r').read()
chars = sorted(set(data))
data_size, vocab_size = len(data), len(chars)
print('data has %d characters, %d unique.' % (data_size, vocab_size))
char_to_ix = {ch: i for i, ch in enumerate(chars)}
ix_to_char = {i: ch for i, ch in enumerate(chars)}

# hyperparameters
hidden_size = 100   # neurons in the hidden layer
seq_length = 25     # time steps unrolled per update
learning_rate = 1e-1

# model parameters
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01   # (H, X) input -> hidden
Whh = np.random.randn(hidden_size, hidden_size) * 0.01  # (H, H) hidden -> hidden
Why = np.random.randn(vocab_size, hidden_size) * 0.01   # (Y, H) hidden -> output
bh = np.zeros((hidden_size, 1))                          # (H, 1)
by = np.zeros((vocab_size, 1))                           # (Y, 1)


def lossFun(inputs, targets, hprev):
    """
    inputs, targets: lists of character indices; hprev: (H, 1) initial hidden state.
    Returns the loss, the gradients of the five parameters and the last hidden state.
    hs[t] is the state after step t; hs[-1] holds hprev (a dict key, not list wraparound).
    """
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))                                  # (X, 1) one-hot
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t-1]) + bh)   # (H, 1)
        ys[t] = np.dot(Why, hs[t]) + by                                    # (Y, 1) logits
        e = np.exp(ys[t] - np.max(ys[t]))                                  # (Y, 1)
        ps[t] = e / np.sum(e)                                              # (Y, 1) probabilities
        loss += -np.log(ps[t][targets[t], 0])                              # cross-entropy
    # backward pass
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])                       # (Y, 1)
        dy[targets[t]] -= 1                       # p - onehot(target)
        dWhy += np.dot(dy, hs[t].T)               # (Y, H)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext           # (H, 1)
        dhraw = (1 - hs[t] * hs[t]) * dh          # (H, 1) through tanh
        dbh += dh
        dWxh += np.dot(dhraw, xs[t].T)            # (H, X)
        dWhh += np.dot(dhraw, hs[t-1].T)          # (H, H)
        dhnext = np.dot(Whh.T, dhraw)             # (H, 1)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)        # tame exploding gradients
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1]


def sample(h, seed_ix, n):
    """Draw n character indices from the model, starting from state h and token seed_ix."""
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    ixes = []
    for t in range(n):
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        e = np.exp(y - np.max(y))
        p = e / np.sum(e)
        ix = np.random.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        ixes.append(ix)
    return ixes


n, p = 0, 0
mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
mbh, mby = np.zeros_like(bh), np.zeros_like(by)     # Adagrad memory
smooth_loss = -np.log(1.0 / vocab_size) * seq_length  # loss at iteration 0
while True:
    # walk through the data left to right in chunks of seq_length
    if p + seq_length + 1 >= len(data) or n == 0:
        hprev = np.zeros((hidden_size, 1))   # reset the memory
        p = 0
    inputs = [char_to_ix[ch] for ch in data[p:p+seq_length]]
    targets = [char_to_ix[ch] for ch in data[p+1:p+seq_length+1]]

    # show a sample now and then
    if n % 100 == 0:
        sample_ix = sample(hprev, inputs[0], 200)
        txt = ''.join(ix_to_char[ix] for ix in sample_ix)
        print('----\n %s \n----' % (txt, ))

    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
    smooth_loss = smooth_loss * 0.999 + loss * 0.001
    if n % 100 == 0:
        print('iter %d, loss %f' % (n, smooth_loss))

    # Adagrad update
    for param, dparam, mem in zip([Wxh, Whh, Why, bh, by],
                                  [dWxh, dWhh, dWhy, dbh, dby],
                                  [mWxh, mWhh, mWhy, mbh, mby]):
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + 1e-8)

    p += seq_length
    n += 1
