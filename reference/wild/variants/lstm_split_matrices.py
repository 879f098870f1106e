# bpttcheck-expect: pass
# bpttcheck-style: functional
# bpttcheck-arch: lstm
# bpttcheck-variant: split input/recurrent matrices per gate (Wxf (H,X), Whf (H,H), bf ...), candidate gate named c; output V, c_out
"""
LSTM, functional style, with separate input and recurrent matrices for each gate, the layout of
the cs231n-like write-ups that do not concatenate [h; x]:
    f = sigmoid(Wxf x + Whf h + bf)   i = sigmoid(Wxi x + Whi h + bi)
    c~ = tanh(Wxc x + Whc h + bc)     o = sigmoid(Wxo x + Who h + bo)
    c' = f * c + i * c~   h' = o * tanh(c')   p = softmax(V h' + c_out)
"""
import numpy as np

BPTTCHECK = {"arch": "lstm", "split": True, "names": {"Wy": "V", "by": "c_out", "Wg": "Wc", "bg": "bc"}}

GATES = ("f", "i", "c", "o")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def init_params(X, H, Y, seed=0):
    rng = np.random.default_rng(seed)
    p = {}
    for g in GATES:
        p["Wx" + g] = rng.normal(0, 0.1, (H, X))
        p["Wh" + g] = rng.normal(0, 0.1, (H, H))
        p["b" + g] = np.zeros(H)
    p["V"] = rng.normal(0, 0.1, (Y, H))
    p["c_out"] = np.zeros(Y)
    return p


def init_state(H):
    return np.zeros(H), np.zeros(H)


def loss_and_grads(params, inputs, targets, state):
    P = params
    H = P["Whf"].shape[0]
    h, c = np.array(state[0], dtype=float), np.array(state[1], dtype=float)
    rec = []
    loss = 0.0
    for t in range(len(inputs)):
        k = inputs[t]
        pre = {g: P["Wx" + g][:, k] + P["Wh" + g] @ h + P["b" + g] for g in GATES}
        act = {g: (np.tanh(pre[g]) if g == "c" else sigmoid(pre[g])) for g in GATES}
        c_new = act["f"] * c + act["i"] * act["c"]
        h_new = act["o"] * np.tanh(c_new)
        s = P["V"] @ h_new + P["c_out"]
        prob = np.exp(s - s.max())
        prob /= prob.sum()
        loss -= np.log(prob[targets[t]])
        rec.append((k, h, c, act, c_new, h_new, prob))
        h, c = h_new, c_new

    G = {name: np.zeros_like(w) for name, w in P.items()}
    dh_next, dc_next = np.zeros(H), np.zeros(H)
    for t in reversed(range(len(inputs))):
        k, h_prev, c_prev, act, c_new, h_new, prob = rec[t]
        ds = prob.copy()
        ds[targets[t]] -= 1.0
        G["V"] += np.outer(ds, h_new)
        G["c_out"] += ds
        dh = P["V"].T @ ds + dh_next
        tc = np.tanh(c_new)
        dc = dc_next + dh * act["o"] * (1.0 - tc ** 2)
        dpre = {"f": dc * c_prev * act["f"] * (1.0 - act["f"]),
                "i": dc * act["c"] * act["i"] * (1.0 - act["i"]),
                "c": dc * act["i"] * (1.0 - act["c"] ** 2),
                "o": dh * tc * act["o"] * (1.0 - act["o"])}
        dh_next = np.zeros(H)
        for g in GATES:
            G["Wx" + g][:, k] += dpre[g]
            G["Wh" + g] += np.outer(dpre[g], h_prev)
            G["b" + g] += dpre[g]
            dh_next += P["Wh" + g].T @ dpre[g]
        dc_next = dc * act["f"]
    return loss, G, (h, c)
