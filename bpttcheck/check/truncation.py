"""The reference truncated at k steps for any architecture, built from the untruncated
reference alone: each step's loss back-propagated through at most k steps (its own included).

The RNN's reference plants truncation itself (oracle ``bptt.truncated:k``); for the others
the truncated gradient of loss term t is the gradient over the window of steps s..t
(s = max(0, t-k+1)) started from the true state before step s, minus the same window without
step t: the loss terms s..t-1 are the same in both, so what is left is loss t's alone, cut at s.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from bpttcheck.check.cases import Case
from bpttcheck.oracle.common import Trace


def window(case: Case, s: int, t: int, state: tuple) -> Case:
    """Steps s..t-1 of the case, started from ``state``."""
    d = dataclasses.replace(case.dims, T=t - s)
    return Case(case.arch, d, case.params, case.xs[s:t], case.ys[s:t], state, case.seed)


def truncated(reference, case: Case, k: int, full: Trace, reduction: str = "sum") -> Trace:
    """``full`` with its gradients replaced by truncated BPTT of depth k; ``reference(case)``
    is the (sum-reduced) reference at a case. ``contrib`` holds each loss term's share."""
    T = case.dims.T
    states = [case.state] + [reference(window(case, 0, s, case.state)).state
                             for s in range(1, T)]  # the true state before step s
    zero = {n: np.zeros_like(g) for n, g in full.grads.items()}
    contrib = {n: np.zeros((T, *g.shape)) for n, g in full.grads.items()}
    for t in range(T):
        s = max(0, t - k + 1)
        upto = reference(window(case, s, t + 1, states[s])).grads
        before = reference(window(case, s, t, states[s])).grads if t > s else zero
        for n in contrib:
            contrib[n][t] = upto[n] - before[n]
    if reduction == "mean":
        contrib = {n: v / T for n, v in contrib.items()}
    return full.with_contrib(contrib)
