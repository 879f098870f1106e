# bpttcheck-expect: lstm.state-offset
# arch: lstm
"""
reference/python/lstm_karpathy.py with one bug (lstm.state-offset): the backward takes
hs[t-1], cs[t-1] (the previous states) as the current ones in dWy and tanh(c).

Character-level LSTM written in the style of min-char-rnn: parameters are module globals with
column-vector biases, and lossFun(inputs, targets, hprev, cprev) does one forward/backward pass.

Each gate matrix acts on v = [h; x] (hidden part first, length H + X):
    f = sigmoid(Wf v + bf)   i = sigmoid(Wi v + bi)   g = tanh(Wc v + bc)   o = sigmoid(Wo v + bo)
    c' = f * c + i * g       h' = o * tanh(c')        y = Wy h' + by
"""
import numpy as np

vocab_size = 16     # X (= Y)
hidden_size = 16    # H
seq_length = 12
learning_rate = 1e-1

H, X = hidden_size, vocab_size
Wf = np.random.randn(H, H + X) * 0.1   # (H, H+X) forget gate
Wi = np.random.randn(H, H + X) * 0.1   # (H, H+X) input gate
Wc = np.random.randn(H, H + X) * 0.1   # (H, H+X) candidate
Wo = np.random.randn(H, H + X) * 0.1   # (H, H+X) output gate
bf = np.ones((H, 1))                   # (H, 1) forget bias starts at 1
bi = np.zeros((H, 1))                  # (H, 1)
bc = np.zeros((H, 1))                  # (H, 1)
bo = np.zeros((H, 1))                  # (H, 1)
Wy = np.random.randn(X, H) * 0.1       # (Y, H)
by = np.zeros((X, 1))                  # (Y, 1)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lossFun(inputs, targets, hprev, cprev):
    """hprev, cprev: (H, 1). hs[t], cs[t] are the states after step t; key -1 holds the start."""
    H = Wf.shape[0]
    X = Wf.shape[1] - H
    xs, vs, fs, is_, gs, os_, hs, cs, ps = {}, {}, {}, {}, {}, {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    cs[-1] = np.copy(cprev)
    loss = 0.0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((X, 1))                         # (X, 1) one-hot
        xs[t][inputs[t]] = 1
        vs[t] = np.vstack((hs[t-1], xs[t]))              # (H+X, 1) [h; x]
        fs[t] = sigmoid(np.dot(Wf, vs[t]) + bf)          # (H, 1)
        is_[t] = sigmoid(np.dot(Wi, vs[t]) + bi)         # (H, 1)
        gs[t] = np.tanh(np.dot(Wc, vs[t]) + bc)          # (H, 1)
        os_[t] = sigmoid(np.dot(Wo, vs[t]) + bo)         # (H, 1)
        cs[t] = fs[t] * cs[t-1] + is_[t] * gs[t]         # (H, 1)
        hs[t] = os_[t] * np.tanh(cs[t])                  # (H, 1)
        y = np.dot(Wy, hs[t]) + by                       # (Y, 1) logits
        e = np.exp(y - np.max(y))
        ps[t] = e / np.sum(e)                            # (Y, 1)
        loss += -np.log(ps[t][targets[t], 0])
    # backward pass
    dWf, dWi, dWc, dWo = (np.zeros_like(Wf), np.zeros_like(Wi),
                          np.zeros_like(Wc), np.zeros_like(Wo))
    dbf, dbi, dbc, dbo = (np.zeros_like(bf), np.zeros_like(bi),
                          np.zeros_like(bc), np.zeros_like(bo))
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    dcnext = np.zeros_like(cs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])                               # (Y, 1)
        dy[targets[t]] -= 1
        dWy += np.dot(dy, hs[t-1].T)                        # (Y, H)
        dby += dy
        dh = np.dot(Wy.T, dy) + dhnext                    # (H, 1)
        tc = np.tanh(cs[t-1])                               # (H, 1)
        do = dh * tc * os_[t] * (1 - os_[t])              # (H, 1) pre-activation grad
        dc = dcnext + dh * os_[t] * (1 - tc * tc)         # (H, 1)
        df = dc * cs[t-1] * fs[t] * (1 - fs[t])           # (H, 1)
        di = dc * gs[t] * is_[t] * (1 - is_[t])           # (H, 1)
        dg = dc * is_[t] * (1 - gs[t] * gs[t])            # (H, 1)
        dWf += np.dot(df, vs[t].T)
        dbf += df
        dWi += np.dot(di, vs[t].T)
        dbi += di
        dWc += np.dot(dg, vs[t].T)
        dbc += dg
        dWo += np.dot(do, vs[t].T)
        dbo += do
        dv = (np.dot(Wf.T, df) + np.dot(Wi.T, di)
              + np.dot(Wc.T, dg) + np.dot(Wo.T, do))      # (H+X, 1)
        dhnext = dv[:H]                                   # hidden part comes first
        dcnext = dc * fs[t]
    return (loss, dWf, dWi, dWc, dWo, dbf, dbi, dbc, dbo, dWy, dby,
            hs[len(inputs)-1], cs[len(inputs)-1])
