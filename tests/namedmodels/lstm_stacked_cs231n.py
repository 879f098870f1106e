"""LSTM in one stacked matrix with the names and gate order of the CS231n assignments: W
(H+X, 4H) used as v @ W on v = [h; x] with column blocks i, f, o, g, b (4H,), the output layer
W_vocab (H, Y), b_vocab (Y,). Correct."""
import numpy as np

BPTTCHECK = {"arch": "lstm", "stacked": True, "gate_order": "ifog", "transposed": True,
             "names": {"Wy": "W_vocab", "by": "b_vocab"}}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(params, inputs, targets, state):
    W, b = params["W"], params["b"]                      # (H+X, 4H), (4H,): blocks i, f, o, g
    W_vocab, b_vocab = params["W_vocab"], params["b_vocab"]   # (H, Y), (Y,)
    H = W.shape[1] // 4
    X = W.shape[0] - H
    h, c = (np.array(s, dtype=float) for s in state)
    hs, cs, cache, loss = [h], [c], [], 0.0
    for ix, tx in zip(inputs, targets, strict=True):
        x = np.zeros(X)
        x[ix] = 1.0
        v = np.concatenate([hs[-1], x])
        a = v @ W + b
        i, f, o, g = sigmoid(a[:H]), sigmoid(a[H:2 * H]), sigmoid(a[2 * H:3 * H]), np.tanh(a[3 * H:])
        cs.append(f * cs[-1] + i * g)
        hs.append(o * np.tanh(cs[-1]))
        z = hs[-1] @ W_vocab + b_vocab
        p = np.exp(z - z.max())
        p /= p.sum()
        loss -= np.log(p[tx])
        cache.append((v, i, f, o, g, p, tx))
    dW, db = np.zeros_like(W), np.zeros_like(b)
    dW_vocab, db_vocab = np.zeros_like(W_vocab), np.zeros_like(b_vocab)
    dh_next, dc_next = np.zeros(H), np.zeros(H)
    for t in reversed(range(len(inputs))):
        v, i, f, o, g, p, tx = cache[t]
        h_t, c_t, c_prev = hs[t + 1], cs[t + 1], cs[t]
        dy = p.copy()
        dy[tx] -= 1.0
        dW_vocab += np.outer(h_t, dy)
        db_vocab += dy
        dh = W_vocab @ dy + dh_next
        tc = np.tanh(c_t)
        dc = dc_next + dh * o * (1 - tc * tc)
        da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dh * tc * o * (1 - o), dc * i * (1 - g * g)])
        dW += np.outer(v, da)
        db += da
        dv = W @ da
        dh_next, dc_next = dv[:H], dc * f
    grads = {"W": dW, "b": db, "W_vocab": dW_vocab, "b_vocab": db_vocab}
    return float(loss), grads, (hs[-1], cs[-1])
