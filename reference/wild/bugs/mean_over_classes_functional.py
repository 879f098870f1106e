# bpttcheck-expect: loss.mean-over-classes
# bpttcheck-style: functional
# bpttcheck-arch: rnn
# bpttcheck-groups: Wxh, Whh, Why, bh, by
# bpttcheck-bug: the per-step loss is a mean over the Y classes of onehot * log p (= -log p[target] / Y); the gradients follow it (dz divided by Y), so finite differences agree but every gradient is 1/Y of the cross-entropy's
# bpttcheck-bug-line: 43
"""
Vanilla tanh RNN, functional style, 1-D vectors:
    h[t+1] = tanh(Wxh[:, x[t]] + Whh h[t] + bh)    p[t] = softmax(Why h[t+1] + by)
loss_and_grads(params, inputs, targets, state) -> (loss, grads, h_last)
"""
import numpy as np

BPTTCHECK = {"arch": "rnn"}
LEARNING_RATE = 0.05


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    return {"Wxh": rng.normal(0, 0.1, (H, X)), "Whh": rng.normal(0, 0.1, (H, H)),
            "Why": rng.normal(0, 0.1, (Y, H)), "bh": np.zeros(H), "by": np.zeros(Y)}


def init_state(H):
    return np.zeros(H)


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"], params["by"]
    Y = Why.shape[0]
    hs = [np.array(state, dtype=float)]
    ps = []
    loss = 0.0
    for t in range(len(inputs)):
        hs.append(np.tanh(Wxh[:, inputs[t]] + Whh @ hs[-1] + bh))
        ps.append(softmax(Why @ hs[-1] + by))
        loss -= np.mean(np.eye(Y)[targets[t]] * np.log(ps[t]))

    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dz = (ps[t] - np.eye(Y)[targets[t]]) / Y
        grads["Why"] += np.outer(dz, hs[t + 1])
        grads["by"] += dz
        da = (Why.T @ dz + dh_next) * (1.0 - hs[t + 1] ** 2)
        grads["Wxh"][:, inputs[t]] += da
        grads["Whh"] += np.outer(da, hs[t])
        grads["bh"] += da
        dh_next = Whh.T @ da
    return loss, grads, hs[-1]
