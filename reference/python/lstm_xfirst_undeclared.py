# bpttcheck-expect: pass
# arch: lstm
"""
LSTM whose gate matrices act on v = [x; h] (input part FIRST, length X+H).
Names Wf, Wi, Wc (candidate), Wo (H, X+H), bf, bi, bc, bo (H,), Wy (Y, H), by (Y,).
The concatenation order is NOT declared anywhere in this file.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(params, inputs, targets, state):
    Wf, Wi, Wc, Wo = params["Wf"], params["Wi"], params["Wc"], params["Wo"]
    bf, bi, bc, bo = params["bf"], params["bi"], params["bc"], params["bo"]
    Wy, by = params["Wy"], params["by"]
    H = Wf.shape[0]
    X = Wf.shape[1] - H
    T = len(inputs)
    h_prev, c_prev = (np.array(s, dtype=float) for s in state)

    cache = []
    loss = 0.0
    for t in range(T):
        x = np.zeros(X)
        x[inputs[t]] = 1.0
        v = np.concatenate([x, h_prev])                   # (X+H,)
        f = sigmoid(Wf @ v + bf)                          # (H,)
        i = sigmoid(Wi @ v + bi)                          # (H,)
        g = np.tanh(Wc @ v + bc)                          # (H,)
        o = sigmoid(Wo @ v + bo)                          # (H,)
        c = f * c_prev + i * g                            # (H,)
        h = o * np.tanh(c)                                # (H,)
        zy = Wy @ h + by                                  # (Y,)
        p = np.exp(zy - zy.max())
        p /= p.sum()
        loss -= np.log(p[targets[t]])
        cache.append((v, f, i, g, o, c_prev, c, h, p))
        h_prev, c_prev = h, c

    dWf, dWi, dWc, dWo = (np.zeros_like(w) for w in (Wf, Wi, Wc, Wo))
    dbf, dbi, dbc, dbo = (np.zeros_like(b) for b in (bf, bi, bc, bo))
    dWy, dby = np.zeros_like(Wy), np.zeros_like(by)
    dh_next = np.zeros(H)
    dc_next = np.zeros(H)
    for t in reversed(range(T)):
        v, f, i, g, o, cp, c, h, p = cache[t]
        dy = p.copy()
        dy[targets[t]] -= 1.0                             # (Y,)
        dWy += np.outer(dy, h)
        dby += dy
        dh = Wy.T @ dy + dh_next                          # (H,)
        tc = np.tanh(c)
        dc = dc_next + dh * o * (1.0 - tc ** 2)           # (H,)
        d_o = dh * tc * o * (1.0 - o)
        d_f = dc * cp * f * (1.0 - f)
        d_i = dc * g * i * (1.0 - i)
        d_g = dc * i * (1.0 - g ** 2)
        dWf += np.outer(d_f, v); dbf += d_f               # (H, X+H)
        dWi += np.outer(d_i, v); dbi += d_i
        dWc += np.outer(d_g, v); dbc += d_g
        dWo += np.outer(d_o, v); dbo += d_o
        dv = Wf.T @ d_f + Wi.T @ d_i + Wc.T @ d_g + Wo.T @ d_o   # (X+H,)
        dh_next = dv[X:]                                  # hidden part is the tail
        dc_next = dc * f

    grads = {"Wf": dWf, "Wi": dWi, "Wc": dWc, "Wo": dWo,
             "bf": dbf, "bi": dbi, "bc": dbc, "bo": dbo, "Wy": dWy, "by": dby}
    return float(loss), grads, (h_prev, c_prev)
