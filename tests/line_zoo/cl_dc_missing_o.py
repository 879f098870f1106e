# line_zoo: cl_dc_missing_o.py (written by helper zoo15; labels in tests/line_zoo/labels.json)
"""
LSTM language model as a class. One weight matrix per gate on z = [h_prev; x]:
forget Wf, input Wi, candidate Wg, output Wo; output layer Wy, by. 1-D vectors.
self.h[0], self.c[0] are the initial states.
"""
import numpy as np

BPTTCHECK = {"arch": "lstm"}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LSTMModel:
    gates = ("f", "i", "g", "o")

    def __init__(self, params):
        self.p = params
        self.hidden = params["Wf"].shape[0]
        self.n_in = params["Wf"].shape[1] - self.hidden

    def forward(self, inputs, targets, h0, c0):
        p = self.p
        self.inputs, self.targets = inputs, targets
        self.h, self.c = [h0.copy()], [c0.copy()]
        self.z, self.f, self.i, self.g, self.o, self.prob = [], [], [], [], [], []
        loss = 0.0
        for t in range(len(inputs)):
            x = np.zeros(self.n_in)
            x[inputs[t]] = 1.0
            z = np.hstack([self.h[t], x])
            self.z.append(z)
            self.f.append(sigmoid(p["Wf"] @ z + p["bf"]))
            self.i.append(sigmoid(p["Wi"] @ z + p["bi"]))
            self.g.append(np.tanh(p["Wg"] @ z + p["bg"]))
            self.o.append(sigmoid(p["Wo"] @ z + p["bo"]))
            self.c.append(self.f[t] * self.c[t] + self.i[t] * self.g[t])
            self.h.append(self.o[t] * np.tanh(self.c[t + 1]))
            logits = p["Wy"] @ self.h[t + 1] + p["by"]
            e = np.exp(logits - np.max(logits))
            self.prob.append(e / e.sum())
            loss -= np.log(self.prob[t][targets[t]])
        return loss

    def backward(self):
        p = self.p
        grads = {name: np.zeros_like(value) for name, value in p.items()}
        dh_next = np.zeros(self.hidden)
        dc_next = np.zeros(self.hidden)
        for t in reversed(range(len(self.inputs))):
            dy = self.prob[t].copy()
            dy[self.targets[t]] -= 1.0
            grads["Wy"] += np.outer(dy, self.h[t + 1])
            grads["by"] += dy
            dh = p["Wy"].T @ dy + dh_next
            tanh_c = np.tanh(self.c[t + 1])
            dc = dc_next + dh * (1.0 - tanh_c ** 2)
            d = {}
            d["f"] = dc * self.c[t] * self.f[t] * (1.0 - self.f[t])
            d["i"] = dc * self.g[t] * self.i[t] * (1.0 - self.i[t])
            d["g"] = dc * self.i[t] * (1.0 - self.g[t] ** 2)
            d["o"] = dh * tanh_c * self.o[t] * (1.0 - self.o[t])
            dz = np.zeros(self.hidden + self.n_in)
            for k in self.gates:
                grads["W" + k] += np.outer(d[k], self.z[t])
                grads["b" + k] += d[k]
                dz += p["W" + k].T @ d[k]
            dh_next = dz[:self.hidden]
            dc_next = dc * self.f[t]
        return grads


def loss_and_grads(params, inputs, targets, state):
    h0, c0 = state
    model = LSTMModel(params)
    loss = model.forward(inputs, targets, np.asarray(h0, float), np.asarray(c0, float))
    grads = model.backward()
    return float(loss), grads, (model.h[-1], model.c[-1])
