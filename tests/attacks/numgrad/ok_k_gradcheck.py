"""Control: a correct backward in a file that also defines a numerical gradient check (as
CS231n's notebooks do) and runs it on a few entries under __main__; lossFun never uses it."""
import numpy as np

hidden_size, vocab_size = 4, 5
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01
Whh = np.random.randn(hidden_size, hidden_size) * 0.01
Why = np.random.randn(vocab_size, hidden_size) * 0.01
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))


def lossFun(inputs, targets, hprev):
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        y = Why @ hs[t] + by
        e = np.exp(y - np.max(y))
        ps[t] = e / np.sum(e)
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hprev)
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += dhraw @ xs[t].T
        dWhh += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def eval_numerical_gradient(f, x, h=1e-5, entries=5):
    """Central differences of f() in a few random entries of x (changed in place, restored)."""
    grad = {}
    for _ in range(entries):
        ix = tuple(np.random.randint(n) for n in x.shape)
        old = x[ix]
        x[ix] = old + h
        up = f()
        x[ix] = old - h
        down = f()
        x[ix] = old
        grad[ix] = (up - down) / (2 * h)
    return grad


def gradient_check(inputs, targets, hprev):
    loss, dWxh, dWhh, dWhy, dbh, dby, _ = lossFun(inputs, targets, hprev)
    for P, dP, name in zip([Wxh, Whh, Why, bh, by], [dWxh, dWhh, dWhy, dbh, dby],
                           ["Wxh", "Whh", "Why", "bh", "by"]):
        num = eval_numerical_gradient(lambda: lossFun(inputs, targets, hprev)[0], P)
        for ix, g in num.items():
            rel = abs(g - dP[ix]) / max(abs(g) + abs(dP[ix]), 1e-12)
            print(name, ix, g, dP[ix], rel)


if __name__ == "__main__":
    gradient_check([0, 1, 2, 3], [1, 2, 3, 4], np.zeros((hidden_size, 1)))
