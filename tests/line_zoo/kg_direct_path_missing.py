# line_zoo: kg_direct_path_missing.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""
GRU in the min-char-rnn style (globals + lossFun). Update rule as in Cho et al.:
    z = sigmoid(Wz [h; x] + bz),  r = sigmoid(Wr [h; x] + br)
    hc = tanh(Wh [r*h; x] + bh),  h_new = z * hc + (1 - z) * h
"""
import numpy as np

vocab_size = 10
hidden_size = 16
N_H, N_X = hidden_size, vocab_size

Wz = np.random.randn(N_H, N_H + N_X) * 0.1
Wr = np.random.randn(N_H, N_H + N_X) * 0.1
Wh = np.random.randn(N_H, N_H + N_X) * 0.1
Wy = np.random.randn(N_X, N_H) * 0.1
bz = np.zeros((N_H, 1))
br = np.zeros((N_H, 1))
bh = np.zeros((N_H, 1))
by = np.zeros((N_X, 1))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lossFun(inputs, targets, hprev):
    n_h = Wz.shape[0]
    n_x = Wz.shape[1] - n_h
    xs, hs, zs, rs, hcs, vs, us, ps = {}, {}, {}, {}, {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((n_x, 1))
        xs[t][inputs[t]] = 1
        vs[t] = np.vstack((hs[t-1], xs[t]))
        zs[t] = sigmoid(np.dot(Wz, vs[t]) + bz)
        rs[t] = sigmoid(np.dot(Wr, vs[t]) + br)
        us[t] = np.vstack((rs[t] * hs[t-1], xs[t]))
        hcs[t] = np.tanh(np.dot(Wh, us[t]) + bh)
        hs[t] = zs[t] * hcs[t] + (1 - zs[t]) * hs[t-1]
        y = np.dot(Wy, hs[t]) + by
        ps[t] = np.exp(y - np.max(y)) / np.sum(np.exp(y - np.max(y)))
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
        dhc = dh * zs[t] * (1 - hcs[t] ** 2)
        dz = dh * (hcs[t] - hs[t-1]) * zs[t] * (1 - zs[t])
        dWh += np.dot(dhc, us[t].T)
        dbh += dhc
        du = np.dot(Wh.T, dhc)
        dr = du[:n_h] * hs[t-1] * rs[t] * (1 - rs[t])
        dWz += np.dot(dz, vs[t].T)
        dbz += dz
        dWr += np.dot(dr, vs[t].T)
        dbr += dr
        dv = np.dot(Wz.T, dz) + np.dot(Wr.T, dr)
        dhnext = du[:n_h] * rs[t] + dv[:n_h]
    return loss, dWz, dWr, dWh, dbz, dbr, dbh, dWy, dby, hs[len(inputs)-1]
