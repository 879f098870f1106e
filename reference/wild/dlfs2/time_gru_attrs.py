# bpttcheck-expect: pass
# bpttcheck-style: dlfs2
# bpttcheck-arch: gru
# bpttcheck-variant: book-repo GRU layout: no params/grads lists, gradients left in self.dWx / self.dWh
"""
GRU and TimeGRU as the book's repository keeps them (the extra layers at the end of
common/time_layers.py): the weights are attributes self.Wx (D, 3H) and self.Wh (H, 3H), column
blocks z | r | h~, no bias, and backward() stores the summed gradients in self.dWx and self.dWh
instead of filling a grads list.
    z = sigmoid(x Wxz + h Whz)    r = sigmoid(x Wxr + h Whr)
    h~ = tanh(x Wxh + (r * h) Whh)    h_next = (1 - z) * h + z * h~
"""
import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class GRU:
    def __init__(self, Wx, Wh):
        self.Wx, self.Wh = Wx, Wh
        self.dWx, self.dWh = None, None
        self.cache = None

    def forward(self, x, h_prev):
        H = self.Wh.shape[0]
        Wxz, Wxr, Wxh = self.Wx[:, :H], self.Wx[:, H:2 * H], self.Wx[:, 2 * H:]
        Whz, Whr, Whh = self.Wh[:, :H], self.Wh[:, H:2 * H], self.Wh[:, 2 * H:]

        z = sigmoid(np.dot(x, Wxz) + np.dot(h_prev, Whz))
        r = sigmoid(np.dot(x, Wxr) + np.dot(h_prev, Whr))
        h_hat = np.tanh(np.dot(x, Wxh) + np.dot(r * h_prev, Whh))
        h_next = (1 - z) * h_prev + z * h_hat

        self.cache = (x, h_prev, z, r, h_hat)
        return h_next

    def backward(self, dh_next):
        H = self.Wh.shape[0]
        Wxz, Wxr, Wxh = self.Wx[:, :H], self.Wx[:, H:2 * H], self.Wx[:, 2 * H:]
        Whz, Whr, Whh = self.Wh[:, :H], self.Wh[:, H:2 * H], self.Wh[:, 2 * H:]
        x, h_prev, z, r, h_hat = self.cache

        dh_hat = dh_next * z
        dh_prev = dh_next * (1 - z)

        dt = dh_hat * (1 - h_hat ** 2)
        dWhh = np.dot((r * h_prev).T, dt)
        dhr = np.dot(dt, Whh.T)
        dWxh = np.dot(x.T, dt)
        dx = np.dot(dt, Wxh.T)
        dh_prev += r * dhr

        dz = dh_next * (h_hat - h_prev)
        dt = dz * z * (1 - z)
        dWhz = np.dot(h_prev.T, dt)
        dh_prev += np.dot(dt, Whz.T)
        dWxz = np.dot(x.T, dt)
        dx += np.dot(dt, Wxz.T)

        dr = dhr * h_prev
        dt = dr * r * (1 - r)
        dWhr = np.dot(h_prev.T, dt)
        dh_prev += np.dot(dt, Whr.T)
        dWxr = np.dot(x.T, dt)
        dx += np.dot(dt, Wxr.T)

        self.dWx = np.hstack((dWxz, dWxr, dWxh))
        self.dWh = np.hstack((dWhz, dWhr, dWhh))
        return dx, dh_prev


class TimeGRU:
    def __init__(self, Wx, Wh, stateful=False):
        self.Wx, self.Wh = Wx, Wh
        self.dWx, self.dWh = None, None
        self.layers = None
        self.h, self.dh = None, None
        self.stateful = stateful

    def forward(self, xs):
        N, T, D = xs.shape
        H = self.Wh.shape[0]

        self.layers = []
        hs = np.empty((N, T, H), dtype='f')
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype='f')

        for t in range(T):
            layer = GRU(self.Wx, self.Wh)
            self.h = layer.forward(xs[:, t, :], self.h)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        N, T, H = dhs.shape
        D = self.Wx.shape[0]

        dxs = np.empty((N, T, D), dtype='f')
        self.dWx, self.dWh = 0, 0
        dh = 0
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh = layer.backward(dhs[:, t, :] + dh)
            dxs[:, t, :] = dx
            self.dWx += layer.dWx
            self.dWh += layer.dWh
        self.dh = dh
        return dxs

    def set_state(self, h):
        self.h = h

    def reset_state(self):
        self.h = None
