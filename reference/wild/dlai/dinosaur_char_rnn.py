# bpttcheck-expect: pass
# bpttcheck-style: dlai-char
# bpttcheck-arch: rnn
"""
Character-level name generator in the layout of the deeplearning.ai "Dinosaur Island" exercise.

X is a list of character indices whose first entry is None (a zero input vector), Y is X shifted
by one with the newline index appended. Column vectors throughout:
    a<t> = tanh(Wax x<t> + Waa a<t-1> + b)   (n_a, 1)
    y<t> = softmax(Wya a<t> + by)             (n_y, 1)
    loss = sum_t -log y<t>[Y[t]]
rnn_forward(X, Y, a0, parameters, vocab_size=27) -> (loss, cache)
rnn_backward(X, Y, parameters, cache) -> (gradients, a); gradients also carries "da_next",
which after the loop is the gradient with respect to a0.
optimize() is one training step: forward, backward, clip to [-5, 5], SGD update of parameters.
"""
import numpy as np


def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def smooth(loss, cur_loss):
    return loss * 0.999 + cur_loss * 0.001


def get_initial_loss(vocab_size, seq_length):
    return -np.log(1.0 / vocab_size) * seq_length


def initialize_parameters(n_a, n_x, n_y):
    np.random.seed(1)
    Wax = np.random.randn(n_a, n_x) * 0.01
    Waa = np.random.randn(n_a, n_a) * 0.01
    Wya = np.random.randn(n_y, n_a) * 0.01
    b = np.zeros((n_a, 1))
    by = np.zeros((n_y, 1))
    return {"Wax": Wax, "Waa": Waa, "Wya": Wya, "b": b, "by": by}


def rnn_step_forward(parameters, a_prev, x):
    Waa, Wax, Wya = parameters["Waa"], parameters["Wax"], parameters["Wya"]
    by, b = parameters["by"], parameters["b"]
    a_next = np.tanh(np.dot(Wax, x) + np.dot(Waa, a_prev) + b)
    p_t = softmax(np.dot(Wya, a_next) + by)
    return a_next, p_t


def rnn_step_backward(dy, gradients, parameters, x, a, a_prev):
    gradients["dWya"] += np.dot(dy, a.T)
    gradients["dby"] += dy
    da = np.dot(parameters["Wya"].T, dy) + gradients["da_next"]
    daraw = (1 - a * a) * da
    gradients["db"] += daraw
    gradients["dWax"] += np.dot(daraw, x.T)
    gradients["dWaa"] += np.dot(daraw, a_prev.T)
    gradients["da_next"] = np.dot(parameters["Waa"].T, daraw)
    return gradients


def update_parameters(parameters, gradients, lr):
    parameters["Wax"] += -lr * gradients["dWax"]
    parameters["Waa"] += -lr * gradients["dWaa"]
    parameters["Wya"] += -lr * gradients["dWya"]
    parameters["b"] += -lr * gradients["db"]
    parameters["by"] += -lr * gradients["dby"]
    return parameters


def rnn_forward(X, Y, a0, parameters, vocab_size=27):
    x, a, y_hat = {}, {}, {}
    a[-1] = np.copy(a0)
    loss = 0
    for t in range(len(X)):
        x[t] = np.zeros((vocab_size, 1))
        if X[t] is not None:
            x[t][X[t]] = 1
        a[t], y_hat[t] = rnn_step_forward(parameters, a[t - 1], x[t])
        loss -= np.log(y_hat[t][Y[t], 0])
    cache = (y_hat, a, x)
    return loss, cache


def rnn_backward(X, Y, parameters, cache):
    gradients = {}
    (y_hat, a, x) = cache
    Waa, Wax, Wya = parameters["Waa"], parameters["Wax"], parameters["Wya"]
    by, b = parameters["by"], parameters["b"]

    gradients["dWax"], gradients["dWaa"], gradients["dWya"] = (np.zeros_like(Wax), np.zeros_like(Waa),
                                                               np.zeros_like(Wya))
    gradients["db"], gradients["dby"] = np.zeros_like(b), np.zeros_like(by)
    gradients["da_next"] = np.zeros_like(a[0])

    for t in reversed(range(len(X))):
        dy = np.copy(y_hat[t])
        dy[Y[t]] -= 1
        gradients = rnn_step_backward(dy, gradients, parameters, x[t], a[t], a[t - 1])
    return gradients, a


def clip(gradients, maxValue):
    dWaa, dWax, dWya = gradients["dWaa"], gradients["dWax"], gradients["dWya"]
    db, dby = gradients["db"], gradients["dby"]
    for gradient in [dWax, dWaa, dWya, db, dby]:
        np.clip(gradient, -maxValue, maxValue, out=gradient)
    gradients = {"dWaa": dWaa, "dWax": dWax, "dWya": dWya, "db": db, "dby": dby}
    return gradients


def optimize(X, Y, a_prev, parameters, learning_rate=0.01):
    vocab_size = parameters["Wax"].shape[1]
    loss, cache = rnn_forward(X, Y, a_prev, parameters, vocab_size)
    gradients, a = rnn_backward(X, Y, parameters, cache)
    gradients = clip(gradients, 5)
    parameters = update_parameters(parameters, gradients, learning_rate)
    return loss, gradients, a[len(X) - 1]


if __name__ == "__main__":
    names = ["aardonyx", "abelisaurus", "abrictosaurus", "achelousaurus", "zuniceratops"]
    chars = sorted(set("\n".join(names) + "\n"))
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    vocab_size = len(chars)
    parameters = initialize_parameters(16, vocab_size, vocab_size)
    a_prev = np.zeros((16, 1))
    loss = get_initial_loss(vocab_size, len(names))
    for j in range(300):
        name = names[j % len(names)]
        X = [None] + [char_to_ix[ch] for ch in name]
        Y = X[1:] + [char_to_ix["\n"]]
        curr_loss, gradients, a_prev = optimize(X, Y, a_prev, parameters, learning_rate=0.01)
        loss = smooth(loss, curr_loss)
    print("smoothed loss %.4f" % loss)
