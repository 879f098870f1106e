"""Every diagnosis id (CONTRACT §6 and §7) in one place: its title, its fix in each language
(Python, C, the layer API), and, for the bugs found by planting them in the reference, the
mutant variants and where they can be planted (sequence architectures, layer units)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bug:
    id: str
    archs: tuple[str, ...]  # sequence architectures whose reference can plant it
    title: str
    # a two- or three-line snippet per language: "python" (always; in the reference's
    # naming), "c" and "layers" (the layer API's) where the fix reads differently there
    fixes: dict[str, str] = field(default_factory=dict)
    variants: tuple[str, ...] = ("",)  # mutant variants planted in the oracle ("" = plain)
    units: tuple[str, ...] = ()  # layer units (layer_api) whose reference can plant it
    unit_variants: tuple[str, ...] = ("",)  # its variants there (the layer API's gate order)
    planted: bool = True  # False: found by behaviour, a probe, the layout or a measurement
    layer_title: str = ""  # the title for layer code, where it names the function

    @property
    def fix(self) -> str:
        """The Python fix in the reference's names."""
        return self.fix_in("python")

    def mutants(self, arch: str) -> list[str]:
        if arch not in self.archs or not self.planted:
            return []
        return [self.id + (f":{v}" if v else "") for v in self.variants]

    def unit_mutants(self, unit: str) -> list[str]:
        if unit not in self.units or not self.planted:
            return []
        return [self.id + (f":{v}" if v else "") for v in self.unit_variants]

    def fix_in(self, language: str, **names: str) -> str:
        """The fix in ``language`` ("python", "c" or "layers"; else the Python one), with the
        user's names filled in where it names them (``user_names`` makes them for a layout;
        functions: ``backward``, ``forward``, ``unit``); a name not given is the reference's."""
        return _fill(_fill(self.fixes.get(language) or self.fixes["python"], names),
                     REFERENCE_NAMES)

    def title_in(self, language: str, **names: str) -> str:
        return _fill(self.layer_title if language == "layers" and self.layer_title
                     else self.title, names)


def _fill(text: str, names: dict[str, str]) -> str:
    filled = text
    for k, v in names.items():  # not str.format: C snippets have braces of their own
        filled = filled.replace("{" + k + "}", v)
    # names of other lengths than their placeholders: the comments line up again
    return filled if filled == text else _align_comments(filled)


def _align_comments(text: str) -> str:
    """Line up the trailing comments of a snippet's code lines (names filled in have
    changed their lengths); a comment line, or a comment that goes on on a line of its own,
    keeps its place."""
    lines = text.split("\n")
    parts = [ln.partition("  # ") if "  # " in ln and ln.strip()[:1] != "#" else None
             for ln in lines]
    width = max((len(p[0].rstrip()) for p in parts if p), default=0)
    out = []
    for ln, p in zip(lines, parts, strict=True):
        if p:
            out.append(f"{p[0].rstrip():<{width}}  # {p[2]}")
        elif ln[:1] == " " and ln.strip()[:1] == "#" and width:  # a comment going on
            out.append(" " * (width + 2) + ln.strip())
        else:
            out.append(ln)
    return "\n".join(out)


def _reference_names() -> dict[str, str]:
    """What the placeholders of the Python fixes stand for in the reference's own names:
    ``{Whh}`` a parameter, ``{dWhh}`` its gradient, ``{T}`` the transpose an outer product
    needs in x @ W storage, ``{WT}`` the one a backward product needs, ``{G}``/``{dG}`` the
    diagnosis's first group, ``{zero_grads}`` a line zeroing its gradients."""
    from bpttcheck.archmeta import META
    out = {"T": "", "WT": ".T", "G": "W", "dG": "dW",
           "zero_grads": "dWxh, dWhh = np.zeros_like(Wxh), np.zeros_like(Whh)",
           "gate_grads": "dWf, dWi, dWg, dWo"}
    for m in META.values():
        for k in m.param_names:
            out[k], out["d" + k] = k, "d" + k
    return out


REFERENCE_NAMES = _reference_names()


def user_names(layout, groups: list[str]) -> dict[str, str]:
    """The placeholders of a Python fix in the user's code (``layout``: a bpttcheck.layout
    Layout): each group as their array or its slice (``dW[H:2*H]``), the transposes their
    storage needs, and the diagnosis's ``groups`` (a stacked array whose every gate block is
    named stands for itself)."""
    out = {"T": ".T" if layout.transposed else "", "WT": "" if layout.transposed else ".T"}
    for k in REFERENCE_NAMES:
        if k not in ("T", "WT", "G", "dG", "zero_grads", "gate_grads") and k[0] != "d":
            out[k], out["d" + k] = layout.code_name(k), layout.code_name(k, grad=True)
    gates: list[str] = []  # the LSTM's gate weights' gradients: a stacked array once
    for k in ("Wf", "Wi", "Wg", "Wo"):
        block = layout.stacked_block(k)
        name = "d" + block[0] if block else layout.code_name(k, grad=True)
        if name not in gates:
            gates.append(name)
    out["gate_grads"] = ", ".join(gates)
    arrays: list[str] = []
    for k in groups:
        block = layout.stacked_block(k)
        whole = block and all(f"{k[0]}{g}" in groups for g in layout.stacked)
        name = block[0] if block and whole else layout.code_name(k)
        if name not in arrays:
            arrays.append(name)
    if arrays:
        out["G"], out["dG"] = arrays[0], "d" + arrays[0]
        two = arrays[:2]
        out["zero_grads"] = (", ".join("d" + a for a in two) + " = "
                             + ", ".join(f"np.zeros_like({a})" for a in two))
    return out


ALL = ("rnn", "lstm", "gru")
LAYER_GATES = ("i", "f", "o", "g")  # the layer API's gate order (oracle/layers.py)
BUGS: list[Bug] = [
    Bug('softmax.double-exp', ALL,
        'Logits exponentiated twice',
        fixes={'python': 'e = np.exp(z - np.max(z))      # exp once, of the raw logits\n'
                         'p = e / np.sum(e)               # not np.exp(e) / ...',
               'c': 'for (k = 0; k < Y; k++) { p[k] = expf(z[k] - zmax); sum += p[k]; }\n'
                    'for (k = 0; k < Y; k++) p[k] /= sum;   /* not expf(p[k]) / sum */'},
        variants=('', 'shift', 'softmax', 'softmax-raw')),
    Bug('softmax.sum-logits', ALL,
        'Softmax denominator sums the raw logits',
        fixes={'python': 'e = np.exp(z - np.max(z))\n'
                         'p = e / np.sum(e)               # sum the exponentials, not z',
               'c': 'for (k = 0; k < Y; k++) { p[k] = expf(z[k] - zmax); sum += p[k]; }  /* sum p[k], not z[k] */'},
        variants=('', 'shift')),
    Bug('softmax.unstable', ALL,
        'Softmax overflows on large logits (no max-subtraction)',
        fixes={'python': 'e = np.exp(z - np.max(z))      # subtracting the max changes nothing but overflow\n'
                         'p = e / np.sum(e)',
               'c': 'float zmax = z[0]; for (k = 1; k < Y; k++) if (z[k] > zmax) zmax = z[k];\n'
                    'p[k] = expf(z[k] - zmax);'},
        planted=False),
    Bug('loss.dy-sign', ALL,
        'Output gradient has the wrong sign (y - p instead of p - y)',
        fixes={'python': 'dy = np.copy(p)\n'
                         'dy[target] -= 1                 # dL/dz = p - onehot(target)',
               'c': 'for (k = 0; k < Y; k++) dy[k] = p[t][k];\n'
                    'dy[targets[t]] -= 1.0f;   /* p - onehot */'}),
    Bug('loss.mean-grad-sum', ALL,
        'Loss averaged over time but gradients summed (or the reverse)',
        fixes={'python': 'loss /= T\n'
                         'for g in grads.values(): g /= T   # scale loss and gradients alike',
               'c': 'return loss;   /* or divide every gradient by T as well */'},
        variants=('mean-loss', 'mean-grad')),
    Bug('loss.mean-over-classes', ALL,
        'Output gradient (or loss and gradient) divided by the number of classes',
        fixes={'python': 'loss += -np.log(p[target])        # a sum over the classes (one term), not np.mean(onehot * log p)\n'
                         'dy = p.copy(); dy[target] -= 1    # dL/dz = p - onehot: no division by vocab_size',
               'c': 'loss -= logf(p[targets[t]]);   /* not divided by Y */\n'
                    'for (k = 0; k < Y; k++) dy[k] = p[k] - (k == targets[t]);   /* no / Y */'},
        variants=('grads', 'both')),
    Bug('rnn.dwhy-uses-prev-h', ('rnn',),
        'dWhy built from the previous hidden state h[t]',
        fixes={'python': '{dWhy} += np.outer(dy, h[t + 1]){T}   # the state the logits came from (h[0] holds h0;\n'
                       "                                 # in Karpathy's hs[-1] = hprev indexing, hs[t])",
               'c': 'dWhy[i*H + j] += dy[i] * h[(t+1)*H + j];   /* the state the logits came from */'}),
    Bug('rnn.dwhh-uses-current-h', ('rnn',),
        'dWhh built from the current hidden state h[t+1]',
        fixes={'python': '{dWhh} += np.outer(dhraw, h_prev){T}  # the state that went INTO step t: hs[t-1] in\n'
                       "                                  # Karpathy's indexing, h[t] with h[0] = h0",
               'c': 'dWhh[i*H + j] += draw[i] * h[t*H + j];   /* the state that went into step t */',
               'layers': 'dWh = prev_h.T @ dz                             # (H, H) the state that went into the step'},
        units=('rnn_step', 'rnn')),
    Bug('rnn.missing-dh-next', ('rnn',),
        'Gradient from later time steps (dh_next) not added',
        fixes={'python': 'dh = {Why}{WT} @ dy + dh_next         # later steps reach h[t+1] through dh_next',
               'c': 'dh[i] = dh_next[i];  for (k = 0; k < Y; k++) dh[i] += Why[k*H + i] * dy[k];',
               'layers': 'dprev_h = np.zeros_like(h0)                     # (N, H)\n'
                         'for t in reversed(range(T)):\n'
                         '    dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, cache[t])'},
        units=('rnn', 'gru')),
    Bug('lstm.missing-dh-next', ('lstm',),
        'LSTM dh lacks the gradient from later time steps (dh_next)',
        fixes={'python': 'dh = {Wy}{WT} @ dy + dh_next          # h[t+1] also feeds step t+1: add what came back from it\n'
                         'dh_next = dv[:H]                  # ...and keep passing it back (dc_next too)',
               'c': 'for (i = 0; i < H; i++) { dh[i] = dh_next[i];   /* not 0: later steps reach h[t+1] */\n'
                    '    for (k = 0; k < Y; k++) dh[i] += Wy[k*H + i] * dy[k]; }',
               'layers': 'dprev_h = np.zeros_like(h0)                     # (N, H)\n'
                         'for t in reversed(range(T)):\n'
                         '    dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])'},
        units=('lstm',)),
    Bug('rnn.whh-not-transposed', ('rnn',),
        'dh_next uses Whh instead of Whh.T',
        fixes={'python': 'dh_next = {Whh}{WT} @ dhraw           # back through h[t+1] = tanh({Whh} @ h[t] + ...)',
               'c': 'dh_next[j] += Whh[i*H + j] * draw[i];   /* Whh^T: sum over i, the row */',
               'layers': 'dprev_h = dz @ Wh.T                             # (N, H) next_h used prev_h @ Wh'},
        units=('rnn_step', 'rnn')),
    Bug('rnn.tanh-derivative-missing', ('rnn',),
        'No tanh derivative: dhraw = dh',
        fixes={'python': 'dhraw = (1 - h * h) * dh          # h = tanh(a) is the state of this step',
               'c': 'draw[i] = (1.0f - h1[i] * h1[i]) * dh[i];',
               'layers': 'dz = dnext_h * (1 - next_h**2)                  # (N, H) back through tanh'},
        units=('rnn_step', 'rnn')),
    Bug('grad.overwrite-not-accumulate', ALL,
        'Gradient assigned (=) instead of accumulated (+=)',
        fixes={'python': '{dG} += ...   # parameters are shared by every time step: sum their contributions',
               'c': 'dW[i*n + j] += ...;   /* +=: every time step contributes */',
               'layers': 'dWx += dWx_t; dWh += dWh_t; db += db_t           # every step adds its share'},
        planted=False),
    Bug('grad.params-modified', ALL,
        'The call changes the parameters it was given',
        fixes={'python': 'grads = {k: np.zeros_like(v) for k, v in params.items()}  # own buffers, never the parameters\n'
                         'loss, grads, h = loss_and_grads(params, ...)         # the update (SGD, Adagrad) belongs\n'
                         'for k in params: params[k] -= lr * grads[k]          # in the training loop, after the call',
               'c': '/* params are const: write gradients only into grads[], and update the\n'
                    '   parameters in the training loop, after the call */',
               'layers': 'dWx = np.zeros_like(Wx)                         # a new array, not Wx itself\n'
                         '# update parameters outside the backward function'},
        planted=False),
    Bug('grad.inputs-modified', ALL,
        'The call writes into an array it was given (an upstream gradient, an input, the cache)',
        fixes={'python': 'dh = dh.copy()   # first line of the function: a copy of its own to write into\n'
                         '# or write into a new array: dh_t = dprev_h + dh[:, t, :]',
               'c': '/* the arrays passed in are the caller\'s: write only into your own buffers\n'
                    '   or the output arrays */',
               'layers': 'dh = dh.copy()   # first line of {backward}: the caller\'s dh stays as it was\n'
                         '# or write into a new array: dh_t = dprev_h + dh[:, t, :]'},
        layer_title='{backward} writes into an array it was given', planted=False),
    Bug('grad.numerical', ALL,
        'Gradients computed numerically, not by a backward pass',
        fixes={'python': '# walk the forward backwards, reusing what the forward stored:\n'
                         'dy = p.copy(); dy[target] -= 1      # dL/dlogits, then dW += np.outer(dy, h), ...\n'
                         '# keep finite differences for a gradient check in a test, not in the gradient function',
               'c': '/* compute the gradients in a backward loop over t = T-1 .. 0 from the stored\n'
                    '   activations; finite differences belong in a test, not in backward() */'},
        planted=False),
    Bug('grad.not-reset', ALL,
        'Gradient accumulators (or dh_next) not reset between calls',
        fixes={'python': '{zero_grads}  # at the start of every call\n'
                         'dh_next = np.zeros_like(h0)',
               'c': 'memset(grads[g], 0, n_g * sizeof(float));   /* every gradient, before the loop */'},
        planted=False),
    Bug('lstm.state-offset', ('lstm',),
        'Backward uses h[t]/c[t] as the current state',
        fixes={'python': 'h_t, c_t = h[t+1], c[t+1]  # h[0], c[0] hold the initial state: index t+1 is step t\'s\n'
                         'c_prev = c[t]  # (dicts with hs[-1] = hprev: hs[t], cs[t] and cs[t-1])\n'
                         '{dWy} += np.outer(dy, h_t){T}  # the state the logits of step t came from\n'
                         'dc = dc_next + dh * o * (1 - np.tanh(c_t) ** 2)  # and the cell state they came through\n'
                         '# {gate_grads} follow from dc, c_prev and v = [h[t]; x[t]]',
               'c': 'const float *h_t = h + (t+1)*H, *c_t = c + (t+1)*H, *c_prev = c + t*H;'},
        variants=('', 'shifted')),
    Bug('lstm.cprev-wraparound', ('lstm',),
        'Previous cell state read as c[t-1] (wraps to the last state at t = 0)',
        fixes={'python': 'c_prev = c[t]                     # with c[0] = c0; c[t-1] is c[-1] = the LAST state at t = 0',
               'c': 'const float *c_prev = c + t*H;   /* c[0] is c0: never index t-1 here */'},
        variants=('', 'first-step')),
    Bug('lstm.gate-derivative-reapplied', ('lstm',),
        'Gate derivative applies the nonlinearity again',
        fixes={'python': 'do = dh * np.tanh(c_t) * o * (1 - o)   # o is already sigmoid(...): not sigmoid(o)\n'
                         'dg = dc * i * (1 - g ** 2)             # g is already tanh(...)',
               'c': 'do_raw[i] = do_[i] * o[i] * (1.0f - o[i]);   /* o is already sigmoid(..) */',
               'layers': 'da_f = df * f * (1 - f)                         # f is already sigmoid(a_f)\n'
                         'da_g = dg * (1 - g**2)                          # g is already tanh(a_g)'},
        variants=('f', 'i', 'g', 'o', 'all'), units=('lstm_step', 'lstm'), unit_variants=LAYER_GATES),
    Bug('lstm.cell-tanh-derivative-missing', ('lstm',),
        'Cell-state gradient lacks 1 - tanh(c)^2',
        fixes={'python': 'dc = dc_next + dh * o * (1 - np.tanh(c_t) ** 2)',
               'c': 'dc[i] = dc_next[i] + dh[i] * o[i] * (1.0f - tc[i] * tc[i]);',
               'layers': 'dc = dnext_c + dnext_h * o * (1 - np.tanh(next_c)**2)   # (N, H)'},
        units=('lstm_step', 'lstm')),
    Bug('lstm.dc-next-missing-forget', ('lstm',),
        'dc_next = dc instead of dc * f',
        fixes={'python': 'dc_next = dc * f                  # c[t+1] = f * c[t] + ...: the forget gate scales it',
               'c': 'dc_next[i] = dc[i] * f[i];',
               'layers': 'dprev_c = dc * f                                # (N, H) next_c = f * prev_c + i * g'},
        units=('lstm_step', 'lstm')),
    Bug('lstm.dh-next-wrong-slice', ('lstm',),
        'dh_next taken from the wrong part of dv',
        fixes={'python': 'dh_next = dv[:H]                  # the hidden part of v = [h; x] (dv[X:] for [x; h])',
               'c': 'for (i = 0; i < H; i++) dh_next[i] = dv[i];   /* v = [h; x]: first H */'},
        variants=('hx', 'xh')),
    Bug('layout.gate-order', ('lstm', 'gru'),
        'Gate blocks of the stacked matrix in the wrong order',
        fixes={'python': '# declare the order your stacked matrix really uses, e.g. in the spec:\n'
                         '# [layout] gate_order = "figo"'},
        planted=False),
    Bug('gru.update-gate-flipped', ('gru',),
        'Backward uses the other update-gate convention',
        fixes={'python': "dn = dh * (1 - z); dz = dh * (h_prev - n)   # for h' = (1 - z) * n + z * h_prev\n"
                         'dh_prev = dh * z + ...                       # the direct path'}),
    Bug('gru.reset-after', ('gru',),
        'Reset gate applied after the recurrent product',
        fixes={'python': 'n = np.tanh({Wn} @ np.concatenate([r * h, x]) + {bn})  # reset h BEFORE multiplying'}),
    Bug('gru.gate-derivative-reapplied', ('gru',),
        'GRU gate derivative applies sigmoid again',
        fixes={'python': 'dz_raw = dz * z * (1 - z)          # z is already sigmoid(...)'},
        variants=('z', 'r', 'all'), units=('gru_step', 'gru'), unit_variants=('z', 'r')),
    Bug('gru.direct-path-missing', ('gru',),
        'dh_prev lacks the direct z * dh term',
        fixes={'python': 'dh_prev = dh * z + dh_from_candidate + dv[:H]',
               'layers': 'dh_prev = dnext_h * z + ...                     # h\' = (1 - z) * n + z * h_prev: the direct path'},
        units=('gru_step', 'gru')),

    # bugs particular to batched layer code (`rnn_layers.py`, CONTRACT §2.2b)
    Bug("batch.sum-missing", (),
        "Weight or bias gradient not summed over the batch",
        fixes={"python": "dWx = x.T @ dz          # (D, H): the matmul sums over all N examples\n"
                         "db = dz.sum(axis=0)     # (H,): a sum over the batch, not a mean, not dz[0]"},
        planted=False),
    Bug("batch.bias-wrong-axis", (),
        "Bias gradient summed over the wrong axis",
        fixes={"python": "db = dz.sum(axis=0)     # (H,): sum over the batch axis 0 only, keep the hidden axis"},
        planted=False),
    # what the checker says when no known bug matches, or layer code does not run at all;
    # {backward}, {forward} and {unit} are filled in with the layer function's names
    Bug("unmatched", (),
        "No known bug matches exactly",
        fixes={"python": "compare your backward loop line by line with the derivative of your "
                         "forward pass; the groups and time steps named here are where to look",
               "layers": "Compare {backward} line by line with the derivative of {forward}; "
                         "the failing groups above show where to look."},
        layer_title="{backward}: no known bug matches", planted=False),
    Bug("layer.not-implemented", (),
        "A layer function is still a stub",
        fixes={"python": "Finish the function and return the tuple its docstring names."},
        layer_title="{unit}: not implemented yet", planted=False),
    Bug("layer.not-run", (),
        "A layer function raised an exception",
        fixes={"python": "Fix the line shown; a shape in the traceback usually names the array "
                         "that is off."},
        layer_title="{unit}: raised an exception", planted=False),
]

BY_ID = {b.id: b for b in BUGS}


def mutants(arch: str) -> list[str]:
    """Every planted bug (with its variants) the reference of ``arch`` can reproduce."""
    return [m for b in BUGS for m in b.mutants(arch)]


def unit_mutants(unit: str) -> list[str]:
    """The same for one layer unit (rnn_step, rnn, lstm_step, lstm)."""
    return [m for b in BUGS for m in b.unit_mutants(unit)]
