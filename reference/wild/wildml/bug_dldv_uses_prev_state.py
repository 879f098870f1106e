# bpttcheck-expect: rnn.dwhy-uses-prev-h; note bptt.truncated
# bpttcheck-style: wildml
# bpttcheck-arch: rnn
# bpttcheck-variant: truncated BPTT (bptt_truncate=4), no biases, initial state zero
# bpttcheck-groups: bptt.dLdV
# bpttcheck-bug: bptt: dLdV uses s[t-1] instead of s[t]
# bpttcheck-bug-line: 72
"""
Word-level RNN language model in the layout of the WildML tutorial ("Recurrent Neural Networks
Tutorial, Part 2"): one sentence x is a list of word indices, y is x shifted by one.
    s[t] = tanh(U[:, x[t]] + W s[t-1])     U (hidden, word)  W (hidden, hidden)   s[-1] = 0
    o[t] = softmax(V s[t])                 V (word, hidden)
forward_propagation returns [o, s] with o (T, word_dim) and s (T + 1, hidden_dim), s[-1] the start.
bptt(x, y) -> [dLdU, dLdV, dLdW] of the summed cross-entropy, where the gradient of each step's
loss is carried back at most bptt_truncate steps (the tutorial's choice, a legitimate technique).
"""
import operator

import numpy as np


def softmax(x):
    xt = np.exp(x - np.max(x))
    return xt / np.sum(xt)


class RNNNumpy:

    def __init__(self, word_dim, hidden_dim=100, bptt_truncate=4):
        self.word_dim = word_dim
        self.hidden_dim = hidden_dim
        self.bptt_truncate = bptt_truncate
        self.U = np.random.uniform(-np.sqrt(1. / word_dim), np.sqrt(1. / word_dim), (hidden_dim, word_dim))
        self.V = np.random.uniform(-np.sqrt(1. / hidden_dim), np.sqrt(1. / hidden_dim), (word_dim, hidden_dim))
        self.W = np.random.uniform(-np.sqrt(1. / hidden_dim), np.sqrt(1. / hidden_dim), (hidden_dim, hidden_dim))

    def forward_propagation(self, x):
        T = len(x)
        s = np.zeros((T + 1, self.hidden_dim))
        s[-1] = np.zeros(self.hidden_dim)
        o = np.zeros((T, self.word_dim))
        for t in np.arange(T):
            s[t] = np.tanh(self.U[:, x[t]] + self.W.dot(s[t - 1]))
            o[t] = softmax(self.V.dot(s[t]))
        return [o, s]

    def predict(self, x):
        o, s = self.forward_propagation(x)
        return np.argmax(o, axis=1)

    def calculate_total_loss(self, x, y):
        L = 0
        for i in np.arange(len(y)):
            o, s = self.forward_propagation(x[i])
            correct_word_predictions = o[np.arange(len(y[i])), y[i]]
            L += -1 * np.sum(np.log(correct_word_predictions))
        return L

    def calculate_loss(self, x, y):
        N = np.sum([len(y_i) for y_i in y])
        return self.calculate_total_loss(x, y) / N

    def bptt(self, x, y):
        T = len(y)
        o, s = self.forward_propagation(x)
        dLdU = np.zeros(self.U.shape)
        dLdV = np.zeros(self.V.shape)
        dLdW = np.zeros(self.W.shape)
        delta_o = o
        delta_o[np.arange(len(y)), y] -= 1.
        for t in np.arange(T)[::-1]:
            dLdV += np.outer(delta_o[t], s[t - 1].T)
            delta_t = self.V.T.dot(delta_o[t]) * (1 - (s[t] ** 2))
            # walk back from step t, at most bptt_truncate steps
            for bptt_step in np.arange(max(0, t - self.bptt_truncate), t + 1)[::-1]:
                dLdW += np.outer(delta_t, s[bptt_step - 1])
                dLdU[:, x[bptt_step]] += delta_t
                delta_t = self.W.T.dot(delta_t) * (1 - s[bptt_step - 1] ** 2)
        return [dLdU, dLdV, dLdW]

    def gradient_check(self, x, y, h=0.001, error_threshold=0.01):
        bptt_gradients = self.bptt(x, y)
        model_parameters = ['U', 'V', 'W']
        for pidx, pname in enumerate(model_parameters):
            parameter = operator.attrgetter(pname)(self)
            print("Checking %s (%d entries)" % (pname, np.prod(parameter.shape)))
            it = np.nditer(parameter, flags=['multi_index'], op_flags=['readwrite'])
            while not it.finished:
                ix = it.multi_index
                original_value = parameter[ix]
                parameter[ix] = original_value + h
                gradplus = self.calculate_total_loss([x], [y])
                parameter[ix] = original_value - h
                gradminus = self.calculate_total_loss([x], [y])
                estimated_gradient = (gradplus - gradminus) / (2 * h)
                parameter[ix] = original_value
                backprop_gradient = bptt_gradients[pidx][ix]
                denom = np.abs(backprop_gradient) + np.abs(estimated_gradient)
                relative_error = 0.0 if denom == 0 else np.abs(backprop_gradient - estimated_gradient) / denom
                if relative_error > error_threshold:
                    print("Gradient check ERROR: parameter=%s ix=%s" % (pname, ix))
                    print("+h loss: %f  -h loss: %f" % (gradplus, gradminus))
                    print("estimated: %f  backprop: %f  relative error: %f"
                          % (estimated_gradient, backprop_gradient, relative_error))
                    return
                it.iternext()
            print("Gradient check for parameter %s passed." % pname)

    def sgd_step(self, x, y, learning_rate):
        dLdU, dLdV, dLdW = self.bptt(x, y)
        self.U -= learning_rate * dLdU
        self.V -= learning_rate * dLdV
        self.W -= learning_rate * dLdW


def train_with_sgd(model, X_train, y_train, learning_rate=0.005, nepoch=10, evaluate_loss_after=5):
    losses = []
    num_examples_seen = 0
    for epoch in range(nepoch):
        if epoch % evaluate_loss_after == 0:
            loss = model.calculate_loss(X_train, y_train)
            losses.append((num_examples_seen, loss))
            print("epoch %d, examples seen %d, loss %f" % (epoch, num_examples_seen, loss))
        for i in range(len(y_train)):
            model.sgd_step(X_train[i], y_train[i], learning_rate)
            num_examples_seen += 1
    return losses


if __name__ == "__main__":
    np.random.seed(10)
    grad_check_vocab_size = 100
    model = RNNNumpy(grad_check_vocab_size, 10, bptt_truncate=1000)
    model.gradient_check([0, 1, 2, 3], [1, 2, 3, 4])
    model = RNNNumpy(8, 6)
    X_train = [[0, 1, 2, 3, 4], [0, 5, 6, 2], [0, 3, 4, 5, 6]]
    y_train = [s[1:] + [7] for s in X_train]
    train_with_sgd(model, X_train, y_train, learning_rate=0.05, nepoch=11)
