"""The known bugs (CONTRACT §6 and the GRU bugs defined here): how to plant each in the
reference (mutant variants), what to call it, and how to fix it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    id: str
    archs: tuple[str, ...]
    title: str
    fix: str  # a two- or three-line snippet, in the reference's naming
    variants: tuple[str, ...] = ("",)  # mutant variants planted in the oracle ("" = plain)

    def mutants(self, arch: str) -> list[str]:
        if arch not in self.archs:
            return []
        return [self.id + (f":{v}" if v else "") for v in self.variants]


ALL = ("rnn", "lstm", "gru")
BUGS: list[Bug] = [
    Bug("softmax.double-exp", ALL, "Logits exponentiated twice",
        "e = np.exp(z - np.max(z))      # exp once, of the raw logits\np = e / np.sum(e)               # not np.exp(e) / ...",
        variants=("", "shift", "softmax", "softmax-raw")),
    Bug("softmax.sum-logits", ALL, "Softmax denominator sums the raw logits",
        "e = np.exp(z - np.max(z))\np = e / np.sum(e)               # sum the exponentials, not z",
        variants=("", "shift")),
    Bug("softmax.unstable", ALL, "Softmax overflows on large logits (no max-subtraction)",
        "e = np.exp(z - np.max(z))      # subtracting the max changes nothing but overflow\np = e / np.sum(e)"),
    Bug("loss.dy-sign", ALL, "Output gradient has the wrong sign (y - p instead of p - y)",
        "dy = np.copy(p)\ndy[target] -= 1                 # dL/dz = p - onehot(target)"),
    Bug("loss.mean-grad-sum", ALL, "Loss averaged over time but gradients summed (or the reverse)",
        "loss /= T\nfor g in grads.values(): g /= T   # scale loss and gradients alike",
        variants=("mean-loss", "mean-grad")),
    Bug("rnn.dwhy-uses-prev-h", ("rnn",), "dWhy built from the previous hidden state h[t]",
        "dWhy += np.outer(dy, hs[t])    # hs[t] must be the state the logits were computed from,\n"
        "                                # i.e. h[t+1] when hs[0] holds h0"),
    Bug("rnn.dwhh-uses-current-h", ("rnn",), "dWhh built from the current hidden state h[t+1]",
        "dWhh += np.outer(dhraw, h_prev)  # the state that went INTO step t: hs[t-1] in\n"
        "                                  # Karpathy's indexing, h[t] with h[0] = h0"),
    Bug("rnn.missing-dh-next", ("rnn",), "Gradient from later time steps (dh_next) not added",
        "dh = Why.T @ dy + dh_next         # later steps reach h[t+1] through dh_next"),
    Bug("rnn.whh-not-transposed", ("rnn",), "dh_next uses Whh instead of Whh.T",
        "dh_next = Whh.T @ dhraw           # back through h[t+1] = tanh(Whh @ h[t] + ...)"),
    Bug("rnn.tanh-derivative-missing", ("rnn",), "No tanh derivative: dhraw = dh",
        "dhraw = (1 - h * h) * dh          # h = tanh(a) is the state of this step"),
    Bug("grad.overwrite-not-accumulate", ALL, "Gradient assigned (=) instead of accumulated (+=)",
        "dW += ...   # parameters are shared by every time step: sum their contributions"),
    Bug("grad.not-reset", ALL, "Gradient accumulators (or dh_next) not reset between calls",
        "dWxh, dWhh = np.zeros_like(Wxh), np.zeros_like(Whh)  # at the start of every call\n"
        "dh_next = np.zeros_like(h0)"),
    Bug("lstm.state-offset", ("lstm",), "Backward uses h[t]/c[t] as the current state",
        "h_t, c_t = h[t+1], c[t+1]         # lists start with the initial state:\n"
        "c_prev = c[t]                     # index t+1 is the state after step t",
        variants=("", "shifted")),
    Bug("lstm.cprev-wraparound", ("lstm",), "Previous cell state read as c[t-1] (wraps to the last state at t = 0)",
        "c_prev = c[t]                     # with c[0] = c0; c[t-1] is c[-1] = the LAST state at t = 0",
        variants=("", "first-step")),
    Bug("lstm.gate-derivative-reapplied", ("lstm",), "Gate derivative applies the nonlinearity again",
        "do = dh * np.tanh(c_t) * o * (1 - o)   # o is already sigmoid(...): not sigmoid(o)\n"
        "dg = dc * i * (1 - g ** 2)             # g is already tanh(...)",
        variants=("f", "i", "g", "o", "all")),
    Bug("lstm.cell-tanh-derivative-missing", ("lstm",), "Cell-state gradient lacks 1 - tanh(c)^2",
        "dc = dc_next + dh * o * (1 - np.tanh(c_t) ** 2)"),
    Bug("lstm.dc-next-missing-forget", ("lstm",), "dc_next = dc instead of dc * f",
        "dc_next = dc * f                  # c[t+1] = f * c[t] + ...: the forget gate scales it"),
    Bug("lstm.dh-next-wrong-slice", ("lstm",), "dh_next taken from the wrong part of dv",
        "dh_next = dv[:H]                  # the hidden part of v = [h; x] (dv[X:] for [x; h])",
        variants=("hx", "xh")),
    Bug("layout.gate-order", ("lstm", "gru"), "Gates in another order than declared",
        "# declare the order your stacked matrix really uses, e.g. in the spec:\n"
        "# [layout] gate_order = \"figo\""),
    Bug("gru.update-gate-flipped", ("gru",), "Backward uses the other update-gate convention",
        "dn = dh * (1 - z); dz = dh * (h_prev - n)   # for h' = (1 - z) * n + z * h_prev\n"
        "dh_prev = dh * z + ...                       # the direct path"),
    Bug("gru.reset-after", ("gru",), "Reset gate applied after the recurrent product",
        "n = np.tanh(Wn @ np.concatenate([r * h, x]) + bn)  # reset h BEFORE multiplying"),
    Bug("gru.gate-derivative-reapplied", ("gru",), "GRU gate derivative applies sigmoid again",
        "dz_raw = dz * z * (1 - z)          # z is already sigmoid(...)",
        variants=("z", "r", "all")),
    Bug("gru.direct-path-missing", ("gru",), "dh_prev lacks the direct z * dh term",
        "dh_prev = dh * z + dh_from_candidate + dv[:H]"),
]

BY_ID = {b.id: b for b in BUGS}
# bugs found by behaviour, layout or probes rather than by a mutant of the reference
NOT_MUTANTS = {"grad.overwrite-not-accumulate", "grad.not-reset", "layout.gate-order",
               "softmax.unstable"}


def mutants(arch: str) -> list[str]:
    return [m for b in BUGS if b.id not in NOT_MUTANTS for m in b.mutants(arch)]
