"""
Standalone self-check of the layer-style test subjects (rnn_layers.py API).

For every file in this directory (rnn_layers.py, rnn_only_layers.py,
partial_layers.py) and in ../bugs/layers/, and for every forward/backward pair
the file implements, it draws float64 inputs (N=3, T=4, D=5, H=6) and a random
upstream gradient for each output, and compares each returned gradient with
central differences of  L = sum(dout * out)  taken through the file's own
forward function. It also compares the forward outputs with rnn_layers.py.

A backward function "agrees" when every gradient it returns has the right
shape and  |analytic - numeric| / (|analytic| + |numeric|) <= 1e-7  (2-norms).
Correct files must agree everywhere; a bug file must disagree in exactly the
functions listed on its "# functions:" header line (and clearly, > 1e-4).

Run:  python reference/layers/_check_layers.py      (exit status 1 on a failure)
"""
import importlib.util
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
BUG_DIR = HERE.parent / "bugs" / "layers"
N, T, D, H = 3, 4, 5, 6
EPS = 1e-6
TOL = 1e-7          # agreement threshold
CLEAR = 1e-4        # a planted bug must be at least this far off

# pair name (= the backward function) -> forward name, input names, output names
PAIRS = {
    "rnn_step_backward": ("rnn_step_forward", ["x", "prev_h", "Wx", "Wh", "b"], ["next_h"]),
    "rnn_backward": ("rnn_forward", ["x", "h0", "Wx", "Wh", "b"], ["h"]),
    "lstm_step_backward": ("lstm_step_forward",
                           ["x", "prev_h", "prev_c", "Wx", "Wh", "b"], ["next_h", "next_c"]),
    "lstm_backward": ("lstm_forward", ["x", "h0", "Wx", "Wh", "b"], ["h"]),
}
GRAD_NAMES = {
    "rnn_step_backward": ["dx", "dprev_h", "dWx", "dWh", "db"],
    "rnn_backward": ["dx", "dh0", "dWx", "dWh", "db"],
    "lstm_step_backward": ["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"],
    "lstm_backward": ["dx", "dh0", "dWx", "dWh", "db"],
}
# the reference files carry no header: what each one is expected to contain
REFERENCE_FILES = {
    "rnn_layers.py": {},
    "rnn_only_layers.py": {"lstm_step_backward": "absent", "lstm_backward": "absent"},
    "partial_layers.py": {"lstm_step_backward": "unimpl", "lstm_backward": "unimpl"},
}


class Unimplemented(Exception):
    pass


def load(path):
    spec = importlib.util.spec_from_file_location("subject_" + path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def header(path):
    fields = {}
    for line in path.read_text().splitlines()[:5]:
        if line.startswith("# ") and ":" in line:
            key, _, val = line[2:].partition(":")
            fields[key.strip()] = val.strip()
    return fields


def make_inputs(pair, rng):
    lstm = pair.startswith("lstm")
    G = 4 * H if lstm else H
    seq = pair in ("rnn_backward", "lstm_backward")
    args = {
        "x": rng.standard_normal((N, T, D) if seq else (N, D)),
        "Wx": 0.4 * rng.standard_normal((D, G)),
        "Wh": 0.4 * rng.standard_normal((H, G)),
        "b": 0.2 * rng.standard_normal(G),
    }
    args["h0" if seq else "prev_h"] = 0.6 * rng.standard_normal((N, H))
    if pair == "lstm_step_backward":
        args["prev_c"] = rng.standard_normal((N, H))
    return args


def as_tuple(ret, n):
    if ret is None:
        raise Unimplemented("returned None")
    ret = ret if isinstance(ret, tuple) else (ret,)
    if len(ret) != n or any(r is None for r in ret):
        raise Unimplemented("returned None entries")
    return ret


def run_forward(fwd, names, args, n_out):
    ret = as_tuple(fwd(*[args[k] for k in names]), n_out + 1)
    return [np.asarray(r, dtype=float) for r in ret[:n_out]], ret[n_out]


def rel_err(a, n):
    return np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-300)


def check_pair(mod, ref, pair, seed):
    """-> (status, worst rel error, notes): status ok | bad | unimpl | absent."""
    fwd_name, names, outs = PAIRS[pair]
    if not (hasattr(mod, fwd_name) and hasattr(mod, pair)):
        return "absent", None, []
    fwd, bwd = getattr(mod, fwd_name), getattr(mod, pair)
    rng = np.random.default_rng(seed)
    args = make_inputs(pair, rng)
    try:
        out, cache = run_forward(fwd, names, args, len(outs))
    except (NotImplementedError, Unimplemented):
        return "unimpl", None, []

    notes = []
    ref_out, _ = run_forward(getattr(ref, fwd_name), names, args, len(outs))
    for name, o, r in zip(outs, out, ref_out):
        if o.shape != r.shape or not np.allclose(o, r, rtol=0, atol=1e-12):
            notes.append("forward %s differs from rnn_layers.py" % name)

    douts = [rng.standard_normal(o.shape) for o in out]
    try:
        grads = as_tuple(bwd(*douts, cache), len(names))
    except (NotImplementedError, Unimplemented):
        return "unimpl", None, notes
    except Exception as e:                       # a planted bug may crash the backward
        return "bad", np.inf, notes + ["%s raised %s: %s" % (pair, type(e).__name__, e)]

    def loss(a):
        o, _ = run_forward(fwd, names, a, len(outs))
        return sum(float(np.sum(d * oo)) for d, oo in zip(douts, o))

    worst = 0.0
    for gname, k, g in zip(GRAD_NAMES[pair], names, grads):
        g = np.asarray(g, dtype=float)
        num = np.zeros_like(args[k])
        for idx in np.ndindex(*args[k].shape):
            a = {kk: vv.copy() for kk, vv in args.items()}
            a[k][idx] += EPS
            up = loss(a)
            a[k][idx] -= 2 * EPS
            num[idx] = (up - loss(a)) / (2 * EPS)
        if g.shape != num.shape:
            worst = np.inf
            notes.append("%s shape %s, expected %s" % (gname, g.shape, num.shape))
            continue
        e = rel_err(g, num)
        worst = max(worst, e)
        if e > TOL:
            notes.append("%s rel %.1e" % (gname, e))
    status = "ok" if worst <= TOL and not notes else "bad"
    return status, worst, notes


def main():
    ref = load(HERE / "rnn_layers.py")
    files = [HERE / name for name in REFERENCE_FILES] + sorted(BUG_DIR.glob("*.py"))
    short = {"rnn_step_backward": "rnn_step_bwd", "rnn_backward": "rnn_bwd",
             "lstm_step_backward": "lstm_step_bwd", "lstm_backward": "lstm_bwd"}
    print("%-40s %-35s" % ("file", "expect") + "".join("%-15s" % short[p] for p in PAIRS) + "result")
    failures = 0
    details = []
    for path in files:
        mod = load(path)
        if path.parent == HERE:
            expect_id = "pass"
            special = REFERENCE_FILES[path.name]
            wrong = set()
        else:
            h = header(path)
            expect_id = h["bpttcheck-expect"]
            special = {}
            wrong = {f.strip() for f in h["functions"].split(",") if f.strip() not in ("", "-")}
        cells, problems = [], []
        for seed, pair in enumerate(PAIRS):
            status, worst, notes = check_pair(mod, ref, pair, seed)
            want = special.get(pair, "bad" if pair in wrong else "ok")
            if status != want:
                problems.append("%s is %s, expected %s" % (pair, status, want))
            if status == "bad" and want == "bad" and worst < CLEAR:
                problems.append("%s off by only %.1e" % (pair, worst))
            if any(n.startswith("forward") for n in notes):
                problems.append("forward differs from rnn_layers.py")
            if status in ("ok", "bad") and worst is not None:
                cells.append("%s %s" % (status, "inf" if np.isinf(worst) else "%.0e" % worst))
            else:
                cells.append(status)
            if status == "bad":
                details.append("  %s / %s: %s" % (path.name, pair, "; ".join(notes)))
        failures += bool(problems)
        tag = "as expected" if not problems else "FAIL: " + "; ".join(problems)
        print("%-40s %-35s" % (path.name, expect_id) + "".join("%-15s" % c for c in cells) + tag)
    print("\nwhat disagrees in the bug files:")
    print("\n".join(details))
    print("\n%d files, %d not as expected (tolerance %.0e, bugs at least %.0e off)"
          % (len(files), failures, TOL, CLEAR))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
