# bpttcheck-expect: pass
# arch: rnn
"""
Benchmark subject for the scaling curve: a vanilla tanh RNN in the functional style, any size
(the sizes come from the probe: benchmarks/bench.py passes a spec with [sizes]).

    a[t] = Wxh x[t] + Whh h[t] + bh,  h[t+1] = tanh(a[t]),  z[t] = Why h[t+1] + by
    loss = sum over t of -log softmax(z[t])[target[t]]
"""
import numpy as np

BPTTCHECK = {"arch": "rnn", "column_vectors": False}


def loss_and_grads(params, inputs, targets, state):
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    h = [np.asarray(state, dtype=float)]      # h[0] is the initial state
    probs = []
    loss = 0.0
    for t, ix in enumerate(inputs):
        # one-hot input: Wxh x[t] is column ix of Wxh
        h.append(np.tanh(Wxh[:, ix] + Whh @ h[t] + bh))
        z = Why @ h[t + 1] + by
        p = np.exp(z - z.max())
        p /= p.sum()
        probs.append(p)
        loss -= np.log(p[targets[t]])

    g = {k: np.zeros_like(v) for k, v in params.items()}
    carry = np.zeros_like(h[0])               # dL/dh[t+1] from the steps after t
    for t in range(len(inputs) - 1, -1, -1):
        dz = probs[t].copy()
        dz[targets[t]] -= 1.0
        g["Why"] += np.outer(dz, h[t + 1])
        g["by"] += dz
        da = (Why.T @ dz + carry) * (1.0 - h[t + 1] ** 2)
        g["Wxh"][:, inputs[t]] += da
        g["Whh"] += np.outer(da, h[t])
        g["bh"] += da
        carry = Whh.T @ da
    return float(loss), g, h[-1]
