# bpttcheck-expect: lstm.missing-dh-next
# bpttcheck-style: karpathy
# bpttcheck-arch: lstm
# bpttcheck-variant: candidate gate named Wcc/bcc (cell candidate), output layer Wy/by, return order differs from the canonical one
# bpttcheck-groups: Wf, bf, Wi, bi, Wcc, bcc, Wo, bo
# bpttcheck-bug: lossFun: dh = Wy.T @ dv only, dh_next from the later step never added
# bpttcheck-bug-line: 75
"""
Character LSTM in min-char-rnn style with the naming of several blog posts: Wf, Wi, Wcc (cell
candidate), Wo act on z = [h; x]; Wy maps h to logits. Biases are columns.
lossFun(inputs, targets, hprev, cprev)
    -> loss, dWf, dbf, dWi, dbi, dWcc, dbcc, dWo, dbo, dWy, dby, h_last, c_last
"""
import numpy as np

data_chars = "abcdefgh ."
vocab_size = len(data_chars)
hidden_size = 12
seq_length = 10
learning_rate = 0.1
z_size = hidden_size + vocab_size

Wf = np.random.randn(hidden_size, z_size) * 0.1
bf = np.ones((hidden_size, 1))
Wi = np.random.randn(hidden_size, z_size) * 0.1
bi = np.zeros((hidden_size, 1))
Wcc = np.random.randn(hidden_size, z_size) * 0.1
bcc = np.zeros((hidden_size, 1))
Wo = np.random.randn(hidden_size, z_size) * 0.1
bo = np.zeros((hidden_size, 1))
Wy = np.random.randn(vocab_size, hidden_size) * 0.1
by = np.zeros((vocab_size, 1))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def dsigmoid(y):
    return y * (1 - y)


def dtanh(y):
    return 1 - y * y


def lossFun(inputs, targets, hprev, cprev):
    x_s, z_s, f_s, i_s, cc_s, c_s, o_s, h_s, p_s = {}, {}, {}, {}, {}, {}, {}, {}, {}
    h_s[-1] = np.copy(hprev)
    c_s[-1] = np.copy(cprev)
    loss = 0
    for t in range(len(inputs)):
        x_s[t] = np.zeros((vocab_size, 1))
        x_s[t][inputs[t]] = 1
        z_s[t] = np.vstack((h_s[t - 1], x_s[t]))
        f_s[t] = sigmoid(np.dot(Wf, z_s[t]) + bf)
        i_s[t] = sigmoid(np.dot(Wi, z_s[t]) + bi)
        cc_s[t] = np.tanh(np.dot(Wcc, z_s[t]) + bcc)
        c_s[t] = f_s[t] * c_s[t - 1] + i_s[t] * cc_s[t]
        o_s[t] = sigmoid(np.dot(Wo, z_s[t]) + bo)
        h_s[t] = o_s[t] * np.tanh(c_s[t])
        v = np.dot(Wy, h_s[t]) + by
        p_s[t] = np.exp(v - np.max(v)) / np.sum(np.exp(v - np.max(v)))
        loss += -np.log(p_s[t][targets[t], 0])

    dWf, dWi, dWcc, dWo, dWy = [np.zeros_like(w) for w in (Wf, Wi, Wcc, Wo, Wy)]
    dbf, dbi, dbcc, dbo, dby = [np.zeros_like(b) for b in (bf, bi, bcc, bo, by)]
    dh_next = np.zeros_like(h_s[0])
    dc_next = np.zeros_like(c_s[0])
    for t in reversed(range(len(inputs))):
        dv = np.copy(p_s[t])
        dv[targets[t]] -= 1
        dWy += np.dot(dv, h_s[t].T)
        dby += dv
        dh = np.dot(Wy.T, dv)
        do = dh * np.tanh(c_s[t]) * dsigmoid(o_s[t])
        dWo += np.dot(do, z_s[t].T)
        dbo += do
        dc = dc_next + dh * o_s[t] * dtanh(np.tanh(c_s[t]))
        dcc = dc * i_s[t] * dtanh(cc_s[t])
        dWcc += np.dot(dcc, z_s[t].T)
        dbcc += dcc
        di = dc * cc_s[t] * dsigmoid(i_s[t])
        dWi += np.dot(di, z_s[t].T)
        dbi += di
        df = dc * c_s[t - 1] * dsigmoid(f_s[t])
        dWf += np.dot(df, z_s[t].T)
        dbf += df
        dz = np.dot(Wf.T, df) + np.dot(Wi.T, di) + np.dot(Wcc.T, dcc) + np.dot(Wo.T, do)
        dh_next = dz[:hidden_size, :]
        dc_next = f_s[t] * dc
    return (loss, dWf, dbf, dWi, dbi, dWcc, dbcc, dWo, dbo, dWy, dby,
            h_s[len(inputs) - 1], c_s[len(inputs) - 1])


if __name__ == "__main__":
    text = "abc defg hab cdef gh. " * 20
    ix = {ch: k for k, ch in enumerate(data_chars)}
    params = [Wf, bf, Wi, bi, Wcc, bcc, Wo, bo, Wy, by]
    mems = [np.zeros_like(q) for q in params]
    hprev, cprev = np.zeros((hidden_size, 1)), np.zeros((hidden_size, 1))
    p = 0
    for n in range(300):
        if p + seq_length + 1 >= len(text):
            p = 0
            hprev, cprev = np.zeros((hidden_size, 1)), np.zeros((hidden_size, 1))
        inputs = [ix[ch] for ch in text[p:p + seq_length]]
        targets = [ix[ch] for ch in text[p + 1:p + seq_length + 1]]
        loss, *grads, hprev, cprev = lossFun(inputs, targets, hprev, cprev)
        for q, dq, m in zip(params, grads, mems):
            np.clip(dq, -5, 5, out=dq)
            m += dq * dq
            q += -learning_rate * dq / np.sqrt(m + 1e-8)
        p += seq_length
    print("loss %.3f" % loss)
