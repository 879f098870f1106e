# bpttcheck-expect: pass
# bpttcheck-style: karpathy
# bpttcheck-arch: gru
# bpttcheck-variant: Karpathy-style GRU globals Wz, Wr, Wh (candidate), bz, br, bh, Wy, by; h = (1 - z) * h~ + z * h_prev
"""
GRU written like min-char-rnn: module globals with column-vector biases and
lossFun(inputs, targets, hprev) -> loss, dWz, dWr, dWh, dbz, dbr, dbh, dWy, dby, h_last.
Here Wh/bh are the CANDIDATE weights (acting on [r * h; x]), not an RNN hidden matrix.
    z = sigmoid(Wz [h; x] + bz)   r = sigmoid(Wr [h; x] + br)
    hc = tanh(Wh [r * h; x] + bh) h' = (1 - z) * hc + z * h
"""
import numpy as np

vocab_size = 12
hidden_size = 8
seq_length = 10
learning_rate = 1e-1

Wz = np.random.randn(hidden_size, hidden_size + vocab_size) * 0.01
Wr = np.random.randn(hidden_size, hidden_size + vocab_size) * 0.01
Wh = np.random.randn(hidden_size, hidden_size + vocab_size) * 0.01
bz = np.zeros((hidden_size, 1))
br = np.zeros((hidden_size, 1))
bh = np.zeros((hidden_size, 1))
Wy = np.random.randn(vocab_size, hidden_size) * 0.01
by = np.zeros((vocab_size, 1))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lossFun(inputs, targets, hprev):
    xs, hs, zs, rs, cs, us, vs, ps = {}, {}, {}, {}, {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    n_h = Wz.shape[0]
    n_x = Wz.shape[1] - n_h
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((n_x, 1))
        xs[t][inputs[t]] = 1
        vs[t] = np.vstack((hs[t - 1], xs[t]))
        zs[t] = sigmoid(np.dot(Wz, vs[t]) + bz)
        rs[t] = sigmoid(np.dot(Wr, vs[t]) + br)
        us[t] = np.vstack((rs[t] * hs[t - 1], xs[t]))
        cs[t] = np.tanh(np.dot(Wh, us[t]) + bh)
        hs[t] = (1 - zs[t]) * cs[t] + zs[t] * hs[t - 1]
        ys = np.dot(Wy, hs[t]) + by
        ps[t] = np.exp(ys - np.max(ys)) / np.sum(np.exp(ys - np.max(ys)))
        loss += -np.log(ps[t][targets[t], 0])
    dWz, dWr, dWh = np.zeros_like(Wz), np.zeros_like(Wr), np.zeros_like(Wh)
    dbz, dbr, dbh = np.zeros_like(bz), np.zeros_like(br), np.zeros_like(bh)
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Wy.T, dy) + dhnext
        dc = dh * (1 - zs[t]) * (1 - cs[t] * cs[t])
        dz = dh * (hs[t - 1] - cs[t]) * zs[t] * (1 - zs[t])
        dWh += np.dot(dc, us[t].T)
        dbh += dc
        du = np.dot(Wh.T, dc)
        dr = du[:n_h] * hs[t - 1] * rs[t] * (1 - rs[t])
        dWz += np.dot(dz, vs[t].T)
        dbz += dz
        dWr += np.dot(dr, vs[t].T)
        dbr += dr
        dv = np.dot(Wz.T, dz) + np.dot(Wr.T, dr)
        dhnext = dh * zs[t] + du[:n_h] * rs[t] + dv[:n_h]
    return loss, dWz, dWr, dWh, dbz, dbr, dbh, dWy, dby, hs[len(inputs) - 1]


if __name__ == "__main__":
    data = "hello gru, hello world. " * 20
    chars = sorted(set(data))
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    n, p = 0, 0
    params = [Wz, Wr, Wh, bz, br, bh, Wy, by]
    mems = [np.zeros_like(q) for q in params]
    hprev = np.zeros((hidden_size, 1))
    while n < 500:
        if p + seq_length + 1 >= len(data):
            hprev = np.zeros((hidden_size, 1))
            p = 0
        inputs = [char_to_ix[ch] for ch in data[p:p + seq_length]]
        targets = [char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]
        loss, *grads, hprev = lossFun(inputs, targets, hprev)
        for param, dparam, mem in zip(params, grads, mems):
            np.clip(dparam, -5, 5, out=dparam)
            mem += dparam * dparam
            param += -learning_rate * dparam / np.sqrt(mem + 1e-8)
        if n % 100 == 0:
            print("iter %d, loss %f" % (n, loss))
        p += seq_length
        n += 1
