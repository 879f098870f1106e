"""Pieces shared by the reference models: the trace they return, softmax + cross-entropy
(with its known bugs), and the architecture descriptor."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bpttcheck.archmeta import Dims


@dataclass
class Trace:
    """Everything one forward/backward pass of a reference model produces."""

    loss: float
    loss_steps: np.ndarray  # (T,)   -log p[t][target[t]] (already scaled if reduction is mean)
    probs: np.ndarray  # (T, Y)
    state: tuple[np.ndarray, ...]  # last state: (h,) or (h, c), each (H,)
    grads: dict[str, np.ndarray]  # name -> array of the parameter's shape
    contrib: dict[str, np.ndarray]  # name -> (T, *shape): step t's share of the gradient
    dh: np.ndarray  # (T, H)  dL/dh[t+1], everything that reaches the hidden state of step t
    hs: np.ndarray | None = None  # (T+1, H) hidden states, hs[0] = h0


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


def finish(
    loss_steps: np.ndarray,
    contrib: dict[str, np.ndarray],
    bugs: frozenset[str],
    reduction: str,
) -> tuple[float, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sum per-step contributions into gradients and apply the loss reduction (and its bug)."""
    T = len(loss_steps)
    loss_scale = grad_scale = 1.0 / T if reduction == "mean" else 1.0
    variant = has(bugs, "loss.mean-grad-sum")
    if variant in ("", "mean-loss"):
        loss_scale, grad_scale = 1.0 / T, 1.0  # loss averaged, gradients summed
    elif variant == "mean-grad":
        loss_scale, grad_scale = 1.0, 1.0 / T  # loss summed, gradients averaged
    if grad_scale != 1.0:  # a copy of every per-step array only where it changes them
        contrib = {k: v * grad_scale for k, v in contrib.items()}
    grads = {k: v.sum(axis=0) for k, v in contrib.items()}
    steps = loss_steps * loss_scale
    return float(steps.sum()), steps, grads, contrib
