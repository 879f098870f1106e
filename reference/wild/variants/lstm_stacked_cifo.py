# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: lstm
# bpttcheck-variant: stacked gates in order c (candidate), i, f, o, concatenation [x; h], layout NOT declared
"""
LSTM, functional style, with a stacked weight matrix W_gates (4H, X+H) acting on [x; h] and row
blocks candidate, input, forget, output. Nothing declares the layout: a checker has to infer it.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    return {"W_gates": rng.normal(0, 0.1, (4 * H, X + H)), "b_gates": np.zeros(4 * H),
            "W_out": rng.normal(0, 0.1, (Y, H)), "b_out": np.zeros(Y)}


def init_state(H):
    return np.zeros(H), np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    Wg, bg = params["W_gates"], params["b_gates"]
    Wo, bo = params["W_out"], params["b_out"]
    H = Wg.shape[0] // 4
    X = Wg.shape[1] - H
    h = np.asarray(state[0], dtype=float)
    c = np.asarray(state[1], dtype=float)
    hist = []
    loss = 0.0
    for t in range(len(inputs)):
        x = np.zeros(X)
        x[inputs[t]] = 1.0
        xh = np.concatenate([x, h])
        a = Wg @ xh + bg
        cand = np.tanh(a[:H])
        ig = sigmoid(a[H:2 * H])
        fg = sigmoid(a[2 * H:3 * H])
        og = sigmoid(a[3 * H:])
        c_new = fg * c + ig * cand
        h_new = og * np.tanh(c_new)
        logits = Wo @ h_new + bo
        p = np.exp(logits - logits.max())
        p /= p.sum()
        loss -= np.log(p[targets[t]])
        hist.append((xh, c, cand, ig, fg, og, c_new, h_new, p))
        h, c = h_new, c_new

    grads = {k: np.zeros_like(w) for k, w in params.items()}
    dh_next = np.zeros(H)
    dc_next = np.zeros(H)
    for t in reversed(range(len(inputs))):
        xh, c_prev, cand, ig, fg, og, c_new, h_new, p = hist[t]
        dl = p.copy()
        dl[targets[t]] -= 1.0
        grads["W_out"] += np.outer(dl, h_new)
        grads["b_out"] += dl
        dh = Wo.T @ dl + dh_next
        tanh_c = np.tanh(c_new)
        dc = dc_next + dh * og * (1.0 - tanh_c ** 2)
        da = np.empty(4 * H)
        da[:H] = dc * ig * (1.0 - cand ** 2)
        da[H:2 * H] = dc * cand * ig * (1.0 - ig)
        da[2 * H:3 * H] = dc * c_prev * fg * (1.0 - fg)
        da[3 * H:] = dh * tanh_c * og * (1.0 - og)
        grads["W_gates"] += np.outer(da, xh)
        grads["b_gates"] += da
        dh_next = (Wg.T @ da)[X:]
        dc_next = dc * fg
    return loss, grads, (h, c)
