# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: rnn
# bpttcheck-variant: float64 parameters, hidden states stored as float32 (cast after every step)
"""
Vanilla RNN, functional style, that keeps its hidden-state history in a float32 buffer to save
memory while the parameters stay float64. Gradients are right up to float32 rounding of the states.
"""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    return {"Wxh": rng.normal(0, 0.1, (H, X)), "Whh": rng.normal(0, 0.1, (H, H)),
            "Why": rng.normal(0, 0.1, (Y, H)), "bh": np.zeros(H), "by": np.zeros(Y)}


def init_state(H):
    return np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"], params["by"]
    T = len(inputs)
    H = Whh.shape[0]
    hs = np.zeros((T + 1, H), dtype=np.float32)
    hs[0] = state
    ps = []
    loss = 0.0
    for t in range(T):
        hs[t + 1] = np.tanh(Wxh[:, inputs[t]] + Whh @ hs[t] + bh)
        z = Why @ hs[t + 1] + by
        p = np.exp(z - z.max())
        p /= p.sum()
        ps.append(p)
        loss += -np.log(p[targets[t]])
    g = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros(H)
    for t in reversed(range(T)):
        dz = ps[t].copy()
        dz[targets[t]] -= 1
        g["Why"] += np.outer(dz, hs[t + 1])
        g["by"] += dz
        draw = (Why.T @ dz + dh_next) * (1 - hs[t + 1].astype(np.float64) ** 2)
        g["Wxh"][:, inputs[t]] += draw
        g["Whh"] += np.outer(draw, hs[t])
        g["bh"] += draw
        dh_next = Whh.T @ draw
    return float(loss), g, hs[T].astype(np.float64)
