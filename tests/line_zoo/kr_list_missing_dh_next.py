# line_zoo: kr_list_missing_dh_next.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
# Character RNN, numpy only (my own version of min-char-rnn).
# h_states[0] is the state passed in, h_states[t + 1] the state after reading inputs[t].
import numpy as np

text = open(__file__).read()[:400]
vocab = sorted(set(text))
V = len(vocab)
H = 24

Wxh = np.random.randn(H, V) * 0.01   # input to hidden
Whh = np.random.randn(H, H) * 0.01   # hidden to hidden
Why = np.random.randn(V, H) * 0.01   # hidden to output
bh = np.zeros((H, 1))
by = np.zeros((V, 1))


def softmax(v):
    e = np.exp(v - np.max(v))
    return e / np.sum(e)


def lossFun(inputs, targets, hprev):
    T = len(inputs)
    x_onehot = []
    h_states = [hprev.copy()]
    probs = []
    loss = 0.0
    for t in range(T):
        x = np.zeros((V, 1))
        x[inputs[t]] = 1.0
        x_onehot.append(x)
        h_new = np.tanh(Wxh @ x + Whh @ h_states[t] + bh)
        h_states.append(h_new)
        logits = Why @ h_new + by
        p = softmax(logits)
        probs.append(p)
        loss -= np.log(p[targets[t], 0])

    dWxh = np.zeros_like(Wxh)
    dWhh = np.zeros_like(Whh)
    dWhy = np.zeros_like(Why)
    dbh = np.zeros_like(bh)
    dby = np.zeros_like(by)
    dh_next = np.zeros((H, 1))
    for t in range(T - 1, -1, -1):
        target_vec = np.zeros((V, 1))
        target_vec[targets[t]] = 1.0
        dy = probs[t] - target_vec
        dWhy += dy @ h_states[t + 1].T
        dby += dy
        dh = Why.T @ dy
        dh_raw = dh * (1.0 - h_states[t + 1] ** 2)
        dWxh += dh_raw @ x_onehot[t].T
        dWhh += dh_raw @ h_states[t].T
        dbh += dh_raw
        dh_next = Whh.T @ dh_raw
    return loss, dWxh, dWhh, dWhy, dbh, dby, h_states[-1]


if __name__ == "__main__":
    idx = {c: i for i, c in enumerate(vocab)}
    seq = [idx[c] for c in text]
    h = np.zeros((H, 1))
    for it in range(200):
        loss, *grads, h = lossFun(seq[:20], seq[1:21], h)
        for w, g in zip([Wxh, Whh, Why, bh, by], grads):
            w -= 0.05 * np.clip(g, -5, 5)
        if it % 50 == 0:
            print(it, loss)
