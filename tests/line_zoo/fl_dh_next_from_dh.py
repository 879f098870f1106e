# line_zoo: fl_dh_next_from_dh.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""Vanilla RNN language model, one function that returns the loss and the gradients."""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def softmax(z):
    z = z - z.max()
    return np.exp(z) / np.exp(z).sum()


def loss_and_grads(params, inputs, targets, state):
    W_xh, W_hh, W_hy = params["W_xh"], params["W_hh"], params["W_hy"]
    b_h, b_y = params["b_h"], params["b_y"]
    n_hidden, n_vocab = W_xh.shape
    T = len(inputs)

    xs = []
    hs = [state.copy()]          # hs[0] = initial state, hs[t + 1] = state after step t
    ps = []
    loss = 0.0
    for t in range(T):
        x = np.zeros(n_vocab)
        x[inputs[t]] = 1
        xs.append(x)
        hs.append(np.tanh(W_xh @ x + W_hh @ hs[t] + b_h))
        ps.append(softmax(W_hy @ hs[t + 1] + b_y))
        loss += -np.log(ps[t][targets[t]])

    dW_xh = np.zeros_like(W_xh)
    dW_hh = np.zeros_like(W_hh)
    dW_hy = np.zeros_like(W_hy)
    db_h = np.zeros_like(b_h)
    db_y = np.zeros_like(b_y)
    dh_next = np.zeros(n_hidden)
    for t in reversed(range(T)):
        dlogits = ps[t].copy()
        dlogits[targets[t]] -= 1
        dW_hy += np.outer(dlogits, hs[t + 1])
        db_y += dlogits
        dh = W_hy.T @ dlogits + dh_next
        da = dh * (1 - hs[t + 1] ** 2)
        dW_xh += np.outer(da, xs[t])
        dW_hh += np.outer(da, hs[t])
        db_h += da
        dh_next = W_hh.T @ dh

    grads = {"W_xh": dW_xh, "W_hh": dW_hh, "W_hy": dW_hy, "b_h": db_h, "b_y": db_y}
    return loss, grads, hs[-1]
