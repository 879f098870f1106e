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
    fix_c: str = ""  # the same fix for C code, where it reads differently

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
        "dWhy += np.outer(dy, h[t + 1])   # the state the logits came from (h[0] holds h0;\n"
        "                                 # in Karpathy's hs[-1] = hprev indexing, hs[t])"),
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

FIX_C = {
    "softmax.double-exp": "for (k = 0; k < Y; k++) { p[k] = expf(z[k] - zmax); sum += p[k]; }\n"
                          "for (k = 0; k < Y; k++) p[k] /= sum;   /* not expf(p[k]) / sum */",
    "softmax.sum-logits": "for (k = 0; k < Y; k++) { p[k] = expf(z[k] - zmax); sum += p[k]; }"
                          "  /* sum p[k], not z[k] */",
    "softmax.unstable": "float zmax = z[0]; for (k = 1; k < Y; k++) if (z[k] > zmax) zmax = z[k];\n"
                        "p[k] = expf(z[k] - zmax);",
    "loss.dy-sign": "for (k = 0; k < Y; k++) dy[k] = p[t][k];\ndy[targets[t]] -= 1.0f;   /* p - onehot */",
    "loss.mean-grad-sum": "return loss;   /* or divide every gradient by T as well */",
    "rnn.dwhy-uses-prev-h": "dWhy[i*H + j] += dy[i] * h[(t+1)*H + j];   /* the state the logits came from */",
    "rnn.dwhh-uses-current-h": "dWhh[i*H + j] += draw[i] * h[t*H + j];   /* the state that went into step t */",
    "rnn.missing-dh-next": "dh[i] = dh_next[i];  for (k = 0; k < Y; k++) dh[i] += Why[k*H + i] * dy[k];",
    "rnn.whh-not-transposed": "dh_next[j] += Whh[i*H + j] * draw[i];   /* Whh^T: sum over i, the row */",
    "rnn.tanh-derivative-missing": "draw[i] = (1.0f - h1[i] * h1[i]) * dh[i];",
    "grad.overwrite-not-accumulate": "dW[i*n + j] += ...;   /* +=: every time step contributes */",
    "grad.not-reset": "memset(grads[g], 0, n_g * sizeof(float));   /* every gradient, before the loop */",
    "lstm.state-offset": "const float *h_t = h + (t+1)*H, *c_t = c + (t+1)*H, *c_prev = c + t*H;",
    "lstm.cprev-wraparound": "const float *c_prev = c + t*H;   /* c[0] is c0: never index t-1 here */",
    "lstm.gate-derivative-reapplied": "do_raw[i] = do_[i] * o[i] * (1.0f - o[i]);   /* o is already sigmoid(..) */",
    "lstm.cell-tanh-derivative-missing": "dc[i] = dc_next[i] + dh[i] * o[i] * (1.0f - tc[i] * tc[i]);",
    "lstm.dc-next-missing-forget": "dc_next[i] = dc[i] * f[i];",
    "lstm.dh-next-wrong-slice": "for (i = 0; i < H; i++) dh_next[i] = dv[i];   /* v = [h; x]: first H */",
}
BUGS = [Bug(b.id, b.archs, b.title, b.fix, b.variants, FIX_C.get(b.id, "")) for b in BUGS]

# Bugs particular to batched layer code (`rnn_layers.py`, CONTRACT §2.2b), ids added here.
BUGS += [
    Bug("batch.sum-missing", ("layers",),
        "Weight or bias gradient not summed over the batch",
        "dWx = x.T @ dz          # (D, H): the matmul sums over all N examples\n"
        "db = dz.sum(axis=0)     # (H,): a sum over the batch, not a mean, not dz[0]"),
    Bug("batch.bias-wrong-axis", ("layers",),
        "Bias gradient summed over the wrong axis",
        "db = dz.sum(axis=0)     # (H,): sum over the batch axis 0 only, keep the hidden axis"),
]

# The same fixes in the batched layer API's own words (x @ Wx layouts, caches).
FIX_LAYERS = {
    "rnn.missing-dh-next": "dprev_h = np.zeros_like(h0)                     # (N, H)\n"
                           "for t in reversed(range(T)):\n"
                           "    dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, cache[t])",
    "rnn.tanh-derivative-missing": "dz = dnext_h * (1 - next_h**2)                  # (N, H) back through tanh",
    "rnn.whh-not-transposed": "dprev_h = dz @ Wh.T                             # (N, H) next_h used prev_h @ Wh",
    "grad.overwrite-not-accumulate": "dWx += dWx_t; dWh += dWh_t; db += db_t           # every step adds its share",
    "lstm.dc-next-missing-forget": "dprev_c = dc * f                                # (N, H) next_c = f * prev_c + i * g",
    "lstm.cell-tanh-derivative-missing": "dc = dnext_c + dnext_h * o * (1 - np.tanh(next_c)**2)   # (N, H)",
    "lstm.gate-derivative-reapplied": "da_f = df * f * (1 - f)                         # f is already sigmoid(a_f)\n"
                                      "da_g = dg * (1 - g**2)                          # g is already tanh(a_g)",
}

BY_ID = {b.id: b for b in BUGS}
# bugs found by behaviour, layout or probes rather than by a mutant of the reference
NOT_MUTANTS = {"grad.overwrite-not-accumulate", "grad.not-reset", "layout.gate-order",
               "softmax.unstable"}


def mutants(arch: str) -> list[str]:
    return [m for b in BUGS if b.id not in NOT_MUTANTS for m in b.mutants(arch)]
