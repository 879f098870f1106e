"""Pieces shared by the reference models: the trace they return, softmax + cross-entropy
(with its known bugs), and the architecture descriptor."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bpttcheck.archmeta import Dims


class Trace:
    """Everything one forward/backward pass of a reference model produces.

    ``contrib`` (name -> (T, *shape), each step's share of the gradient) is T times the
    parameters' memory, so a built-in model keeps it only when asked (diagnosis reads it, a
    passing check never does) and otherwise makes the run again, keeping it, on first use;
    ``magnitude`` (name -> sum over t of |step t's share|, the size of the terms a gradient
    cancels from, for the tolerances) is always there. A plugin's model may pass ``contrib``
    as before: the magnitudes are taken from it."""

    def __init__(self, loss: float, loss_steps: np.ndarray, probs: np.ndarray,
                 state: tuple[np.ndarray, ...], grads: dict[str, np.ndarray],
                 contrib: dict[str, np.ndarray] | None, dh: np.ndarray,
                 hs: np.ndarray | None = None, *,
                 magnitude: dict[str, np.ndarray] | None = None,
                 again: Callable[[], Trace] | None = None):
        self.loss = loss
        self.loss_steps = loss_steps  # (T,) -log p[t][target[t]] (scaled if reduction is mean)
        self.probs = probs  # (T, Y)
        self.state = state  # last state: (h,) or (h, c), each (H,)
        self.grads = grads  # name -> array of the parameter's shape
        self.dh = dh  # (T, H) dL/dh[t+1], everything that reaches the hidden state of step t
        self.hs = hs  # (T+1, H) hidden states, hs[0] = h0
        self._contrib = contrib
        self._again = again  # the same run, keeping the steps' shares
        self.only: frozenset[str] | None = None  # the groups it reports (keep_only)
        self.magnitude = magnitude if magnitude is not None else (
            {k: np.abs(v).sum(axis=0) for k, v in contrib.items()} if contrib is not None
            else {})

    @property
    def contrib(self) -> dict[str, np.ndarray]:
        if self._contrib is None:
            if self._again is None:
                raise ValueError("this trace kept no per-step contributions")
            self._contrib = self._again()._contrib
        assert self._contrib is not None
        return {k: v for k, v in self._contrib.items() if self.only is None or k in self.only}

    @contrib.setter
    def contrib(self, value: dict[str, np.ndarray]) -> None:
        self._contrib, self._again, self.only = value, None, None
        self.magnitude = {k: np.abs(v).sum(axis=0) for k, v in value.items()}

    def nbytes(self) -> int:
        """The memory its arrays hold (the per-step shares only when kept)."""
        arrays = [*self.grads.values(), *self.magnitude.values(),
                  *((self._contrib or {}).values())]
        return sum(v.nbytes for v in arrays)

    def keep_only(self, names) -> None:
        """Report only the groups ``names`` (a model without some parameters)."""
        self.only = frozenset(names)
        self.grads = {k: v for k, v in self.grads.items() if k in self.only}
        self.magnitude = {k: v for k, v in self.magnitude.items() if k in self.only}

    def with_contrib(self, contrib: dict[str, np.ndarray]) -> Trace:
        """A copy whose steps' shares are ``contrib`` (gradients and magnitudes from them)."""
        return Trace(self.loss, self.loss_steps, self.probs, self.state,
                     {k: v.sum(axis=0) for k, v in contrib.items()}, contrib, self.dh, self.hs)


def no_tap(key, value) -> None:
    """What a model records its intermediates with when nobody asked for them."""


class Steps:
    """Each step's share of every gradient as a model writes it, one step after another
    (``c[k][t] = v``, ``c[k][t][:, j] = v``): summed as the steps come, with the sum of their
    absolute values, into arrays of the parameters' shapes. The (T, ...) arrays of all the
    shares are kept only when ``keep``: at H = 512 they are a quarter of a gigabyte a run."""

    def __init__(self, P: dict[str, np.ndarray], names, T: int, keep: bool):
        self.keep = keep
        self.t: int | None = None
        self.shapes = {k: P[k].shape for k in names}
        self.dtype = P[next(iter(names))].dtype
        self.full = {k: np.zeros((T, *s), dtype=self.dtype) for k, s in self.shapes.items()} \
            if keep else None
        self.sum = {k: np.zeros(s, dtype=self.dtype) for k, s in self.shapes.items()}
        self.abs = {k: np.zeros(s, dtype=self.dtype) for k, s in self.shapes.items()}
        self.cur: dict[str, np.ndarray] = {}
        self.rewritten = False  # arrays() handed the kept shares out to be rewritten

    def __getitem__(self, k: str) -> _Group:
        return _Group(self, k)

    def buffer(self, k: str, t: int) -> np.ndarray:
        if t != self.t:
            self.flush()
            self.t = t
        if k not in self.cur:
            self.cur[k] = self.full[k][t] if self.full is not None else np.zeros(
                self.shapes[k], dtype=self.dtype)
        return self.cur[k]

    def flush(self) -> None:
        for k, a in self.cur.items():
            self.sum[k] += a
            self.abs[k] += np.abs(a)
        self.cur = {}

    def arrays(self) -> dict[str, np.ndarray]:
        """The kept (T, ...) arrays, to rewrite whole (truncated BPTT); needs ``keep``."""
        self.flush()
        assert self.full is not None, "Steps(keep=True) is needed to rewrite the shares"
        self.rewritten = True
        return self.full


class _Group:
    __slots__ = ("k", "steps")

    def __init__(self, steps: Steps, k: str):
        self.steps, self.k = steps, k

    def __getitem__(self, t: int) -> np.ndarray:
        return self.steps.buffer(self.k, t)

    def __setitem__(self, t: int, v) -> None:
        self.steps.buffer(self.k, t)[...] = v


@dataclass(frozen=True)
class Arch:
    """What the engine needs to know about an architecture."""

    name: str
    param_names: tuple[str, ...]
    state_names: tuple[str, ...]
    shapes: Callable[[Dims], dict[str, tuple[int, ...]]]
    run: Callable[..., Trace]
    # bias name -> weight name, used to pair per-gate weights and biases in reports
    gate_groups: tuple[tuple[str, ...], ...] = ()
    # legitimate variants of the cell (not bugs), planted like mutants: id -> what differs
    variants: tuple[tuple[str, str], ...] = ()


def has(bugs: frozenset[str], bug_id: str) -> str | None:
    """The variant of ``bug_id`` planted in ``bugs`` ('' for a bug without variants), or None."""
    for b in bugs:
        name, _, variant = b.partition(":")
        if name == bug_id:
            return variant
    return None


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free form of 1 / (1 + exp(-a))


def softmax_xent(z: np.ndarray, target: int, bugs: frozenset[str]) -> tuple[np.ndarray, float]:
    """Probabilities and the step's loss from logits z (Y,), as the correct code or a known
    softmax bug computes them."""
    de, sl = has(bugs, "softmax.double-exp"), has(bugs, "softmax.sum-logits")
    with np.errstate(all="ignore"):
        if de is not None or sl is not None:
            # variants: was the max subtracted before the first exp ("shift"), and is the second
            # exp a full softmax of the stored exponentials ("softmax", "softmax-raw")?
            shift = "shift" in (de or "") + (sl or "") or de == "softmax"
            e = np.exp(z - np.max(z)) if shift else np.exp(z)  # the stored exponentials
            if de in ("softmax", "softmax-raw"):
                num = np.exp(e - np.max(e))
                den = np.sum(num)
            elif de is not None:
                num, den = np.exp(e), np.sum(e)  # exp taken again in the numerator only
            else:
                num, den = e, np.sum(e)
            if sl is not None:
                den = np.sum(z)  # the denominator sums the raw logits
            p = num / den
        elif has(bugs, "softmax.unstable") is not None:
            e = np.exp(z)  # no max-subtraction: overflows for logits above ~709
            p = e / np.sum(e)
        else:
            zs = z - np.max(z)
            e = np.exp(zs)
            p = e / np.sum(e)
            loss = float(np.log(np.sum(e)) - zs[target])  # log-sum-exp: finite even if p underflows
            return p, loss / len(z) if has(bugs, "loss.mean-over-classes") == "both" else loss
        return p, float(-np.log(p[target]))


def output_grad(p: np.ndarray, target: int, bugs: frozenset[str]) -> np.ndarray:
    """dL/dz for softmax + cross-entropy: p - onehot(target) (or its sign-flipped bug, or the
    mean-over-classes bug: divided by Y, with the loss itself divided too in variant "both",
    the loss -mean(onehot * log p) over the Y classes)."""
    dy = p.copy()  # (Y,)
    dy[target] -= 1.0
    if has(bugs, "loss.mean-over-classes") is not None:
        dy /= len(p)
    return -dy if has(bugs, "loss.dy-sign") is not None else dy


def finish(loss_steps: np.ndarray, c: Steps, bugs: frozenset[str], reduction: str):
    """Sum the steps' shares into gradients and apply the loss reduction (and its bug):
    (loss, loss_steps, grads, magnitude, the kept shares or None)."""
    T = len(loss_steps)
    loss_scale = grad_scale = 1.0 / T if reduction == "mean" else 1.0
    variant = has(bugs, "loss.mean-grad-sum")
    if variant in ("", "mean-loss"):
        loss_scale, grad_scale = 1.0 / T, 1.0  # loss averaged, gradients summed
    elif variant == "mean-grad":
        loss_scale, grad_scale = 1.0, 1.0 / T  # loss summed, gradients averaged
    c.flush()
    kept = None if c.full is None else {k: v * grad_scale for k, v in c.full.items()}
    if kept is not None and c.rewritten:  # rewritten whole (truncation): sum them again,
        # step by step from the last as the stream did, so untouched groups come out the same
        assert c.full is not None
        grads, magnitude = {}, {}
        for k, v in c.full.items():
            g, a = np.zeros_like(v[0]), np.zeros_like(v[0])
            for t in reversed(range(len(v))):
                g += v[t]
                a += np.abs(v[t])
            grads[k], magnitude[k] = g * grad_scale, a * grad_scale
    else:  # the same sums, in the same order, whether the shares were kept or not
        grads = {k: v * grad_scale for k, v in c.sum.items()}
        magnitude = {k: v * grad_scale for k, v in c.abs.items()}
    steps = loss_steps * loss_scale
    return float(steps.sum()), steps, grads, magnitude, kept
