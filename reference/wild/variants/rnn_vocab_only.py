# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: rnn
# bpttcheck-variant: X = Y only: the one-hot length is read from Why's rows (output size = vocabulary)
"""
Character RNN, functional style, written for a language model where inputs and outputs share one
vocabulary: the one-hot input vector is sized from the OUTPUT layer (Why.shape[0]), so the code
only works when X == Y. Column vectors (H, 1) as in min-char-rnn.
"""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def init_params(X, H, Y, seed=0):
    assert X == Y, "this model needs one shared vocabulary"
    rng = np.random.default_rng(seed)
    return {"Wxh": rng.normal(0, 0.01, (H, X)), "Whh": rng.normal(0, 0.01, (H, H)),
            "Why": rng.normal(0, 0.01, (Y, H)), "bh": np.zeros((H, 1)), "by": np.zeros((Y, 1))}


def init_state(H):
    return np.zeros((H, 1))


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"], params["by"]
    vocab_size = Why.shape[0]
    xs, hs, ps = {}, {}, {}
    hs[-1] = np.copy(state)
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        ps[t] = np.exp(ys - ys.max()) / np.sum(np.exp(ys - ys.max()))
        loss += -np.log(ps[t][targets[t], 0])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        grads["Why"] += dy @ hs[t].T
        grads["by"] += dy
        dhraw = (1 - hs[t] * hs[t]) * (Why.T @ dy + dhnext)
        grads["bh"] += dhraw
        grads["Wxh"] += dhraw @ xs[t].T
        grads["Whh"] += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    return loss, grads, hs[len(inputs) - 1]
