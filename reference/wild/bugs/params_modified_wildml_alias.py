# bpttcheck-expect: grad.params-modified
# bpttcheck-style: wildml
# bpttcheck-arch: rnn
# bpttcheck-variant: notebook habit: methods written as functions and attached to the class; bptt_truncate default 1000 (>= T, full BPTT)
# bpttcheck-bug: bptt: dLdU is an alias of self.U, which is zeroed and then overwritten with the gradient
# bpttcheck-bug-line: 74
"""
The WildML RNN language model written the way the tutorial notebook builds it: the class holds
only __init__, and each method is a module-level function attached afterwards
(RNNNumpy.forward_propagation = forward_propagation, ...). The default bptt_truncate is larger
than any sentence, so bptt() is exact full backpropagation through time.
    s[t] = tanh(U[:, x[t]] + W s[t-1])   o[t] = softmax(V s[t])   s[-1] = 0
"""
import numpy as np


def softmax(x):
    xt = np.exp(x - np.max(x))
    return xt / np.sum(xt)


class RNNNumpy:

    def __init__(self, word_dim, hidden_dim=100, bptt_truncate=1000):
        self.word_dim = word_dim
        self.hidden_dim = hidden_dim
        self.bptt_truncate = bptt_truncate
        self.U = np.random.uniform(-np.sqrt(1. / word_dim), np.sqrt(1. / word_dim), (hidden_dim, word_dim))
        self.V = np.random.uniform(-np.sqrt(1. / hidden_dim), np.sqrt(1. / hidden_dim), (word_dim, hidden_dim))
        self.W = np.random.uniform(-np.sqrt(1. / hidden_dim), np.sqrt(1. / hidden_dim), (hidden_dim, hidden_dim))


def forward_propagation(self, x):
    T = len(x)
    s = np.zeros((T + 1, self.hidden_dim))
    o = np.zeros((T, self.word_dim))
    for t in np.arange(T):
        s[t] = np.tanh(self.U[:, x[t]] + self.W.dot(s[t - 1]))
        o[t] = softmax(self.V.dot(s[t]))
    return [o, s]


RNNNumpy.forward_propagation = forward_propagation


def predict(self, x):
    o, s = self.forward_propagation(x)
    return np.argmax(o, axis=1)


RNNNumpy.predict = predict


def calculate_total_loss(self, x, y):
    L = 0
    for i in np.arange(len(y)):
        o, s = self.forward_propagation(x[i])
        L += -1 * np.sum(np.log(o[np.arange(len(y[i])), y[i]]))
    return L


def calculate_loss(self, x, y):
    N = sum(len(y_i) for y_i in y)
    return self.calculate_total_loss(x, y) / N


RNNNumpy.calculate_total_loss = calculate_total_loss
RNNNumpy.calculate_loss = calculate_loss


def bptt(self, x, y):
    T = len(y)
    o, s = self.forward_propagation(x)
    dLdU = self.U
    dLdU[...] = 0.0
    dLdV = np.zeros(self.V.shape)
    dLdW = np.zeros(self.W.shape)
    delta_o = o
    delta_o[np.arange(len(y)), y] -= 1.
    for t in np.arange(T)[::-1]:
        dLdV += np.outer(delta_o[t], s[t].T)
        delta_t = self.V.T.dot(delta_o[t]) * (1 - (s[t] ** 2))
        for bptt_step in np.arange(max(0, t - self.bptt_truncate), t + 1)[::-1]:
            dLdW += np.outer(delta_t, s[bptt_step - 1])
            dLdU[:, x[bptt_step]] += delta_t
            delta_t = self.W.T.dot(delta_t) * (1 - s[bptt_step - 1] ** 2)
    return [dLdU, dLdV, dLdW]


RNNNumpy.bptt = bptt


def numpy_sgd_step(self, x, y, learning_rate):
    dLdU, dLdV, dLdW = self.bptt(x, y)
    self.U -= learning_rate * dLdU
    self.V -= learning_rate * dLdV
    self.W -= learning_rate * dLdW


RNNNumpy.sgd_step = numpy_sgd_step


if __name__ == "__main__":
    np.random.seed(10)
    model = RNNNumpy(8, 6)
    x, y = [0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]
    for step in range(50):
        model.sgd_step(x, y, 0.05)
    print("loss per word %.4f" % model.calculate_loss([x], [y]))
