"""Finite differences, the Taylor-remainder rate test, and array comparison with tolerances
that follow from the dtype. Plain numpy; nothing here knows about user code or reports."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

# Finite-difference steps along a unit-norm direction. float64: Richardson-extrapolated
# central differences have truncation error ~h^4 and round-off ~eps*|L|/h, both ~1e-12 here.
FD_STEP = {np.dtype("float64"): 1e-3, np.dtype("float32"): 3e-2}
# How many ulps of accumulated round-off an entry may carry per sqrt(term) before it is wrong.
ULPS = 100.0
# Matching a planted bug needs less precision than passing a check (mutants differ by O(0.1))
# and more slack: a buggy formula (exp of exp) can be far worse conditioned than the right one,
# so the user's round-off is amplified.
MATCH_SLACK = 30.0


def eps_of(dtype) -> float:
    return float(np.finfo(stored_dtype(dtype)).eps)


def stored_dtype(dtype) -> np.dtype:
    """The dtype results are stored in. A judged precision may name the arithmetic and the
    storage apart, "float64/float32": computed in float64 (its loss shows it), returned as
    float32 (check/precision.py); a plain dtype is both."""
    return np.dtype(dtype.split("/")[-1] if isinstance(dtype, str) else dtype)


def arithmetic_dtype(dtype) -> np.dtype:
    """The precision a result stored in ``dtype`` is judged as having been computed in.

    float32 and float64 are judged as themselves. Wider types (longdouble) are judged as
    float64: the reference cannot see further. Narrower ones (float16) are judged as float32
    arithmetic rounded once on the way out: below float32 the round-off of a T-step sum
    (100 ulps x sqrt(terms) is most of the value in float16) would swamp the bugs a check is
    for, and numpy code that returns float16 mostly computed in something wider. The rounding
    on the way out is allowed for by oracle_rtol."""
    if isinstance(dtype, str) and "/" in dtype:  # the arithmetic named apart from the storage
        return arithmetic_dtype(dtype.split("/")[0])
    d = np.dtype(dtype)
    return np.dtype(np.float32) if d.itemsize <= 4 else np.dtype(np.float64)


def fd_rtol(dtype) -> float:
    """The share of the size of a directional derivative's terms finite differences may miss
    it by (besides 10x their measured noise)."""
    return 1e-6 if arithmetic_dtype(dtype) == np.float64 else 1e-2


def fd_step(dtype) -> float:
    return FD_STEP[arithmetic_dtype(dtype)]


def oracle_rtol(dtype, T: int, width: int, unit: float = 0.0) -> float:
    """Relative tolerance for comparing a user's gradient with the float64 reference.

    A correct implementation in ``dtype`` carries round-off of about eps * sqrt(terms summed),
    where an entry sums T steps of products of length ``width``; ULPS gives head-room for
    reassociation and different-but-equal formulas (sigmoid via exp or via tanh). A result
    stored narrower than its arithmetic (float16) adds one rounding of its own: eps of the
    stored type (the bound is taken relative to |r| + scale, so eps covers a half-ulp twice).

    ``unit``: a forward measured to differ from the reference by this much (relative; an
    epsilon inside a nonlinearity, check/perturbation.py) is judged as arithmetic whose unit
    error is ``unit`` instead of eps, when that is larger: the same model of how an error in
    every forward value reaches the gradients, with the error measured, not assumed."""
    work = arithmetic_dtype(dtype)
    stored = eps_of(dtype) if stored_dtype(dtype).itemsize < work.itemsize else 0.0
    return ULPS * max(eps_of(work), unit) * math.sqrt(max(T, 1) * max(width, 1)) + stored


def needed_rtol(user, ref, magnitude=None) -> float:
    """The smallest rtol at which compare(user, ref, rtol, magnitude=...) passes: the largest
    |u - r| / (|r| + scale) over the entries (0 where both are 0; inf for NaN/inf or shapes
    that differ). What a discrepancy measures in compare's own terms."""
    u = np.asarray(user, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if u.shape != r.shape or not np.all(np.isfinite(u)):
        return math.inf
    if u.size == 0:
        return 0.0
    size = np.abs(r) if magnitude is None else np.maximum(np.abs(r), np.abs(magnitude))
    bound = size + float(np.max(size))
    err = np.abs(u - r)
    with np.errstate(all="ignore"):
        ratio = np.where(bound > 0, err / np.where(bound > 0, bound, 1.0),
                         np.where(err > 0, np.inf, 0.0))
    return float(np.max(ratio))


def exact_multiple(user: np.ndarray, ref: np.ndarray) -> float | None:
    """a if ``user`` is exactly a x ``ref`` (to 1e-6 of |ref|), else None."""
    if user.shape != ref.shape:
        return None
    rr = float(np.sum(ref * ref))
    if rr <= 0:
        return None
    a = float(np.sum(user * ref) / rr)
    return a if np.linalg.norm(user - a * ref) <= 1e-6 * np.linalg.norm(ref) else None


@dataclass
class Comparison:
    """Entry-wise comparison of one array with its reference."""

    max_abs_error: float
    max_rel_error: float  # max over entries of |u - r| / max(|u|, |r|); 0 where both are 0
    worst_index: tuple[int, ...]
    worst_user: float
    worst_ref: float
    tolerance: float  # the absolute bound an entry's error must stay within
    scale: float  # max |ref| over the array, the yardstick of the bound
    n_bad: int  # entries over the bound
    n: int
    finite: bool  # the user's array has no NaN/inf

    @property
    def passed(self) -> bool:
        return self.finite and self.n_bad == 0


def compare(user: np.ndarray, ref: np.ndarray, rtol: float, floor: float = 0.0,
            magnitude: np.ndarray | None = None) -> Comparison:
    """Compare entry by entry: |u - r| <= rtol * (|r| + scale), scale = max|r| over the array.

    The scale term keeps an entry whose true value is near zero (cancellation) from demanding
    more relative accuracy than its neighbours carry. Where both values are zero the error is
    exactly zero (no 0/0). ``floor`` is an absolute bound for arrays whose reference is all zero.
    ``magnitude``, if given, is the size of the terms each entry sums (e.g. sum over time steps
    of |contribution|): a sum of large terms that cancel carries their round-off, not its own.
    """
    u = np.asarray(user, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    finite = bool(np.all(np.isfinite(u)))
    size = np.abs(r) if magnitude is None else np.maximum(np.abs(r), np.abs(magnitude))
    scale = float(np.max(size)) if r.size else 0.0
    with np.errstate(all="ignore"):
        err = np.abs(u - r)
        err = np.where(np.isfinite(err), err, np.inf)
        bound = rtol * (size + scale) + floor
        big = np.maximum(np.abs(u), np.abs(r))
        rel = np.where(big > 0, err / np.where(big > 0, big, 1.0), 0.0)
        rel = np.where(np.isnan(rel), np.inf, rel)
    if u.size == 0:
        return Comparison(0.0, 0.0, (), 0.0, 0.0, 0.0, 0.0, 0, 0, True)
    # the worst entry is the one furthest over (or closest to) its own bound; entries where
    # both values are zero have error 0 and never win
    ratio = np.where(bound > 0, err / np.where(bound > 0, bound, 1.0), np.where(err > 0, np.inf, 0.0))
    worst = np.unravel_index(int(np.argmax(ratio)) if np.any(ratio > 0) else 0, u.shape)
    return Comparison(
        max_abs_error=float(np.max(err)),
        max_rel_error=float(np.max(rel)),
        worst_index=tuple(int(i) for i in worst),
        worst_user=float(u[worst]),
        worst_ref=float(r[worst]),
        tolerance=float(rtol * (size[worst] + scale) + floor),
        scale=scale,
        n_bad=int(np.sum(err > bound)),
        n=int(u.size),
        finite=finite,
    )


# --------------------------------------------------------------------------- finite differences

def fd_offsets(h: float) -> tuple[float, ...]:
    """Where along the direction a check evaluates the loss: ±h, ±h/2 for Richardson
    central differences and +h/4 for the Taylor-remainder rate."""
    return (h, -h, h / 2, -h / 2, h / 4)


@dataclass
class DirectionalCheck:
    """The user's analytic directional derivative against finite differences of a loss."""

    analytic: float  # <g, d>
    numeric: float  # Richardson-extrapolated central difference
    error: float  # |analytic - numeric|
    tolerance: float
    noise: float  # estimated error of ``numeric`` (truncation + round-off)
    magnitude: float  # sum |g_i d_i|: the size of the terms behind ``analytic``
    taylor_rates: tuple[float, float]  # log2 ratios of Taylor remainders; ~2 right, ~1 wrong
    step: float

    @property
    def passed(self) -> bool:
        return self.error <= self.tolerance

    @property
    def rate_verdict(self) -> str:
        """'right' (rate ~2), 'wrong' (rate ~1) or 'noise' (remainders at round-off)."""
        r = self.taylor_rates[-1]
        if not math.isfinite(r):
            return "noise"
        if r > 1.6:
            return "right"
        if 0.6 < r < 1.4:
            return "wrong"
        return "noise"


def directional_check(
    loss0: float,
    losses: dict[float, float],
    analytic: float,
    magnitude: float,
    h: float,
    dtype,
    rtol: float | None = None,
) -> DirectionalCheck:
    """Judge ``analytic`` = <g, d> against the loss along d at the offsets of fd_offsets(h);
    ``rtol``, the share of the derivative's terms allowed, replaces fd_rtol(dtype) (a spec's
    [tolerances] fd_rtol)."""
    d1 = (losses[h] - losses[-h]) / (2 * h)
    d2 = (losses[h / 2] - losses[-h / 2]) / h
    numeric = (4 * d2 - d1) / 3  # Richardson: cancels the h^2 term of the central difference
    work = arithmetic_dtype(dtype)
    roundoff = 4 * eps_of(work) * max(abs(loss0), 1.0) / h
    noise = abs(numeric - d2) + roundoff
    rtol = fd_rtol(dtype) if rtol is None else rtol
    tolerance = max(10 * noise, rtol * magnitude, 1e-12)
    rates = []
    rem = [abs(losses[s] - loss0 - s * analytic) for s in (h, h / 2, h / 4)]
    for a, b in itertools.pairwise(rem):
        floor = 10 * roundoff * h  # remainder below this is round-off, not signal
        rates.append(math.log2(a / b) if a > floor and b > floor else math.nan)
    return DirectionalCheck(
        analytic=float(analytic), numeric=float(numeric), error=float(abs(analytic - numeric)),
        tolerance=float(tolerance), noise=float(noise), magnitude=float(magnitude),
        taylor_rates=(rates[0], rates[1]), step=h,
    )
