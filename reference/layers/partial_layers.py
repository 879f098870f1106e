"""
Batched RNN / LSTM layers in the style of the course assignment file
rnn_layers.py, handed in half done: the vanilla-RNN functions are complete and
correct, the LSTM functions are still the unimplemented skeleton.

Shapes: N batch, T time steps, D input size, H hidden size.
  RNN : next_h = tanh(x @ Wx + prev_h @ Wh + b)        Wx (D,H), Wh (H,H), b (H,)
  LSTM: Wx (D,4H), Wh (H,4H), b (4H,), gate order i, f, o, g (TODO)
"""
import numpy as np


def sigmoid(x):
    """Numerically stable logistic function."""
    e = np.exp(-np.abs(x))                              # in (0, 1], never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# ----------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    z = x @ Wx + prev_h @ Wh + b                        # (N,H)
    next_h = np.tanh(z)                                 # (N,H)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (1.0 - next_h ** 2)                  # (N,H)
    dx = dz @ Wx.T                                      # (N,D)
    dprev_h = dz @ Wh.T                                 # (N,H)
    dWx = x.T @ dz                                      # (D,H)
    dWh = prev_h.T @ dz                                 # (H,H)
    db = dz.sum(axis=0)                                 # (H,)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))                             # (N,T,H)
    steps = []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        steps.append(step_cache)
    cache = (steps, D)
    return h, cache


def rnn_backward(dh, cache):
    steps, D = cache
    N, T, H = dh.shape
    dx = np.zeros((N, T, D))                            # (N,T,D)
    dWx = np.zeros((D, H))                              # (D,H)
    dWh = np.zeros((H, H))                              # (H,H)
    db = np.zeros(H)                                    # (H,)
    dh_next = np.zeros((N, H))                          # (N,H) from step t+1
    for t in reversed(range(T)):
        dx_t, dh_next, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dh_next, steps[t])
        dx[:, t] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dh_next                                       # (N,H)
    return dx, dh0, dWx, dWh, db


# ----------------------------------------------------------------------------
# LSTM (not done yet)
# ----------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Forward pass for a single timestep of an LSTM (gate order i, f, o, g)."""
    next_h, next_c, cache = None, None, None
    ##########################################################################
    # TODO: Implement the forward pass for a single timestep of an LSTM.     #
    # You may want to use the numerically stable sigmoid implementation      #
    # above.                                                                 #
    ##########################################################################
    pass
    ##########################################################################
    #                             END OF YOUR CODE                           #
    ##########################################################################
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward pass for a single timestep of an LSTM."""
    # TODO: backprop through the cell state and the four gates.
    raise NotImplementedError("lstm_step_backward")


def lstm_forward(x, h0, Wx, Wh, b):
    """Forward pass for an LSTM over an entire sequence (c0 = 0)."""
    ##########################################################################
    # TODO: Implement the forward pass for an LSTM over an entire timeseries.#
    # You should use the lstm_step_forward function that you just defined.   #
    ##########################################################################
    pass
    ##########################################################################
    #                             END OF YOUR CODE                           #
    ##########################################################################


def lstm_backward(dh, cache):
    """Backward pass for an LSTM over an entire sequence."""
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    ##########################################################################
    # TODO: Implement the backward pass for an LSTM over an entire timeseries#
    # You should use the lstm_step_backward function that you just defined.  #
    ##########################################################################
    pass
    ##########################################################################
    #                             END OF YOUR CODE                           #
    ##########################################################################
    return dx, dh0, dWx, dWh, db
