# line_zoo: sr_dwhh_current_h.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""RNN with separate forward() and backward(); the cache carries everything backward needs."""
import numpy as np

BPTTCHECK = {"arch": "rnn"}


def forward(params, inputs, targets, state):
    Wxh, Whh, Why, bh, by = params["Wxh"], params["Whh"], params["Why"], params["bh"], params["by"]
    vocab = Wxh.shape[1]
    h = np.array(state, dtype=float)
    cache = {"x": [], "h": [h], "p": [], "targets": list(targets)}
    loss = 0.0
    for t in range(len(inputs)):
        x = np.zeros(vocab)
        x[inputs[t]] = 1.0
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
        o = np.dot(Why, h) + by
        p = np.exp(o - np.max(o))
        p = p / np.sum(p)
        loss += -np.log(p[targets[t]])
        cache["x"].append(x)
        cache["h"].append(h)
        cache["p"].append(p)
    return loss, cache, h


def backward(params, cache):
    Wxh, Whh, Why, bh, by = params["Wxh"], params["Whh"], params["Why"], params["bh"], params["by"]
    x, h, p, targets = cache["x"], cache["h"], cache["p"], cache["targets"]
    T = len(x)
    g = {"Wxh": np.zeros_like(Wxh), "Whh": np.zeros_like(Whh), "Why": np.zeros_like(Why),
         "bh": np.zeros_like(bh), "by": np.zeros_like(by)}
    delta_next = np.zeros_like(bh)
    for t in range(T - 1, -1, -1):
        do = p[t].copy()
        do[targets[t]] -= 1.0
        g["Why"] += np.outer(do, h[t + 1])
        g["by"] += do
        delta = (np.dot(Why.T, do) + delta_next) * (1.0 - h[t + 1] ** 2)
        g["Wxh"] += np.outer(delta, x[t])
        g["Whh"] += np.outer(delta, h[t])
        g["bh"] += delta
        delta_next = np.dot(Whh.T, delta)
    return g
