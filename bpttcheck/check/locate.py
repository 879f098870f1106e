"""Pointing at the line: where the user's backward pass leaves the right path.

The worker records, line by line, every array the user's gradient function assigns or writes
into (sandbox/tracer.py). The reference computes the same intermediate quantities at the same
case (the oracle's ``taps``: dy, dh, the gate pre-activation gradients, dh_next, ... per step)
and, from its per-step contributions, what each gradient accumulator holds after each step.
Walking the records in execution order:

- with a known bug matched exactly (a mutant), the line is the first record whose value is
  what the mutant computes for a quantity where the correct model computes something else —
  where the mutated quantity is first written, or, when it is computed inline, the first
  accumulator it reaches;
- with no bug matched, the line is the first gradient-like record that equals no reference
  quantity while the arrays its line reads still did.

C code has no lines to trace: there the quantity the mutant changes first is named and the
line left out, rather than guessed."""
from __future__ import annotations

import ast
import linecache
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bpttcheck.check.findings import Observation
from bpttcheck.check.probe import Probe
from bpttcheck.result import Location

Label = tuple[str, int | None]  # (quantity, step; None: not of a step)

# what each quantity is, as the reference computes it ({W}: the output matrix's name)
EXPECTED = {
    "p": "softmax(z[t]) = exp(z[t]) / sum(exp(z[t]))", "h": "the hidden state step t produces",
    "z": "the logits Why @ h[t] + by", "a": "the pre-activation Wxh @ x[t] + Whh @ h[t-1] + bh",
    "dy": "p[t] - onehot(y[t]) (the softmax-cross-entropy gradient)",
    "dh": "{Wy}.T @ dy + dh_next (the output's gradient plus what later steps send back)",
    "dh_raw": "(1 - h**2) * dh, with h the state step t produced",
    "dh_next": "Whh.T @ dh_raw",
    "c_prev": "the cell state after step t-1 (c0 at t = 0; index t in a list that starts "
              "with c0)",
    "h_cur": "the hidden state after step t (index t+1 in a list that starts with h0)",
    "c_cur": "the cell state after step t (index t+1 in a list that starts with c0)",
    "do": "dh * tanh(c)", "dc": "dc_next + dh * o * (1 - tanh(c)**2)",
    "df": "dc * c_prev", "di": "dc * g", "dg": "dc * i",
    "da_f": "df * f * (1 - f)", "da_i": "di * i * (1 - i)", "da_g": "dg * (1 - g**2)",
    "da_o": "do * o * (1 - o)", "da": "the gates' pre-activation gradients, stacked",
    "dv": "W.T @ da, the gradient of [h; x]", "dc_next": "dc * f",
    "dn_raw": "dn * (1 - n**2)", "dz_raw": "dz * z * (1 - z)", "dr_raw": "dr * r * (1 - r)",
    "dz": "dh times what z multiplies in h minus what (1 - z) does (before z's sigmoid)",
    "dn": "dh times the weight of the candidate n in h (before n's tanh)",
    "dr": "the gradient at r * h_prev times h_prev (before r's sigmoid)",
    "dh_direct": "dh times the weight of h_prev in h (the path that skips the gates)",
}
EXPECTED_RNN = {"h": "tanh(Wxh @ x[t] + Whh @ h[t-1] + bh), the state step t produces"}
# (weight, the gradient at its output): W.T @ that gradient is what its input receives
BACK_THROUGH = {"rnn": (("Whh", "dh_raw"), ("Why", "dy"), ("Wxh", "dh_raw")),
                "lstm": (*((f"W{k}", f"da_{k}") for k in "figo"), ("Wy", "dy")),
                "gru": (("Wz", "dz_raw"), ("Wr", "dr_raw"), ("Wn", "dn_raw"), ("Wy", "dy"))}
# what a quantity is, in words
WHAT = {"h_cur": "the current hidden state", "c_cur": "the current cell state",
        "c_prev": "the previous cell state", "h": "the hidden state", "c": "the cell state",
        "p": "the softmax output", "dh_raw": "dh_raw (the gradient before the tanh)",
        "dh_next": "dh_next (what step t sends back to step t-1)",
        "dc_next": "dc_next (what step t sends back through the cell)",
        "da": "the stacked gate gradients", "dv": "the gradient of [h; x]"}
# the names people give each quantity (lower case, letters and digits only)
ALIASES = {
    "dy": {"dy", "dz", "dscores", "dlogits", "dout", "dyt", "dp", "dprobs", "delta", "dyhat"},
    "dh": {"dh", "dht", "dhidden", "dhtotal", "dhcur", "dhs"},
    "dh_raw": {"dhraw", "draw", "dtanh", "dhr", "da", "dpre", "dhpre", "dnet", "dhtanh",
               "dzh", "dat", "dtanhraw", "dhraws"},
    "dh_next": {"dhnext", "dhprev", "dhp", "dhn", "dhnxt", "dhprevious", "dhtm1"},
    "dc_next": {"dcnext", "dcprev", "dcp", "dcn", "dctm1"},
    "c_prev": {"cprev", "cp", "ctm1", "cpr", "cold", "clast"},
    "h_cur": {"ht", "hcur", "hcurr", "hnow", "h"},
    "c_cur": {"ct", "ccur", "ccurr", "cnow", "c"},
    "dc": {"dc", "dct", "dcell", "dcs"}, "do": {"do", "dot", "dout", "dog"},
    "df": {"df", "dft", "dfg"}, "di": {"di", "dit", "dig"}, "dg": {"dg", "dgt", "dcbar", "dcc"},
    # d<gate> names either gradient of a gate, before or after its nonlinearity
    "da_f": {"daf", "dfraw", "dfa", "dfpre", "df", "dft", "dfg"},
    "da_i": {"dai", "diraw", "dia", "dipre", "di", "dit", "dig"},
    "da_g": {"dag", "dgraw", "dga", "dgpre", "dcbarraw", "dg", "dgt", "dcbar", "dcc"},
    "da_o": {"dao", "doraw", "doa", "dopre", "do", "dot", "dog"},
    "da": {"da", "dgates", "dz", "difog", "dgatesraw", "draw"},
    "h_prev": {"hprev", "hp", "htm1", "hlast", "hold", "hbefore", "hprevious"},
    "tanh_c": {"tanhc", "tc", "tanhct", "ctanh", "tanhcell"},
    "dn_raw": {"dnraw", "dhc", "dhcraw", "dcand", "dnpre", "dhhat", "dhtilde", "dcandidate",
               "dnhat"},
    "dz_raw": {"dzraw", "dzpre", "dzgraw", "dzgpre", "dug", "duraw", "dz", "dzg"},
    "dr_raw": {"drraw", "drpre", "drgraw", "drgpre", "dr", "drg"},
    "dh_direct": {"dhdirect", "dhprev", "dhp", "dhold", "dh"},
    # a GRU gate's gradient, before its sigmoid's derivative (the names are shared)
    "dz": {"dz", "dzg", "du", "dug"}, "dr": {"dr", "drg"},
    "dn": {"dn", "dnt"},
}
# a name that holds a gradient: dWhh, d_h, grad_W, delta, self.dW, g["by"], W_v_d, Wxh_grad
GRAD_LIKE = re.compile(r"^(self\.)?(d|grad|delta)|^g\[|grad|_d$|_d\[", re.IGNORECASE)


@dataclass(eq=False)
class Rec:
    file: str
    line: int
    name: str
    step: int | None
    value: np.ndarray


class Bank:
    """Reference quantities by size, each matched against a recorded array in one numpy step.

    A Karpathy-size LSTM has thousands of records and hundreds of quantities of each size:
    a few entries of each quantity are compared first, and only the quantities they do not
    rule out are compared whole; an array asked about again is answered from memory."""

    SAMPLE = 8  # entries compared first

    def __init__(self, quantities: dict[Label, np.ndarray], rtol: float):
        self.rtol = rtol
        groups: dict[int, list[tuple[Label, np.ndarray]]] = {}
        for lab, v in quantities.items():
            v = np.asarray(v, dtype=np.float64)
            if v.size > 1 and np.all(np.isfinite(v)) and np.any(v):
                groups.setdefault(v.size, []).append((lab, v.ravel()))
        self.values = dict(quantities)
        self.groups = {n: ([lab for lab, _ in g], np.stack([v for _, v in g]))
                       for n, g in groups.items()}
        self._mag = {n: np.max(np.abs(M), axis=1) for n, (_, M) in self.groups.items()}
        self._at = {n: np.unique(np.linspace(0, n - 1, min(n, self.SAMPLE)).astype(int))
                    for n in self.groups}
        self._sample = {n: M[:, self._at[n]] for n, (_, M) in self.groups.items()}
        self._memo: dict[int, tuple[np.ndarray, set[Label]]] = {}

    def zeroed(self, good: Bank, step: int | None) -> list[Label]:
        """Quantities of ``step`` that are zero here and not in ``good`` (a bug's missing
        term)."""
        return [lab for lab, v in self.values.items() if lab[1] == step
                and not np.any(v) and np.any(good.values.get(lab, 0.0))]

    def fitting(self, name: str, step: int) -> list[Label]:
        """The quantities of step ``step`` that a variable called ``name`` is named for."""
        if not hasattr(self, "_by_step"):
            self._by_step: dict = {}
            for lab in self.values:
                self._by_step.setdefault(lab[1], []).append(lab)
        return [lab for lab in self._by_step.get(step, ()) if _fits(name, lab[0])]

    def matches(self, v: np.ndarray) -> set[Label]:
        seen = self._memo.get(id(v))
        if seen is not None and seen[0] is v:
            return set(seen[1])
        out = self._matches(v)
        self._memo[id(v)] = (v, out)  # v kept: its id stays its own
        return set(out)

    def _matches(self, v: np.ndarray) -> set[Label]:
        n = v.size
        g = self.groups.get(n)
        if g is None or not np.all(np.isfinite(v)):
            return set()
        labels, M = g
        out: set[Label] = set()
        flats = [v.ravel()] + ([v.T.ravel()] if v.ndim == 2 and 1 not in v.shape else [])
        for flat in flats:
            tol = self.rtol * np.maximum(self._mag[n], np.max(np.abs(flat))) + 1e-300
            near = np.flatnonzero(np.max(np.abs(self._sample[n] - flat[self._at[n]]), axis=1)
                                  <= tol)
            if near.size:
                ok = np.max(np.abs(M[near] - flat), axis=1) <= tol[near]
                out.update(labels[i] for i in near[ok])
        return out


def quantities(probe: Probe, o: Observation, bugs: frozenset[str]) -> dict[Label, np.ndarray]:
    """The reference's intermediate quantities at the observation's case, with ``bugs``
    planted: the oracle's taps, the same in the user's layout (stacked gates, [x; h]), and
    what every gradient accumulator holds after each step of a backward loop over t = T-1..0,
    in the user's names and layout."""
    taps: dict = {}
    tr = probe.reference(o.case, o.dtype, o.reduction, bugs, taps=taps)
    q: dict[Label, np.ndarray] = dict(taps)
    for i, name in enumerate(probe.arch.state_names):  # the initial state, "before step 0"
        q[(name, -1)] = np.asarray(o.case.state[i], dtype=np.float64)
    lay, d = o.layout, o.case.dims
    T, H = d.T, d.H
    for t in range(T):
        x = np.zeros(d.X)
        x[o.case.xs[t]] = 1.0
        q[("x", t)] = x  # the step's one-hot input, which many lines read
        if lay.concat == "xh" and ("v", t) in taps:
            v = taps[("v", t)]
            q[("v", t)] = np.concatenate([v[H:], v[:H]])
        if lay.stacked and (f"da_{lay.stacked[0]}", t) in taps:
            q[("da", t)] = np.concatenate([taps[(f"da_{g}", t)] for g in lay.stacked])
        if ("dv", t) in taps:  # the input's part, which many codes compute and drop (dx)
            q[("dv:x", t)] = taps[("dv", t)][H:]
        if lay.concat == "xh" and ("dv", t) in taps:
            dv = taps[("dv", t)]
            q[("dv", t)] = np.concatenate([dv[H:], dv[:H]])
    # what each gate's input receives (W_k.T @ da_k, the terms of dv), in both concatenations
    for W, da in BACK_THROUGH.get(probe.arch.name, ()):
        for t in range(T):
            if W in o.case.params and (da, t) in taps:
                g = np.asarray(o.case.params[W]).T @ taps[(da, t)]
                q[(f"back:{W}", t)] = g
                if g.size > H:  # [h; x] and [x; h], and the part that reaches h
                    q[(f"back:{W}:xh", t)] = np.concatenate([g[H:], g[:H]])
                    q[(f"back:{W}:h", t)] = g[:H]
                    q[(f"back:{W}:x", t)] = g[H:]
    try:  # the parameters themselves, in the user's layout: a line may copy them
        for uk, v in lay.params_to_user(probe.arch, o.case.params, H).items():
            q[(f"param:{uk}", None)] = v
    except (KeyError, ValueError):
        pass
    scale = T if o.reduction == "mean" else 1  # accumulated by the step, divided at the end
    names = [k for k in probe.arch.param_names if k in tr.contrib]
    running = {k: np.zeros_like(tr.contrib[k][0]) for k in names}
    for t in reversed(range(T)):
        step = {k: tr.contrib[k][t] for k in names}
        for k in names:
            running[k] = running[k] + step[k]
        for kind, arrays in (("contrib", step), ("sum", running)):
            for suffix, s in (("", 1.0), ("*T", float(scale))) if scale > 1 else (("", 1.0),):
                try:
                    user = lay.params_to_user(probe.arch, {k: v * s for k, v in arrays.items()},
                                              H)
                except (KeyError, ValueError):
                    continue
                for uk, v in user.items():
                    q[(f"{kind}:{uk}{suffix}", t)] = v
    return q


def _fits(name: str, label: str) -> bool:
    kind, _, group = label.partition(":")
    if kind in ("sum", "contrib") and group:  # an accumulator: dWhh, grads["Whh"], W_d
        return _names_group(name, group)
    n = _norm(name)
    key = label.split(":")[0]
    return n in ALIASES.get(key, ()) or n == re.sub(r"[^a-z0-9]", "", key.lower()) or (
        _words(name) == _words(key) and len(_words(key)) > 1)


def _words(name: str) -> tuple[str, ...]:
    """A gradient's name as its words in any order: ``dc_prev`` and ``dprev_c`` are both
    (d) c prev."""
    parts = re.sub(r"\[.*?\]$", "", name.split(".")[-1]).lower().split("_")
    d = parts[0].startswith("d") and len(parts[0]) > 1
    if d:
        parts[0] = parts[0][1:]
    # deeplearning.ai's activations a are the hidden state h (da_next, a_prev; a lone da is
    # the gradient before the tanh in many codes)
    words = [p for p in parts if p]
    if len(words) > 1:
        words = ["h" if p == "a" else p for p in words]
    return ("d",) * d + tuple(sorted(words))


def _reads(file: str, line: int) -> set[str]:
    src = linecache.getline(file, line).strip()
    try:
        tree = ast.parse(src.rstrip(":") if src.endswith(":") else src)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _target_names(rec: Rec) -> str:
    return re.sub(r"\[.*$", "", rec.name)


def first_divergence(recs: list[Rec], good: Bank, bad: Bank | None,
                     offset: int | None = None) -> tuple[Rec, Label | None] | None:
    """The record where the user's computation leaves the right path, and the reference
    quantity it stands for (None when it stands for none we know). ``offset``: the user's
    step to the reference's (``_step_offset``), when the caller has it already."""
    if bad is not None:
        for r in recs:
            if not np.any(r.value):  # a quantity the bug zeroes (a term left out) starts here
                gone = [lab for lab in bad.zeroed(good, r.step) if _fits(r.name, lab[0])]
                if gone and r.step is not None:
                    return r, gone[0]
                continue
            mc, mb = good.matches(r.value), bad.matches(r.value)
            # in a fixed order (latest step first, then by name): a set's order follows the
            # process's string hashing, and the report must not change from run to run
            only_bad = [lab for lab in sorted(mb - mc, key=_label_order)
                        if not _same(good, bad, lab)]
            if not only_bad:
                continue
            fit_good = [lab for lab in mc if _fits(r.name, lab[0])
                        and (r.step is None or lab[1] == r.step)]
            fit_bad = [lab for lab in only_bad if _fits(r.name, lab[0])]
            if fit_bad and not fit_good:
                return _statement_start(recs, r, good), fit_bad[0]
            if not mc:
                return _statement_start(recs, r, good), _prefer(only_bad, r)
        return None
    last_ok: dict[str, bool] = {}
    fallback = None
    if offset is None:
        offset = _step_offset(recs, good)
    backward = False  # names are judged from the backward pass on (forward temporaries such
    for j, r in enumerate(recs):  # as a softmax's shifted logits are named loosely)
        if not np.any(r.value):
            zeroed = _zero_where_named(recs, j, good, offset) if GRAD_LIKE.search(r.name) \
                else None
            if zeroed and all(last_ok.get(n, True) for n in _reads(r.file, r.line)):
                return r, zeroed
            last_ok[_target_names(r)] = True
            continue
        labs = good.matches(r.value)
        ok = bool(labs)
        backward = backward or (GRAD_LIKE.search(r.name) is not None and any(
            n.startswith(("d", "sum:", "contrib:")) for n, _ in labs))
        # a quantity built over several lines (dv += W_k.T @ da_k for each gate) is judged
        # by its value once the step is done with it, and located where it starts
        final = r.step is None or not any(x.name == r.name and x.step == r.step
                                           for x in recs[j + 1:j + 400])
        # the name says which quantity it is (dh_next, h_prev, tanh_c) and the value is
        # another one, or the same one at another step
        named = [lab for lab in (good.fitting(r.name, r.step + offset) if r.step is not None
                                 else []) if np.size(good.values[lab]) == r.value.size
                 and len(_norm(r.name)) > 1]  # h, c, f: too short to say which one
        misnamed = backward and bool(named) and not set(named) & labs \
            and not _held_later(recs, j, named, good)
        if final and ((not ok and GRAD_LIKE.search(r.name)) or misnamed):
            reads = _reads(r.file, r.line)
            if all(last_ok.get(n, True) for n in reads):
                return _statement_start(recs, r, good), (named[0] if misnamed else None)
            fallback = fallback or r
        last_ok[_target_names(r)] = (ok and not misnamed) or not final
    return (fallback, None) if fallback else None


def _zero_where_named(recs: list[Rec], j: int, good: Bank, offset: int) -> Label | None:
    """The quantity a zero record's name says it is, when the reference's is not zero and the
    step writes the name no more (a zeros_like that later lines fill is no bug)."""
    r = recs[j]
    if r.step is None or len(_norm(r.name)) < 2 or any(
            x.name == r.name and x.step == r.step for x in recs[j + 1:j + 400]):
        return None
    if _loop_body(r.file, r.line) is None:  # before the loop, t left over from the forward's
        return None
    named = [lab for lab in good.fitting(r.name, r.step + offset)
             if np.size(good.values[lab]) == r.value.size and np.any(good.values[lab])]
    return named[0] if named else None


def _held_later(recs: list[Rec], j: int, named: list[Label], good: Bank) -> bool:
    """Whether a later record of the same step holds one of the ``named`` quantities: then
    the name was the code's own for an intermediate (``dh_tilde = dh * z`` before
    ``dh_tilde_tanh = (1 - n**2) * dh_tilde``), not a quantity computed wrong."""
    step = recs[j].step
    for x in recs[j + 1:j + 200]:
        if x.step != step:
            return False
        if np.any(x.value) and set(named) & good.matches(x.value):
            return True
    return False


def _step_offset(recs: list[Rec], good: Bank) -> int:
    """How the user's loop counter relates to the reference's step: 0 for ``for t in
    range(T)``, -1 for a loop over t = 1..T; the commonest difference among the records whose
    name fits the quantity their value is."""
    seen: dict[int, int] = {}
    for r in recs[:2000]:
        if r.step is None or not np.any(r.value):
            continue
        for name, t in good.matches(r.value):
            if t is not None and t >= 0 and _fits(r.name, name):
                seen[t - r.step] = seen.get(t - r.step, 0) + 1
    return max(seen, key=lambda k: (seen[k], -abs(k))) if seen else 0


def _statement_start(recs: list[Rec], r: Rec, good: Bank) -> Rec:
    """A quantity built over several lines in one step (`dy = -p` then `dy[y] += 1`, or
    `dh_prev = 0` then `dh_prev += ...`) goes wrong where it starts: the earliest of the
    variable's records just before ``r`` in the same step that equal no reference quantity."""
    i = next(j for j, x in enumerate(recs) if x is r)
    body = _loop_body(r.file, r.line)
    start = r
    for prev in reversed(recs[:i]):
        if prev.name != r.name:
            continue
        if (prev.step != r.step or r.step is None or prev.file != r.file or body is None
                or not body[0] <= prev.line <= body[1] or good.matches(prev.value)):
            break
        start = prev
    return start


def _loop_body(file: str, line: int) -> tuple[int, int] | None:
    """The lines of the innermost loop body around ``line`` (None outside any loop)."""
    try:
        tree = ast.parse("".join(linecache.getlines(file)))
    except (SyntaxError, ValueError):
        return None
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While)) and node.body:
            lo, hi = node.body[0].lineno, node.end_lineno or node.body[-1].lineno
            if lo <= line <= hi and (best is None or lo >= best[0]):
                best = (lo, hi)
    return best


def _same(good: Bank, bad: Bank, lab: Label) -> bool:
    a, b = good.values.get(lab), bad.values.get(lab)
    return a is not None and b is not None and np.array_equal(np.asarray(a), np.asarray(b))


def _label_order(lab: Label) -> tuple:
    return -(lab[1] or 0), lab[0]


def _prefer(labels: list[Label], r: Rec) -> Label:
    """The label a record most likely stands for: one its name fits, else an accumulator of
    the same step, else the first."""
    fit = [lab for lab in labels if _fits(r.name, lab[0])]
    same_step = [lab for lab in labels if lab[1] == r.step]
    return (fit or same_step or sorted(labels, key=lambda x: (-(x[1] or 0), x[0])))[0]


def mutated_quantity(good: dict[Label, np.ndarray], bad: dict[Label, np.ndarray]) -> Label | None:
    """The first of the reference's own quantities, in the order it computes them, that the
    bug changes: what to look at first when there is no line to show (C code)."""
    for lab, v in good.items():
        w = bad.get(lab)
        if w is not None and not np.allclose(v, w, rtol=1e-9, atol=1e-300):
            return lab
    return None


def describe(lab: Label, arch: str) -> str:
    name, t = lab
    kind, _, group = name.partition(":")
    group = group.removesuffix("*T")
    if kind == "sum":
        return f"the accumulated d{group} after step t = {t}"
    if kind == "contrib":
        return f"step {t}'s contribution to d{group}"
    return f"{WHAT.get(name, name)} at t = {t}"


# each step's share of a gradient, by canonical group (h_t: the state step t produced,
# h_prev: the state before it, x_t: the step's one-hot input)
SHARE = {"Why": "outer(dy, h_t)", "Wy": "outer(dy, h_t)", "by": "dy",
         "Whh": "outer(dh_raw, h_prev)", "Wxh": "outer(dh_raw, x_t)", "bh": "dh_raw",
         **{f"W{k}": f"outer(da_{k}, [h_prev; x_t])" for k in "figo"},
         **{f"b{k}": f"da_{k}" for k in "figo"},
         "Wz": "outer(dz_raw, [h_prev; x_t])", "Wr": "outer(dr_raw, [h_prev; x_t])",
         "Wn": "outer(dn_raw, [r * h_prev; x_t])", "bz": "dz_raw", "br": "dr_raw",
         "bn": "dn_raw"}


def expected(lab: Label, arch: str, canonical: dict[str, str] | None = None) -> str:
    """What the reference computes for a quantity; ``canonical`` maps the user's gradient
    names to the reference's, for the accumulators."""
    name = lab[0]
    kind, _, group = name.partition(":")
    group = group.removesuffix("*T")
    if kind in ("sum", "contrib"):
        share = SHARE.get((canonical or {}).get(group, group))
        if share is None:  # a stacked matrix: every gate's share in its rows
            share = "each gate's outer(da, [h_prev; x_t]) in that gate's rows"
        states = "h_t" in share or "h_prev" in share  # the states are named only if read
        if kind == "contrib":
            return share + (f" (h_t the state step {lab[1]} produced, h_prev the one before)"
                            if states else "")
        return (f"d{group} += {share} for t = T-1 down to {lab[1]}"
                + (" (h_t the state step t produced, h_prev the one before)" if states else ""))
    text = (EXPECTED_RNN if arch == "rnn" else {}).get(name) or EXPECTED.get(name, name)
    return text.replace("{Wy}", "Why" if arch == "rnn" else "Wy")


def overwritten(recs: list[Rec], good: Bank, groups: set[str]) -> tuple[Rec, Label] | None:
    """For `=` where `+=` was meant: the first gradient-like record that holds one step's
    contribution to one of ``groups`` (the user's names) where the accumulated gradient
    belongs, one named like it preferred."""
    hits = []
    for r in recs:
        labs = good.matches(r.value) if np.any(r.value) else set()
        contrib = [lab for lab in sorted(labs, key=_label_order) if lab[0].startswith("contrib:")
                   and lab[0].split(":")[1].removesuffix("*T") in groups]
        if contrib and not any(lab[0].startswith("sum:") for lab in labs):
            hits.append((r, contrib[0]))
    named = [(r, lab) for r, lab in hits if _names_group(r.name, lab[0].split(":")[1])]
    # a loop variable holding one step's share (`for k, g in enumerate(layer.grads)`) is not
    # where it is stored: a gradient's name is
    found = named or [(r, lab) for r, lab in hits if GRAD_LIKE.search(r.name)] or hits
    return found[0] if found else None


def traced(probe: Probe, o: Observation) -> list[Rec]:
    """The records of one traced call of the user's code at the observation's case (a
    cut-short trace: its start)."""
    names, values, _ = probe.trace(o.case, o.layout)
    return [Rec(f, ln, n, s, v) for (f, ln, n, s), v in zip(names, values, strict=True)]


def source_line(file: str, line: int) -> str:
    """A line of the user's source as a report quotes it: stripped, a comment two spaces
    after the code however far it stood."""
    return re.sub(r"\s{2,}#", "  #", linecache.getline(file, line).strip())


def shown_path(file: str) -> str:
    """The user's file as reports name it: relative to the folder bpttcheck runs from when it
    lies below it (as the user named it on the command line), else absolute."""
    import os
    rel = os.path.relpath(file)
    return file if rel.startswith("..") else rel


def _names_group(name: str, group: str) -> bool:
    """Whether a variable (``dWhh``, ``grads["bf"]``, ``self.dW``, ``W_v_d``) is the gradient
    accumulator of ``group`` (the user's name of it); ``P["Whh"]`` is the parameter itself."""
    g = re.sub(r"[^a-z0-9]", "", group.removesuffix("*T").lower())
    key = re.search(r"^(.*)\[['\"](\w+)['\"]\]$", name)
    if key is not None:
        k = key.group(2).lower()
        return k == "d" + g or (k == g and bool(GRAD_LIKE.search(key.group(1))))
    return _norm(name) in ("d" + g, g + "d", g + "grad", "grad" + g)


def _norm(name: str) -> str:
    """A variable's name as compared with the quantities': ``s["f"]`` is ``f`` (a dict of
    named values), ``hs[3]`` is ``hs``, ``self.dW`` is ``dw``."""
    key = re.search(r"^(.*)\[['\"](\w+)['\"]\]$", name)
    if key:  # da["f"] is df (the forget gate's gradient), s["f"] is f
        base = ("d" if GRAD_LIKE.search(key.group(1)) else "") + key.group(2)
    else:
        base = re.sub(r"\[.*?\]$", "", name.split(".")[-1])
    return re.sub(r"[^a-z0-9]", "", base.lower())


# the names a forward pass gives its quantities (lower case, letters and digits only)
FORWARD = {
    "p": {"p", "ps", "prob", "probs", "yhat", "yhats", "softmax", "sm", "pt", "ypred", "pred",
          "preds", "probabilities"},
    "z": {"z", "zs", "y", "ys", "logits", "logit", "scores", "score", "yt", "o", "os"},
    "h": {"h", "hs", "ht", "hidden", "hnext", "a", "anext", "states"},
    "a": {"a", "pre", "preact", "preacts", "hraw", "zh", "net", "u"},
    "c": {"c", "cs", "ct", "cell", "cnext", "cnew"},
}


def locate_forward(probe: Probe, o: Observation, rtol: float) -> Location | None:
    """For a forward that is no model we know (the user's own loss is then what the gradients
    are judged by): the first line of the forward whose value, named like a quantity of the
    standard model, is not that quantity while what it reads still was — where the code
    departs from the textbook cell, a softmax written wrong more often than not."""
    if probe.caps.get("language") != "python":
        return None
    good_q = quantities(probe, o, frozenset())
    recs = traced(probe, o)
    good = Bank(good_q, rtol)
    offset = _step_offset(recs, good)
    last_ok: dict[str, bool] = {}
    for r in recs:
        if GRAD_LIKE.search(r.name):
            break  # the backward has begun: the forward was right up to here
        ok = bool(good.matches(r.value)) if np.any(r.value) else True
        if r.step is not None and not ok:
            at = r.step + offset
            named = [(k, at) for k, spellings in FORWARD.items()
                     if _norm(r.name) in spellings and (k, at) in good_q
                     and np.size(good_q[(k, at)]) == r.value.size]
            if named and all(last_ok.get(n, True) for n in _reads(r.file, r.line)):
                lab = named[0]
                ref = np.asarray(good_q[lab], dtype=np.float64).ravel()
                return Location(file=shown_path(r.file), line=r.line, step=r.step, name=r.name,
                                source=source_line(r.file, r.line), quantity=describe(lab, probe.arch.name)
                                + " (where your forward departs from the standard model)",
                                expected=expected(lab, probe.arch.name),
                                differs_by=float(np.max(np.abs(r.value.ravel() - ref))))
        last_ok[_target_names(r)] = ok
    return None


def locate(probe: Probe, o: Observation, bugs: frozenset[str] | None,
           rtol: float, overwrite: list[str] | None = None) -> Location | None:
    """Where the user's code goes wrong, for the failing observation ``o``; ``bugs`` the
    mutant that reproduces it exactly, if any; ``overwrite``: the diagnosis is `=` where
    `+=` was meant, in the canonical groups listed."""
    good_q = quantities(probe, o, frozenset())
    bad_q = quantities(probe, o, bugs) if bugs else None
    if probe.caps.get("language") != "python":
        if bad_q is None:
            return None
        lab = mutated_quantity(good_q, bad_q)
        return None if lab is None else Location(
            quantity=describe(lab, probe.arch.name), expected=expected(lab, probe.arch.name))
    recs = traced(probe, o)
    good = Bank(good_q, rtol)
    bad = Bank(bad_q, rtol) if bad_q is not None else None
    offset = _step_offset(recs, good)
    found = (overwritten(recs, good, {o.layout.user_name(k) for k in overwrite}) if overwrite
             else first_divergence(recs, good, bad, offset))
    if found is None and not overwrite:
        found = never_added(recs, good, o, offset)
    if found is None:
        return None
    r, lab = found
    if r not in recs:  # a line that changed nothing, found by its text
        recs.append(r)
    group = group_lines(recs, r)
    src = source_line(r.file, r.line)
    differs = None
    if lab is not None and lab in good_q and np.asarray(good_q[lab]).size == r.value.size:
        ref = np.asarray(good_q[lab], dtype=np.float64).ravel()
        v = r.value.ravel() if r.value.shape == np.shape(good_q[lab]) or r.value.ndim < 2 \
            else r.value.T.ravel()
        differs = float(np.max(np.abs(v - ref)))
    if overwrite and lab is not None:  # one step's share where the sum belongs
        gname = lab[0].partition(":")[2].removesuffix("*T")
        lab_text = f"{describe(lab, probe.arch.name)} alone, where the sum over the steps belongs"
        loc = Location(file=shown_path(r.file), line=r.line, step=r.step, name=r.name, source=src,
                       quantity=lab_text, expected=f"d{gname} += each step's share (+=, not =)")
        loc._lines, loc._key = group_lines(recs, r), lab[0]
        loc._hints = _hints(recs, good)
        return loc
    loc = Location(file=shown_path(r.file), line=r.line, step=r.step, name=r.name, source=src,
                    quantity=describe(lab, probe.arch.name) if lab else None,
                    expected=expected(lab, probe.arch.name, {
                        o.layout.user_name(k): k for k in probe.arch.param_names})
                    if lab else None,
                    differs_by=differs)

    loc._lines = group
    loc._key = lab[0] if lab else ""
    loc._hints = _hints(recs, good)
    if len(group) == 1:  # a quantity built over several lines is no one line's rewrite
        loc._rewrites = value_checked(
            *written_at(recs, r, lab), good, offset,
            lambda where, statements: probe.line_values(o.case, o.layout, where, statements),
            earlier_steps(recs, r))
    return loc


MAX_REWRITES = 5  # rewrites whose value is right, handed to repair.py to check in full


def written_at(recs: list[Rec], r: Rec, lab: Label | None) -> tuple[Rec, Label | None]:
    """The record a rewrite of ``r``'s line is judged by: ``r`` itself, or when ``r`` is an
    argument the line passes to a function (the tracer records those under the callee's
    names), what the line then assigns, a gradient (``dx, dh = layer.backward(...)``)."""
    code = linecache.getline(r.file, r.line).strip()
    try:
        stmt = ast.parse(code).body[0]
    except (SyntaxError, IndexError, ValueError):
        return r, lab
    if not isinstance(stmt, (ast.Assign, ast.AugAssign)):
        return r, lab
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    roots = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if re.split(r"[\[.]", r.name)[0] in roots:
        return r, lab
    i = next(j for j, x in enumerate(recs) if x is r)
    for x in recs[i + 1:i + 200]:
        if (x.file, x.line, x.step) == (r.file, r.line, r.step) and GRAD_LIKE.search(x.name) \
                and re.split(r"[\[.]", x.name)[0] in roots:
            return x, None
    return r, lab


def value_checked(r: Rec, lab: Label | None, good: Bank, offset: int,
                  run: Callable[[tuple, list[str]], dict],
                  earlier: tuple[int, ...] = ()) -> list[tuple[str, str, bool]]:
    """Rewrites of the located line (rewrite.py) that give its variable the value the
    reference has there: (statement, why), the smallest changes first. The reference's value
    is the located quantity's or one the variable's name fits; failing those, any gradient of
    the step. A rewrite must also keep the right value at ``earlier`` steps, the ones the line
    ran at before the located one (its inputs were right there, and so was its value): a
    rewrite right at one step only is no repair. ``run(where, statements)`` asks the worker
    for the values (Probe.line_values, or the layer style's own)."""
    from bpttcheck.check.rewrite import rewrites
    options = rewrites(r.file, r.line)
    if not options:
        return []

    def targets(step: int | None) -> tuple[Bank, Bank]:
        at = None if step is None else step + offset
        same = {x: v for x, v in good.values.items()
                if x[1] == at and np.size(v) == r.value.size}
        # a name can fit more than the located quantity (d["f"]: df or the gate's da_f)
        named = {x: v for x, v in same.items() if _fits(r.name, x[0])
                 or (lab is not None and x[0] == lab[0])}
        grads = {x: v for x, v in same.items() if x[0].startswith(("d", "sum:", "contrib:"))}
        return Bank(named, good.rtol), Bank(grads, good.rtol)

    def tier(v, banks: tuple[Bank, Bank]) -> int | None:
        v = np.asarray(v)
        return next((k for k, b in enumerate(banks) if np.ndim(v) and b.matches(v)), None)

    values = run((r.file, r.line, r.step, r.name), [x.code for x in options])
    banks = targets(r.step)
    tiers = {i: k for i, v in values.items() if (k := tier(v, banks)) is not None}
    hits = sorted(tiers, key=lambda i: (tiers[i], options[i].rank, i))[:4 * MAX_REWRITES]
    for s in earlier[-2:] if r.step is not None else ():
        if not hits:
            break
        vs = run((r.file, r.line, s, r.name), [options[i].code for i in hits])
        banks = targets(s)
        hits = [i for j, i in enumerate(hits) if j in vs and tier(vs[j], banks) is not None]
    # "named": the value is the quantity the line's name (or the locator) says it is; a
    # rewrite that gives some other gradient of the step is only worth a full check
    return [(options[i].code, options[i].why, tiers[i] == 0) for i in hits[:MAX_REWRITES]]


def never_added(recs: list[Rec], good: Bank, o: Observation,
                offset: int) -> tuple[Rec, Label] | None:
    """A gradient the user returns as all zeros where the reference's is not (``dc += dc``,
    or a sum into another name): no record shows it change, so its line is found by its text,
    the first statement of the traced loop that adds into a name of that gradient. The step
    is the first one the loop ran (its records say which)."""
    zero = [k for k, g in o.grads.items()
            if not np.any(g) and np.any(o.ref.grads.get(k, 0.0))]
    for k in zero:
        uk = o.layout.user_name(k)
        for file in dict.fromkeys(r.file for r in recs):
            for line, target in _additions(file):
                body = _loop_body(file, line)
                first = next((r for r in recs if r.file == file and r.step is not None
                              and body is not None and body[0] <= r.line <= body[1]), None)
                if first is None or first.step is None or not _names_group(target, uk):
                    continue
                lab = (f"sum:{uk}", first.step + offset)
                if lab in good.values:
                    zeros = np.zeros_like(np.asarray(good.values[lab], dtype=np.float64))
                    return Rec(file, line, target, first.step, zeros), lab
    return None


def _additions(file: str) -> list[tuple[int, str]]:
    """(line, target) of each one-line ``target += ...`` of a file, in the file's order."""
    try:
        tree = ast.parse("".join(linecache.getlines(file)))
    except (SyntaxError, ValueError):
        return []
    out = [(n.lineno, ast.unparse(n.target)) for n in ast.walk(tree)
           if isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Add)
           and n.lineno == n.end_lineno]
    return sorted(out)


def earlier_steps(recs: list[Rec], r: Rec) -> tuple[int, ...]:
    """The steps at which ``r``'s line ran before ``r``, in the order it ran at them."""
    out: list[int] = []
    for x in recs:
        if x is r:
            break
        if x.line == r.line and x.file == r.file and x.step is not None \
                and x.step != r.step and x.step not in out:
            out.append(x.step)
    return tuple(out)


def group_lines(recs: list[Rec], start: Rec) -> tuple[int, ...]:
    """The lines that write the located variable in the located step, from ``start`` on (a
    quantity built over several lines is repaired as a whole)."""
    i = next(j for j, x in enumerate(recs) if x is start)
    lines = [start.line]
    for x in recs[i + 1:i + 200]:
        if x.step != start.step:
            break
        if x.name == start.name and x.file == start.file and x.line not in lines:
            lines.append(x.line)
    return tuple(lines)


HINTED = ("h_cur", "h", "c_cur", "c", "c_prev", "f", "i", "g", "o", "tanh_c", "dh_next",
          "dc_next", "dh_raw", "dy", "dh", "dc")


def _hints(recs: list[Rec], good: Bank) -> dict[str, str]:
    """The user's own expression for each reference quantity, written for the loop step
    (``hs[t]``, ``h[t+1]``, ``s['f']``, ``dhnext``): what a repair of their line may use."""
    out: dict[str, str] = {}
    for r in recs:
        if r.step is None:
            continue
        for name, t in good.matches(r.value):
            if name in HINTED and t == r.step:
                expr = _relative(r.name, r.step)
                if expr:
                    out[name] = expr
    return out


def _relative(name: str, step: int) -> str | None:
    """``hs[5]`` recorded at step 5 as ``hs[t]`` (``hs[6]``: ``hs[t+1]``); a name without a
    number in its index as it is."""
    m = re.fullmatch(r"(.+)\[(-?\d+)\]", name)
    if not m:
        return name
    k = int(m.group(2)) - step
    if k not in (-1, 0, 1):
        return None
    return f"{m.group(1)}[t{'' if k == 0 else '+1' if k > 0 else '-1'}]"
