# bpttcheck-expect: lstm.cell-tanh-derivative-missing
# arch: lstm
# groups: Wf, Wi, Wg, Wo, bf, bi, bg, bo
# bug: backward: dc = dc_next + dh * o, the (1 - tanh(c)^2) factor is missing
"""
LSTM with separate forward() and backward(), canonical names (Wf, Wi, Wg, Wo, bf, bi, bg, bo,
Wy, by), concatenation v = [h; x], 1-D vectors.

    forward(params, inputs, targets, (h0, c0)) -> (loss, cache)
    backward(params, cache) -> grads
"""
import numpy as np

BPTTCHECK = {"arch": "lstm"}

GATES = ("f", "i", "g", "o")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def forward(params, inputs, targets, state):
    H = params["Wf"].shape[0]
    X = params["Wf"].shape[1] - H
    h0, c0 = state
    hs = [np.array(h0, dtype=float)]
    cs = [np.array(c0, dtype=float)]
    steps = []
    loss = 0.0
    for t, (ix, tx) in enumerate(zip(inputs, targets)):
        x = np.zeros(X)
        x[ix] = 1.0
        v = np.concatenate([hs[t], x])                              # (H+X,)
        f = sigmoid(params["Wf"] @ v + params["bf"])                # (H,)
        i = sigmoid(params["Wi"] @ v + params["bi"])                # (H,)
        g = np.tanh(params["Wg"] @ v + params["bg"])                # (H,)
        o = sigmoid(params["Wo"] @ v + params["bo"])                # (H,)
        c = f * cs[t] + i * g                                       # (H,)
        h = o * np.tanh(c)                                          # (H,)
        zy = params["Wy"] @ h + params["by"]                        # (Y,)
        p = np.exp(zy - zy.max())
        p /= p.sum()                                                # (Y,)
        loss -= np.log(p[tx])
        hs.append(h)
        cs.append(c)
        steps.append({"v": v, "f": f, "i": i, "g": g, "o": o, "p": p, "target": tx})
    cache = {"hs": hs, "cs": cs, "steps": steps, "H": H}
    return float(loss), cache


def backward(params, cache):
    hs, cs, steps, H = cache["hs"], cache["cs"], cache["steps"], cache["H"]
    grads = {k: np.zeros_like(w) for k, w in params.items()}
    dh_next = np.zeros(H)
    dc_next = np.zeros(H)
    for t in reversed(range(len(steps))):
        s = steps[t]
        h, c, c_prev = hs[t + 1], cs[t + 1], cs[t]
        dy = s["p"].copy()                                          # (Y,)
        dy[s["target"]] -= 1.0
        grads["Wy"] += np.outer(dy, h)                              # (Y, H)
        grads["by"] += dy
        dh = params["Wy"].T @ dy + dh_next                          # (H,)
        tc = np.tanh(c)
        dc = dc_next + dh * s["o"]                                  # (H,)
        da = {                                                      # pre-activation grads
            "f": dc * c_prev * s["f"] * (1.0 - s["f"]),
            "i": dc * s["g"] * s["i"] * (1.0 - s["i"]),
            "g": dc * s["i"] * (1.0 - s["g"] ** 2),
            "o": dh * tc * s["o"] * (1.0 - s["o"]),
        }
        dv = np.zeros_like(s["v"])                                  # (H+X,)
        for k in GATES:
            grads["W" + k] += np.outer(da[k], s["v"])               # (H, H+X)
            grads["b" + k] += da[k]
            dv += params["W" + k].T @ da[k]
        dh_next = dv[:H]
        dc_next = dc * s["f"]
    return grads
