# bpttcheck-expect: pass
# bpttcheck-style: karpathy
# bpttcheck-arch: lstm
# bpttcheck-variant: no bias vectors at all (gates and output layer); lossFun returns 5 weight gradients
"""
min-char-rnn style LSTM without any bias: globals Wf, Wi, Wg, Wo (H, H+X) on [h; x] and Wy (X, H).
lossFun(inputs, targets, hprev, cprev) -> loss, dWf, dWi, dWg, dWo, dWy, h_last, c_last
"""
import numpy as np

vocab_size = 12
hidden_size = 10
seq_length = 8
learning_rate = 0.1

H, X = hidden_size, vocab_size
Wf = np.random.randn(H, H + X) * 0.1
Wi = np.random.randn(H, H + X) * 0.1
Wg = np.random.randn(H, H + X) * 0.1
Wo = np.random.randn(H, H + X) * 0.1
Wy = np.random.randn(X, H) * 0.1


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lossFun(inputs, targets, hprev, cprev):
    xs, vs, fs, ins, gs, os, hs, cs, ps = {}, {}, {}, {}, {}, {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    cs[-1] = np.copy(cprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        vs[t] = np.vstack((hs[t - 1], xs[t]))
        fs[t] = sigmoid(np.dot(Wf, vs[t]))
        ins[t] = sigmoid(np.dot(Wi, vs[t]))
        gs[t] = np.tanh(np.dot(Wg, vs[t]))
        os[t] = sigmoid(np.dot(Wo, vs[t]))
        cs[t] = fs[t] * cs[t - 1] + ins[t] * gs[t]
        hs[t] = os[t] * np.tanh(cs[t])
        ys = np.dot(Wy, hs[t])
        ps[t] = np.exp(ys - np.max(ys)) / np.sum(np.exp(ys - np.max(ys)))
        loss += -np.log(ps[t][targets[t], 0])
    dWf, dWi, dWg, dWo = np.zeros_like(Wf), np.zeros_like(Wi), np.zeros_like(Wg), np.zeros_like(Wo)
    dWy = np.zeros_like(Wy)
    dhnext = np.zeros_like(hs[0])
    dcnext = np.zeros_like(cs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWy += np.dot(dy, hs[t].T)
        dh = np.dot(Wy.T, dy) + dhnext
        tc = np.tanh(cs[t])
        do = dh * tc * os[t] * (1 - os[t])
        dc = dh * os[t] * (1 - tc ** 2) + dcnext
        df = dc * cs[t - 1] * fs[t] * (1 - fs[t])
        di = dc * gs[t] * ins[t] * (1 - ins[t])
        dg = dc * ins[t] * (1 - gs[t] ** 2)
        dWf += np.dot(df, vs[t].T)
        dWi += np.dot(di, vs[t].T)
        dWg += np.dot(dg, vs[t].T)
        dWo += np.dot(do, vs[t].T)
        dv = np.dot(Wf.T, df) + np.dot(Wi.T, di) + np.dot(Wg.T, dg) + np.dot(Wo.T, do)
        dhnext = dv[:hidden_size]
        dcnext = dc * fs[t]
    return loss, dWf, dWi, dWg, dWo, dWy, hs[len(inputs) - 1], cs[len(inputs) - 1]


if __name__ == "__main__":
    data = "no bias needed here. " * 30
    chars = sorted(set(data))
    ix = {ch: k for k, ch in enumerate(chars)}
    params = [Wf, Wi, Wg, Wo, Wy]
    mems = [np.zeros_like(q) for q in params]
    hprev, cprev = np.zeros((H, 1)), np.zeros((H, 1))
    p = 0
    for n in range(400):
        if p + seq_length + 1 >= len(data):
            p = 0
            hprev, cprev = np.zeros((H, 1)), np.zeros((H, 1))
        inputs = [ix[ch] for ch in data[p:p + seq_length]]
        targets = [ix[ch] for ch in data[p + 1:p + seq_length + 1]]
        loss, *grads, hprev, cprev = lossFun(inputs, targets, hprev, cprev)
        for q, dq, m in zip(params, grads, mems):
            np.clip(dq, -5, 5, out=dq)
            m += dq * dq
            q += -learning_rate * dq / np.sqrt(m + 1e-8)
        p += seq_length
    print("loss %.3f" % loss)
