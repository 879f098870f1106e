"""
Quick self-check of the reference subjects (NOT part of bpttcheck; independent of it).

For every file in reference/python (correct) and reference/bugs/python (buggy) it
  * loads the module (Karpathy files: exec'd with every top-level `while` loop removed),
  * builds a small random case (H=4, X=5, Y=5, T=4, nonzero h0/c0/biases),
  * FD:   compares the file's analytic gradients with central finite differences of the
          file's OWN loss (per-group error ||a-n|| / (||a||+||n||), max over groups),
  * REF:  compares loss and gradients with an independent float64 reference of the canonical
          model (CONTRACT section 1 / project GRU convention), through a per-file layout
          description (names, concat order, stacking, column vectors, loss reduction),
  * REP:  calls the function twice and checks the second answer equals the first (and that
          the parameters passed in were not modified),
  * BIG:  adds 800 to every output bias (softmax is shift-invariant, so the reference is
          unchanged and finite); the file must stay finite too.
Then it checks each file's header labels against what it saw.

    python reference/python/_selfcheck.py [-v] [--sizes=H,X,Y,T]
"""
import ast
import importlib.util
import os
import re
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUGS = os.path.join(os.path.dirname(HERE), "bugs", "python")
H, X, Y, T = 4, 5, 5, 4
TOL = 1e-6

CANON = {
    "rnn": ["Wxh", "Whh", "Why", "bh", "by"],
    "lstm": ["Wf", "Wi", "Wg", "Wo", "bf", "bi", "bg", "bo", "Wy", "by"],
    "gru": ["Wz", "Wr", "Wn", "bz", "br", "bn", "Wy", "by"],
}
GATE_W = {"rnn": [], "lstm": ["Wf", "Wi", "Wg", "Wo"], "gru": ["Wz", "Wr", "Wn"]}


# ----------------------------------------------------------------------------- reference
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _smax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def ref_loss(arch, P, inputs, targets, h0, c0):
    h, c = h0.copy(), c0.copy()
    loss = 0.0
    for x_ix, y_ix in zip(inputs, targets):
        x = np.zeros(P["Wxh"].shape[1] if arch == "rnn" else P[GATE_W[arch][0]].shape[1] - len(h))
        x[x_ix] = 1.0
        if arch == "rnn":
            h = np.tanh(P["Wxh"] @ x + P["Whh"] @ h + P["bh"])
            zl = P["Why"] @ h + P["by"]
        elif arch == "lstm":
            v = np.concatenate([h, x])
            f, i = _sig(P["Wf"] @ v + P["bf"]), _sig(P["Wi"] @ v + P["bi"])
            g, o = np.tanh(P["Wg"] @ v + P["bg"]), _sig(P["Wo"] @ v + P["bo"])
            c = f * c + i * g
            h = o * np.tanh(c)
            zl = P["Wy"] @ h + P["by"]
        else:
            v = np.concatenate([h, x])
            zg, r = _sig(P["Wz"] @ v + P["bz"]), _sig(P["Wr"] @ v + P["br"])
            n = np.tanh(P["Wn"] @ np.concatenate([r * h, x]) + P["bn"])
            h = (1 - zg) * n + zg * h
            zl = P["Wy"] @ h + P["by"]
        m = zl.max()
        loss += -(zl[y_ix] - m - np.log(np.exp(zl - m).sum()))
    return loss


def fd_grads(f, P, eps=1e-5):
    """Central differences of scalar f(P) w.r.t. every entry of every array in dict P."""
    G = {}
    for k, w in P.items():
        g = np.zeros_like(w, dtype=float)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + eps
            lp = f(P)
            w[idx] = old - eps
            lm = f(P)
            w[idx] = old
            g[idx] = (lp - lm) / (2 * eps)
        G[k] = g
    return G


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    if a.shape != b.shape:
        return float("inf")
    den = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if den == 0 else float(np.linalg.norm(a - b) / den)


# ----------------------------------------------------------------------------- layouts
class Profile:
    """How a file lays out the canonical model."""

    def __init__(self, style, arch, names=None, concat="hx", stacked=None, column=False,
                 reduction="sum", karpathy_ret=None):
        self.style, self.arch = style, arch
        self.names = names or {k: k for k in CANON[arch]}
        self.concat, self.stacked, self.column, self.reduction = concat, stacked, column, reduction
        self.karpathy_ret = karpathy_ret

    def to_user(self, P):
        U = {}
        src = dict(P)
        if self.concat == "xh":
            for k in GATE_W[self.arch]:
                src[k] = np.hstack([P[k][:, H:], P[k][:, :H]])
        if self.stacked:
            U["W"] = np.vstack([src["W" + gch] for gch in self.stacked])
            U["b"] = np.concatenate([src["b" + gch] for gch in self.stacked])
            U[self.names["Wy"]] = src["Wy"].copy()
            U[self.names["by"]] = src["by"].copy()
        else:
            for k in CANON[self.arch]:
                U[self.names[k]] = src[k].copy()
        if self.column:
            U = {k: (v.reshape(-1, 1) if v.ndim == 1 else v) for k, v in U.items()}
        return U

    def to_canon(self, G):
        G = {k: np.asarray(v, float) for k, v in G.items()}
        out = {}
        if self.stacked:
            for j, gch in enumerate(self.stacked):
                out["W" + gch] = G["W"][j * H:(j + 1) * H]
                out["b" + gch] = G["b"].ravel()[j * H:(j + 1) * H]
            out["Wy"], out["by"] = G[self.names["Wy"]], G[self.names["by"]]
        else:
            for k in CANON[self.arch]:
                out[k] = G[self.names[k]]
        out = {k: (v.ravel() if k.startswith("b") else v) for k, v in out.items()}
        if self.concat == "xh":
            for k in GATE_W[self.arch]:
                out[k] = np.hstack([out[k][:, X:], out[k][:, :X]])
        return out

    def state(self, s):
        return s.reshape(-1, 1) if (self.column or self.style == "karpathy") else s


def load(path, prof):
    name = "subject_" + re.sub(r"\W", "_", os.path.basename(path)[:-3])
    if prof.style == "karpathy":
        src = open(path).read()
        tree = ast.parse(src)
        tree.body = [n for n in tree.body if not isinstance(n, ast.While)]
        mod = types.ModuleType(name)
        mod.__file__ = path
        cwd = os.getcwd()
        os.chdir(os.path.dirname(path))
        try:
            import contextlib, io
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(tree, path, "exec"), mod.__dict__)
        finally:
            os.chdir(cwd)
        return mod
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_caller(mod, prof):
    """Returns call(U, inputs, targets, h0, c0) -> (loss, user-grads dict)."""
    if prof.style == "karpathy":
        def call(U, inputs, targets, h0, c0):
            for k, v in U.items():
                setattr(mod, k, v)
            mod.vocab_size, mod.hidden_size = X, H
            if prof.arch == "lstm":
                out = mod.lossFun(list(inputs), list(targets), prof.state(h0), prof.state(c0))
            else:
                out = mod.lossFun(list(inputs), list(targets), prof.state(h0))
            grads = dict(zip(prof.karpathy_ret, out[1:1 + len(prof.karpathy_ret)]))
            return float(out[0]), {k: np.array(v, float) for k, v in grads.items()}
    elif prof.style == "functional":
        def call(U, inputs, targets, h0, c0):
            st = (prof.state(h0), prof.state(c0)) if prof.arch == "lstm" else prof.state(h0)
            loss, grads, _ = mod.loss_and_grads(U, list(inputs), list(targets), st)
            return float(loss), {k: np.array(v, float) for k, v in grads.items()}
    else:
        def call(U, inputs, targets, h0, c0):
            st = (prof.state(h0), prof.state(c0)) if prof.arch == "lstm" else prof.state(h0)
            out = mod.forward(U, list(inputs), list(targets), st)
            loss, cache = out[0], out[1]
            grads = mod.backward(U, cache)
            return float(loss), {k: np.array(v, float) for k, v in grads.items()}
    return call


# ----------------------------------------------------------------------------- cases
def random_case(arch, seed):
    rng = np.random.default_rng(seed)
    D = H + X
    shapes = {
        "rnn": {"Wxh": (H, X), "Whh": (H, H), "Why": (Y, H), "bh": (H,), "by": (Y,)},
        "lstm": dict({k: (H, D) for k in GATE_W["lstm"]},
                     **{k: (H,) for k in ["bf", "bi", "bg", "bo"]}, Wy=(Y, H), by=(Y,)),
        "gru": dict({k: (H, D) for k in GATE_W["gru"]},
                    **{k: (H,) for k in ["bz", "br", "bn"]}, Wy=(Y, H), by=(Y,)),
    }[arch]
    P = {k: rng.standard_normal(s) * 0.6 for k, s in shapes.items()}
    h0 = rng.standard_normal(H) * 0.5
    c0 = rng.standard_normal(H) * 0.5
    inputs = [int(v) for v in rng.integers(0, X, T)]
    targets = [int(v) for v in rng.integers(0, Y, T)]
    return P, h0, c0, inputs, targets


def check(path, prof):
    res = {"fd": float("nan"), "loss_ok": False, "bad": [], "rep": False, "big": False,
           "err": None}
    try:
        mod = load(path, prof)
        call = make_caller(mod, prof)
        P, h0, c0, inputs, targets = random_case(prof.arch, 1234)
        U = prof.to_user(P)
        Ucopy = {k: v.copy() for k, v in U.items()}

        loss1, G1 = call(U, inputs, targets, h0.copy(), c0.copy())
        loss2, G2 = call(U, inputs, targets, h0.copy(), c0.copy())
        same = np.isclose(loss1, loss2, rtol=1e-12, atol=0, equal_nan=True) and all(
            np.allclose(G1[k], G2[k], rtol=1e-10, atol=1e-14, equal_nan=True) for k in G1)
        untouched = all(np.array_equal(U[k], Ucopy[k]) for k in U)
        res["rep"] = bool(same and untouched)

        # FD of the file's own loss (in its own parameter space)
        fd = fd_grads(lambda Q: call(Q, inputs, targets, h0.copy(), c0.copy())[0],
                      {k: v.copy() for k, v in Ucopy.items()})
        res["fd"] = max(rel(G1[k], fd[k]) if k in G1 else float("inf") for k in fd)

        # reference
        scale = 1.0 / T if prof.reduction == "mean" else 1.0
        rl = lambda Q: ref_loss(prof.arch, Q, inputs, targets, h0, c0) * scale
        RG = fd_grads(rl, {k: v.copy() for k, v in P.items()})
        res["loss_ok"] = bool(np.isclose(loss1, rl(P), rtol=1e-9, atol=1e-12))
        CG = prof.to_canon(G1)
        res["bad"] = [k for k in CANON[prof.arch] if not rel(CG[k], RG[k]) < TOL]

        # large logits
        Pb = {k: v.copy() for k, v in P.items()}
        Pb["by"] += 800.0   # softmax is shift-invariant: stable code gives the same answer
        lb, Gb = call(prof.to_user(Pb), inputs, targets, h0.copy(), c0.copy())
        res["big"] = bool(np.isfinite(lb) and all(np.all(np.isfinite(g)) for g in Gb.values())
                          and np.isfinite(rl(Pb)))
    except Exception as e:  # noqa: BLE001
        res["err"] = "%s: %s" % (type(e).__name__, e)
    return res


# ----------------------------------------------------------------------------- subjects
KRNN = Profile("karpathy", "rnn", column=True, karpathy_ret=["Wxh", "Whh", "Why", "bh", "by"])
LSTM_K_NAMES = {"Wf": "Wf", "Wi": "Wi", "Wg": "Wc", "Wo": "Wo", "bf": "bf", "bi": "bi",
                "bg": "bc", "bo": "bo", "Wy": "Wy", "by": "by"}
KLSTM = Profile("karpathy", "lstm", names=LSTM_K_NAMES, column=True,
                karpathy_ret=["Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo", "Wy", "by"])
FRNN = Profile("functional", "rnn")
FRNN_MEAN = Profile("functional", "rnn", reduction="mean")
FRNN_COL = Profile("functional", "rnn", column=True)
FRNN_CLASS = Profile("functional", "rnn", names={"Wxh": "W_xh", "Whh": "W_hh", "Why": "W_hy",
                                                "bh": "b_h", "by": "b_y"})
SEED_NAMES = {"Wf": "W_f", "Wi": "W_i", "Wg": "W_c", "Wo": "W_o", "bf": "b_f", "bi": "b_i",
              "bg": "b_c", "bo": "b_o", "Wy": "W_v", "by": "b_v"}
FLSTM = Profile("functional", "lstm", names=SEED_NAMES)
SLSTM = Profile("split", "lstm")
XLSTM = Profile("functional", "lstm", concat="xh")
XLSTM_C = Profile("functional", "lstm", concat="xh", names=LSTM_K_NAMES)
STACKED_IFGO = Profile("functional", "lstm", stacked="ifgo")
FGRU = Profile("functional", "gru")

SUBJECTS = {
    # correct references
    "rnn_karpathy.py": KRNN,
    "lstm_karpathy.py": KLSTM,
    "rnn_functional.py": FRNN,
    "lstm_functional.py": FLSTM,
    "gru_functional.py": FGRU,
    "rnn_mean_loss.py": FRNN_MEAN,
    "lstm_split.py": SLSTM,
    "rnn_class.py": FRNN_CLASS,
    "lstm_xfirst.py": XLSTM,
    "lstm_xfirst_undeclared.py": XLSTM_C,
    "rnn_column.py": FRNN_COL,
}
BUG_SUBJECTS = {}  # filled below once the bug files exist


def bug_profiles():
    return {
        "softmax_seed000_double_exp_sum_logits.py": FRNN,
        "softmax_double_exp.py": FLSTM,
        "softmax_sum_logits_karpathy.py": KRNN,
        "softmax_unstable.py": FRNN,
        "loss_dy_sign_split.py": SLSTM,
        "loss_mean_grad_sum.py": FRNN_MEAN,
        "loss_sum_grad_mean_lstm.py": FLSTM,
        "rnn_dwhy_prev_h.py": FRNN,
        "rnn_dwhh_current_h_karpathy.py": KRNN,
        "rnn_missing_dh_next_class.py": FRNN_CLASS,
        "rnn_whh_not_transposed_karpathy.py": KRNN,
        "rnn_tanh_derivative_missing_column.py": FRNN_COL,
        "grad_overwrite_karpathy.py": KRNN,
        "grad_overwrite_lstm.py": FLSTM,
        "grad_not_reset_module.py": FRNN,
        "grad_not_reset_dhnext_karpathy.py": KRNN,
        "lstm_state_offset.py": FLSTM,
        "lstm_cprev_wraparound.py": FLSTM,
        "lstm_seed001_offset_wraparound.py": FLSTM,
        "lstm_gate_derivative_reapplied_karpathy.py": KLSTM,
        "lstm_cell_tanh_derivative_missing_split.py": SLSTM,
        "lstm_dc_next_missing_forget_xfirst.py": XLSTM,
        "lstm_dh_next_wrong_slice_xfirst.py": XLSTM,
        "lstm_dh_next_wrong_slice.py": FLSTM,
        "lstm_gate_order.py": STACKED_IFGO,
        "lstm_gate_order_fixed.py": STACKED_IFGO,
        "gru_update_gate_flipped.py": FGRU,
        "gru_reset_after.py": FGRU,
        "gru_gate_derivative_reapplied.py": FGRU,
        "gru_direct_path_missing.py": FGRU,
    }


def header(path):
    lab = {}
    with open(path) as fh:
        for line in fh:
            m = re.match(r"#\s*(bpttcheck-expect|arch|groups)\s*:\s*(.*)", line)
            if m:
                lab[m.group(1)] = m.group(2).strip()
            elif not line.startswith("#"):
                break
    return lab


def judge(lab, r, prof):
    """Compare the labels with what was measured. Returns (ok, note)."""
    if r["err"]:
        return False, "error: " + r["err"]
    fd_ok = r["fd"] < TOL
    expect = lab.get("bpttcheck-expect", "?")
    if lab.get("arch") != prof.arch:
        return False, "arch label %s != %s" % (lab.get("arch"), prof.arch)
    if expect == "pass":
        bad = [] if fd_ok else ["FD"]
        bad += [] if r["loss_ok"] else ["loss"]
        bad += r["bad"] + ([] if r["rep"] else ["REP"]) + ([] if r["big"] else ["BIG"])
        return (not bad), ("clean" if not bad else "unexpected: " + ",".join(bad))
    detected = (not fd_ok) or (not r["loss_ok"]) or r["bad"] or (not r["rep"]) or (not r["big"])
    if not detected:
        return False, "bug not visible"
    want = lab.get("groups", "?")
    want = [] if want == "-" else [g.strip() for g in want.split(",")]
    if sorted(want) != sorted(r["bad"]):
        return False, "groups label %s != measured %s" % (want, r["bad"])
    return True, "bug visible, groups match"


def main():
    global H, X, Y, T
    verbose = "-v" in sys.argv
    for arg in sys.argv[1:]:
        if arg.startswith("--sizes="):          # e.g. --sizes=3,6,6,1  (H,X,Y,T; Karpathy needs X == Y)
            H, X, Y, T = (int(v) for v in arg.split("=", 1)[1].split(","))
    print("sizes: H=%d X=%d Y=%d T=%d" % (H, X, Y, T))
    rows = []
    files = [(os.path.join(HERE, f), p) for f, p in SUBJECTS.items()]
    files += [(os.path.join(BUGS, f), p) for f, p in bug_profiles().items()
              if os.path.exists(os.path.join(BUGS, f))]
    all_ok = True
    fmt = "%-44s %-38s %-5s %9s %-4s %-4s %-24s %-4s %-4s %s"
    print(fmt % ("file", "expect", "arch", "FD err", "FD", "loss", "REF groups failing",
                 "REP", "BIG", "labels"))
    print("-" * 150)
    for path, prof in files:
        lab = header(path)
        r = check(path, prof)
        ok, note = judge(lab, r, prof)
        all_ok &= ok
        fd = r["fd"]
        print(fmt % (os.path.relpath(path, os.path.dirname(HERE)), lab.get("bpttcheck-expect", "?")[:38],
                     prof.arch, "%.1e" % fd, "ok" if fd < TOL else "FAIL",
                     "ok" if r["loss_ok"] else "diff",
                     (",".join(r["bad"]) or "-")[:24], "ok" if r["rep"] else "FAIL",
                     "ok" if r["big"] else "FAIL", ("OK " if ok else "!! ") + note))
        if verbose and r["bad"]:
            print("      all failing groups:", r["bad"])
    print("-" * 150)
    print("ALL LABELS CONSISTENT" if all_ok else "SOME FILES DISAGREE WITH THEIR LABELS")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
