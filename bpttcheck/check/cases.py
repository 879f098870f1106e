"""Probe cases: sizes, parameters, sequences and initial states chosen to expose bugs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpttcheck.oracle.common import Arch, Dims

# X, H, Y distinct so a transposed or mis-sliced matrix cannot hide behind a square shape;
# T >= X so every input token appears at least once.
DEFAULT_DIMS = Dims(T=6, X=5, H=4, Y=3)


@dataclass
class Case:
    arch: str
    dims: Dims
    params: dict[str, np.ndarray]  # canonical names and shapes, float64
    xs: list[int]  # (T,) input tokens
    ys: list[int]  # (T,) target tokens
    state: tuple[np.ndarray, ...]  # (h0,) or (h0, c0), each (H,)
    seed: int

    def with_params(self, params: dict[str, np.ndarray]) -> Case:
        return Case(self.arch, self.dims, params, self.xs, self.ys, self.state, self.seed)

    def rounded(self, dtype, parts: frozenset[str] = frozenset({"params", "state"})) -> Case:
        """The case as a user computing in ``dtype`` actually sees it; ``parts`` says what
        the code rounds (its parameters, its initial state) when that is not everything."""
        def cast(a):
            return np.asarray(a, dtype=dtype).astype(np.float64)

        params = {k: cast(v) for k, v in self.params.items()} if "params" in parts else self.params
        state = tuple(cast(s) for s in self.state) if "state" in parts else self.state
        return Case(self.arch, self.dims, params, self.xs, self.ys, state, self.seed)


def _cover(n: int, T: int, rng: np.random.Generator) -> list[int]:
    """T tokens in 0..n-1 in random order, every token present when T >= n."""
    base = np.arange(n) if n <= T else rng.choice(n, size=T, replace=False)
    rest = rng.integers(0, n, size=max(T - len(base), 0))
    seq = np.concatenate([base, rest])
    rng.shuffle(seq)
    return [int(v) for v in seq[:T]]


def make_case(arch: Arch, dims: Dims, seed: int, logit_scale: float = 1.0) -> Case:
    """Parameters scaled so pre-activations and logits are of order 1 (no saturation, no
    vanishing), biases and initial states non-zero, recurrent matrices non-symmetric. A model
    with declared facts (check/model.py) gets cases it can run: Y = X, a zero initial state."""
    facts = getattr(arch, "facts", None)
    if facts:
        dims = facts.fit(dims)
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in arch.shapes(dims).items():
        fan_in = shape[1] if len(shape) == 2 else dims.H
        scale = 1.0 / np.sqrt(fan_in) if len(shape) == 2 else 0.3
        params[name] = rng.normal(0.0, scale, size=shape)
    # the output layer's weight (Y, H): the last such matrix (Whh is one too when Y == H)
    out_w = [k for k, s in arch.shapes(dims).items() if s == (dims.Y, dims.H)][-1]
    params[out_w] *= 1.5 * logit_scale  # logits of order 1 (times the probe's scale)
    state = tuple(rng.uniform(-0.6, 0.6, size=dims.H) for _ in arch.state_names)
    if facts and facts.zero_state:
        state = tuple(np.zeros(dims.H) for _ in arch.state_names)
    return Case(arch.name, dims, params, _cover(dims.X, dims.T, rng), _cover(dims.Y, dims.T, rng),
                state, seed)


def random_direction(params: dict[str, np.ndarray], rng: np.random.Generator,
                     only: str | None = None) -> dict[str, np.ndarray]:
    """A random unit-norm direction in parameter space (restricted to one group if ``only``)."""
    d = {k: (rng.standard_normal(v.shape) if only in (None, k) else np.zeros(v.shape))
         for k, v in params.items()}
    norm = np.sqrt(sum(float(np.sum(v * v)) for v in d.values()))
    return {k: v / norm for k, v in d.items()}


def step(params: dict[str, np.ndarray], d: dict[str, np.ndarray], s: float):
    return {k: params[k] + s * d[k] for k in params}
