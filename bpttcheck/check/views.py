"""Data for the pictures of a report (only computed when a report draws them, e.g. --html):
a heatmap per parameter group and the gradient flow through time. Plain numbers in the
canonical layout; the reports decide how to draw them."""
from __future__ import annotations

import numpy as np

from bpttcheck.check.cases import Case
from bpttcheck.oracle.common import Dims
from bpttcheck.result import Flow, Heatmap

ENTRYWISE_LIMIT = 3000  # parameters: up to this many, every entry gets a central difference


def axes(name: str, shape: tuple[int, ...], d: Dims) -> tuple[str, str, list[str], list[str]]:
    """What the rows and columns of a canonical parameter mean (CONTRACT §1)."""
    hid = [f"h{i}" for i in range(d.H)]
    if len(shape) == 1:
        unit = "output token" if shape[0] == d.Y and name.startswith("by") else "hidden unit"
        labels = [f"y{i}" for i in range(d.Y)] if unit == "output token" else hid
        return "", unit, [""], labels
    rows, cols = shape
    row_axis, row_labels = (("output token", [f"y{i}" for i in range(d.Y)]) if rows == d.Y and
                            name.startswith(("Why", "Wy")) else ("hidden unit", hid))
    if cols == d.H + d.X:
        return row_axis, "[h; x]: hidden unit, then input token", row_labels, hid + [
            f"x{j}" for j in range(d.X)]
    if cols == d.X and name == "Wxh":
        return row_axis, "input token", row_labels, [f"x{j}" for j in range(d.X)]
    return row_axis, "hidden unit (previous step)" if name == "Whh" else "hidden unit", \
        row_labels, hid


def _matrix(a: np.ndarray) -> list[list[float]]:
    """Rows of floats to 4 significant digits: plenty for a picture, a third of the JSON."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    return [[float(f"{v:.4g}") for v in row] for row in a]


def heatmaps(case: Case, user: dict, ref: dict, tolerances: dict[str, float],
             user_names: dict[str, str], fd: dict | None, fd_step: float | None,
             fd_tol: dict | None = None) -> list[Heatmap]:
    out = []
    for k, r in ref.items():
        row_axis, col_axis, rl, cl = axes(k, r.shape, case.dims)
        out.append(Heatmap(group=k, user_name=user_names.get(k, k), row_axis=row_axis,
                           col_axis=col_axis, row_labels=rl, col_labels=cl,
                           diff=_matrix(user[k] - r),
                           fd_minus_user=None if fd is None else _matrix(fd[k] - user[k]),
                           tolerance=tolerances.get(k, 0.0), fd_step=fd_step,
                           fd_tolerance=None if fd_tol is None else fd_tol[k]))
    return out


def entry_offsets(params: dict[str, np.ndarray], h: float) -> list[tuple[str, int, float]]:
    """(group, flat index, step) for two central differences of every entry (h and h/2)."""
    return [(k, i, s) for k, v in params.items() for i in range(v.size)
            for s in (h, -h, h / 2, -h / 2)]


def entrywise_fd(params: dict[str, np.ndarray], losses: np.ndarray, h: float,
                 loss: float, dtype: str) -> tuple[dict, dict]:
    """Richardson-extrapolated central differences of every entry from the losses at
    entry_offsets(params, h), and per group the accuracy they carry: the larger of the measured
    truncation error of D(h/2), |D(h) - D(h/2)| / 3 (the extrapolated value is better still),
    and 10 x the round-off of the loss over the step."""
    out, tol, pos = {}, {}, 0
    roundoff = 10 * float(np.finfo(np.dtype(dtype)).eps) * max(abs(loss), 1.0) / h
    for k, v in params.items():
        n = v.size
        q = np.asarray(losses[pos:pos + 4 * n]).reshape(n, 4)  # (n, 4) at +h, -h, +h/2, -h/2
        d1 = (q[:, 0] - q[:, 1]) / (2 * h)  # (n,)
        d2 = (q[:, 2] - q[:, 3]) / h  # (n,)
        out[k] = ((4 * d2 - d1) / 3).reshape(v.shape)
        trunc = float(np.max(np.abs(d1 - d2))) / 3 if n else 0.0
        tol[k] = max(trunc if np.isfinite(trunc) else 0.0, roundoff)
        pos += 4 * n
    return out, tol


def distinct_tokens(case: Case, rng: np.random.Generator) -> Case:
    """The case with input tokens that differ at every step (as many steps as the vocabulary
    allows): then column x[t] of an input-weight gradient holds step t's gradient alone."""
    X, T = case.dims.X, case.dims.T
    xs = list(rng.permutation(X)[:T]) + list(rng.integers(0, X, size=max(T - X, 0)))
    return Case(case.arch, case.dims, case.params, [int(v) for v in xs], case.ys, case.state,
                case.seed)


def preact_norms(grads: dict, xs: list[int], d: Dims) -> list[float | None]:
    """|dL/da[t]| per step from the input-weight gradient's column of token x[t] (all gates of
    an LSTM or GRU together); None where the token repeats, as the column then mixes steps."""
    if "Wxh" in grads:
        cols = [grads["Wxh"]]
        off = 0
    else:
        cols = [g for k, g in grads.items() if k.startswith("W") and g.shape == (d.H, d.H + d.X)]
        off = d.H
    counts = {x: xs.count(x) for x in xs}
    out: list[float | None] = []
    for x in xs:
        if counts[x] > 1:
            out.append(None)
        else:
            v = np.concatenate([c[:, off + x] for c in cols])
            out.append(float(np.linalg.norm(v)) if np.all(np.isfinite(v)) else None)
    return out


def flow(ref_dh: np.ndarray, loss_steps: np.ndarray, user_pre=(), ref_pre=()) -> Flow:
    return Flow(reference=[float(np.linalg.norm(v)) for v in ref_dh],
                loss_steps=[float(v) for v in loss_steps],
                user_preact=list(user_pre), reference_preact=list(ref_pre))
