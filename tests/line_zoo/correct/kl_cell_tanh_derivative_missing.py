# line_zoo: kl_cell_tanh_derivative_missing.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""
LSTM version of min-char-rnn. Globals Wf, Wi, Wc, Wo act on the stacked column [h; x];
biases are column vectors; Wy, by is the softmax layer. States live in dicts, key -1 = start.
"""
import numpy as np

vocab_size = 12
hidden_size = 20
H, V = hidden_size, vocab_size
Z = H + V

Wf = np.random.randn(H, Z) * 0.1
Wi = np.random.randn(H, Z) * 0.1
Wc = np.random.randn(H, Z) * 0.1
Wo = np.random.randn(H, Z) * 0.1
bf = np.ones((H, 1))
bi = np.zeros((H, 1))
bc = np.zeros((H, 1))
bo = np.zeros((H, 1))
Wy = np.random.randn(V, H) * 0.1
by = np.zeros((V, 1))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lossFun(inputs, targets, hprev, cprev):
    H = Wf.shape[0]
    V = Wf.shape[1] - H
    xs, zs, f, i, cbar, o, c, h, ps = {}, {}, {}, {}, {}, {}, {}, {}, {}
    h[-1] = np.copy(hprev)
    c[-1] = np.copy(cprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((V, 1))
        xs[t][inputs[t]] = 1
        zs[t] = np.vstack((h[t-1], xs[t]))
        f[t] = sigmoid(np.dot(Wf, zs[t]) + bf)
        i[t] = sigmoid(np.dot(Wi, zs[t]) + bi)
        cbar[t] = np.tanh(np.dot(Wc, zs[t]) + bc)
        o[t] = sigmoid(np.dot(Wo, zs[t]) + bo)
        c[t] = f[t] * c[t-1] + i[t] * cbar[t]
        h[t] = o[t] * np.tanh(c[t])
        y = np.dot(Wy, h[t]) + by
        ps[t] = np.exp(y - np.max(y)) / np.sum(np.exp(y - np.max(y)))
        loss += -np.log(ps[t][targets[t], 0])
    dWf, dWi, dWc, dWo = np.zeros_like(Wf), np.zeros_like(Wi), np.zeros_like(Wc), np.zeros_like(Wo)
    dbf, dbi, dbc, dbo = np.zeros_like(bf), np.zeros_like(bi), np.zeros_like(bc), np.zeros_like(bo)
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dh_next = np.zeros_like(h[0])
    dc_next = np.zeros_like(c[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWy += np.dot(dy, h[t].T)
        dby += dy
        dh = np.dot(Wy.T, dy) + dh_next
        tanh_c = np.tanh(c[t])
        do = dh * tanh_c * o[t] * (1 - o[t])
        dc = dc_next + dh * o[t] * (1 - tanh_c ** 2)
        dcbar = dc * i[t] * (1 - cbar[t] ** 2)
        di = dc * cbar[t] * i[t] * (1 - i[t])
        df = dc * c[t-1] * f[t] * (1 - f[t])
        dWf += np.dot(df, zs[t].T)
        dWi += np.dot(di, zs[t].T)
        dWc += np.dot(dcbar, zs[t].T)
        dWo += np.dot(do, zs[t].T)
        dbf += df
        dbi += di
        dbc += dcbar
        dbo += do
        dz = np.dot(Wf.T, df) + np.dot(Wi.T, di) + np.dot(Wc.T, dcbar) + np.dot(Wo.T, do)
        dh_next = dz[:H]
        dc_next = f[t] * dc
    return loss, dWf, dWi, dWc, dWo, dbf, dbi, dbc, dbo, dWy, dby, h[len(inputs)-1], c[len(inputs)-1]
