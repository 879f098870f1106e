# bpttcheck-expect: pass
# arch: lstm
"""
Benchmark subject for the scaling curve: an LSTM in the functional style, any size (the sizes
come from the probe: benchmarks/bench.py passes a spec with [sizes]). One matrix per gate acting
on v = [h; x]; 1-D vectors; state = (h0, c0).

    f, i, o = sigmoid(W. v + b.),  g = tanh(Wg v + bg)
    c[t+1] = f * c[t] + i * g,  h[t+1] = o * tanh(c[t+1]),  z[t] = Wy h[t+1] + by
"""
import numpy as np

BPTTCHECK = {"arch": "lstm", "concat": "hx", "column_vectors": False}
GATES = ("f", "i", "g", "o")


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(params, inputs, targets, state):
    W = {k: params["W" + k] for k in GATES}
    b = {k: params["b" + k] for k in GATES}
    Wy, by = params["Wy"], params["by"]
    H = Wy.shape[1]
    X = W["f"].shape[1] - H
    h = [np.asarray(state[0], dtype=float)]
    c = [np.asarray(state[1], dtype=float)]
    vs, acts, probs = [], [], []
    loss = 0.0
    for t, ix in enumerate(inputs):
        v = np.zeros(H + X)
        v[:H] = h[t]
        v[H + ix] = 1.0
        a = {k: W[k] @ v + b[k] for k in GATES}
        act = {k: (np.tanh(a[k]) if k == "g" else _sigmoid(a[k])) for k in GATES}
        c.append(act["f"] * c[t] + act["i"] * act["g"])
        h.append(act["o"] * np.tanh(c[t + 1]))
        z = Wy @ h[t + 1] + by
        p = np.exp(z - z.max())
        p /= p.sum()
        vs.append(v)
        acts.append(act)
        probs.append(p)
        loss -= np.log(p[targets[t]])

    g = {k: np.zeros_like(val) for k, val in params.items()}
    dh_carry = np.zeros(H)
    dc_carry = np.zeros(H)
    for t in range(len(inputs) - 1, -1, -1):
        act = acts[t]
        dz = probs[t].copy()
        dz[targets[t]] -= 1.0
        g["Wy"] += np.outer(dz, h[t + 1])
        g["by"] += dz
        dh = Wy.T @ dz + dh_carry
        tc = np.tanh(c[t + 1])
        dc = dc_carry + dh * act["o"] * (1.0 - tc ** 2)
        da = {
            "o": dh * tc * act["o"] * (1.0 - act["o"]),
            "f": dc * c[t] * act["f"] * (1.0 - act["f"]),
            "i": dc * act["g"] * act["i"] * (1.0 - act["i"]),
            "g": dc * act["i"] * (1.0 - act["g"] ** 2),
        }
        dv = np.zeros(H + X)
        for k in GATES:
            g["W" + k] += np.outer(da[k], vs[t])
            g["b" + k] += da[k]
            dv += W[k].T @ da[k]
        dh_carry = dv[:H]
        dc_carry = dc * act["f"]
    return float(loss), g, (h[-1], c[-1])
