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


def truncated(reference, case: Case, k: int, full: Trace, reduction: str = "sum",
              cache: dict | None = None, chain: bool = False) -> Trace:
    """``full`` with its gradients replaced by truncated BPTT of depth k; ``reference(case)``
    is the (sum-reduced) reference at a case. ``contrib`` holds each loss term's share.
    ``cache`` (a dict kept by the caller for one case and one ``reference``) holds the true
    states and the windows' gradients, which every depth shares: trying depths 2..T costs
    about one depth's windows, not T of them."""
    T = case.dims.T
    cache = {} if cache is None else cache

    def trace(s: int, t: int) -> Trace:
        """The reference over the window s..t-1 started from the true state before step s."""
        tr = cache.get((s, t))
        if tr is None:
            tr = cache[(s, t)] = reference(window(case, s, t, states[s]))
        return tr

    # the true state before step s. ``chain``: one step at a time, where the forward of steps
    # 0..s-1 in one window is the same arithmetic as these one-step windows chained (a
    # reference that rounds its inputs, float32's, rounds the state at every start instead)
    states = cache.setdefault("states", [case.state])
    while len(states) < T:
        s = len(states)
        states.append(trace(s - 1, s).state if chain else
                      reference(window(case, 0, s, case.state)).state)

    def grads(s: int, t: int) -> dict:
        return trace(s, t).grads

    zero = {n: np.zeros_like(g) for n, g in full.grads.items()}
    contrib = {n: np.zeros((T, *g.shape)) for n, g in full.grads.items()}
    for t in range(T):
        s = max(0, t - k + 1)
        upto = grads(s, t + 1)
        before = grads(s, t) if t > s else zero
        for n in contrib:
            contrib[n][t] = upto[n] - before[n]
    if reduction == "mean":
        contrib = {n: v / T for n, v in contrib.items()}
    return full.with_contrib(contrib)
