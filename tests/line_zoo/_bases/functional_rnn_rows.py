# RNN written with row vectors: h = tanh(x @ Wxh.T + h_prev @ Whh.T + bh).
# hs[t] is the state AFTER step t (no initial state in the list), h0 is kept apart.
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    H, X = Wxh.shape
    T = len(inputs)
    h0 = np.asarray(state, dtype=float)

    X_in = np.eye(X)[inputs]             # (T, X) one-hot rows
    pre = np.zeros((T, H))               # pre-activations
    hs = np.zeros((T, H))
    probs = np.zeros((T, Why.shape[0]))
    loss = 0.0
    for t in range(T):
        h_prev = hs[t - 1] if t > 0 else h0
        pre[t] = X_in[t] @ Wxh.T + h_prev @ Whh.T + bh
        hs[t] = np.tanh(pre[t])
        scores = hs[t] @ Why.T + by
        scores = scores - scores.max()
        probs[t] = np.exp(scores) / np.sum(np.exp(scores))
        loss -= np.log(probs[t, targets[t]])

    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dh_next = np.zeros(H)
    for t in range(T - 1, -1, -1):
        h_prev = hs[t - 1] if t > 0 else h0
        dscores = probs[t].copy()
        dscores[targets[t]] -= 1
        dWhy += np.outer(dscores, hs[t])
        dby += dscores
        dh = dscores @ Why + dh_next
        dpre = dh * (1 - np.tanh(pre[t]) ** 2)
        dWxh += np.outer(dpre, X_in[t])
        dWhh += np.outer(dpre, h_prev)
        dbh += dpre
        dh_next = dpre @ Whh
    return loss, {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}, hs[T - 1]
