"""
Control: a correct hand-written backward. LSTM language model, functional style, parameter names as in many from-scratch tutorials:
W_f, W_i, W_c (candidate), W_o of shape (H, H+X) acting on z = [h; x], biases b_* (H,),
output layer W_v (Y, H), b_v (Y,). state = (h0, c0), 1-D.

Storage: h[0], C[0] are the initial states, so at step t the PREVIOUS states are h[t], C[t]
and the CURRENT ones are h[t+1], C[t+1].
"""
import numpy as np

BPTTCHECK = {"arch": "lstm"}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(a):
    e = np.exp(a - np.max(a))
    return e / np.sum(e)


def loss_and_grads(params, inputs, targets, state):
    W_f, W_i, W_c, W_o = params["W_f"], params["W_i"], params["W_c"], params["W_o"]
    b_f, b_i, b_c, b_o = params["b_f"], params["b_i"], params["b_c"], params["b_o"]
    W_v, b_v = params["W_v"], params["b_v"]
    H = W_f.shape[0]
    X = W_f.shape[1] - H
    T = len(inputs)
    h0, c0 = state

    h = [np.array(h0, dtype=float)]
    C = [np.array(c0, dtype=float)]
    z, f, i, g, o, y_hat = [], [], [], [], [], []
    loss = 0.0
    for t in range(T):
        x = np.zeros(X)                                   # (X,)
        x[inputs[t]] = 1.0
        z.append(np.concatenate([h[t], x]))               # (H+X,)
        f.append(sigmoid(W_f @ z[t] + b_f))               # (H,)
        i.append(sigmoid(W_i @ z[t] + b_i))               # (H,)
        g.append(np.tanh(W_c @ z[t] + b_c))               # (H,)
        o.append(sigmoid(W_o @ z[t] + b_o))               # (H,)
        C.append(f[t] * C[t] + i[t] * g[t])               # (H,)
        h.append(o[t] * np.tanh(C[t + 1]))                # (H,)
        y_hat.append(softmax(W_v @ h[t + 1] + b_v))       # (Y,)
        loss -= np.log(y_hat[t][targets[t]])

    W_f_d, W_i_d, W_c_d, W_o_d = (np.zeros_like(W_f), np.zeros_like(W_i),
                                  np.zeros_like(W_c), np.zeros_like(W_o))
    b_f_d, b_i_d, b_c_d, b_o_d = (np.zeros_like(b_f), np.zeros_like(b_i),
                                  np.zeros_like(b_c), np.zeros_like(b_o))
    W_v_d, b_v_d = np.zeros_like(W_v), np.zeros_like(b_v)
    dh_next = np.zeros(H)
    dC_next = np.zeros(H)
    for t in reversed(range(T)):
        h_t, C_t, C_prev = h[t + 1], C[t + 1], C[t]
        dv = y_hat[t].copy()                              # (Y,)
        dv[targets[t]] -= 1.0
        W_v_d += np.outer(dv, h_t)                        # (Y, H)
        b_v_d += dv
        dh = W_v.T @ dv + dh_next                         # (H,)
        tC = np.tanh(C_t)
        do = dh * tC * o[t] * (1.0 - o[t])                # (H,) o is already sigmoid'ed
        dC = dC_next + dh * o[t] * (1.0 - tC ** 2)        # (H,)
        dg = dC * i[t] * (1.0 - g[t] ** 2)                # (H,)
        di = dC * g[t] * i[t] * (1.0 - i[t])              # (H,)
        df = dC * C_prev * f[t] * (1.0 - f[t])            # (H,)
        W_f_d += np.outer(df, z[t]); b_f_d += df          # (H, H+X)
        W_i_d += np.outer(di, z[t]); b_i_d += di
        W_c_d += np.outer(dg, z[t]); b_c_d += dg
        W_o_d += np.outer(do, z[t]); b_o_d += do
        dz = W_f.T @ df + W_i.T @ di + W_c.T @ dg + W_o.T @ do   # (H+X,)
        dh_next = dz[:H]                                  # hidden part of z
        dC_next = dC * f[t]

    grads = {"W_f": W_f_d, "W_i": W_i_d, "W_c": W_c_d, "W_o": W_o_d,
             "b_f": b_f_d, "b_i": b_i_d, "b_c": b_c_d, "b_o": b_o_d,
             "W_v": W_v_d, "b_v": b_v_d}
    return float(loss), grads, (h[T], C[T])
