"""Pure helpers for the distributions the agent generators draw from.

Lognormals are parametrised by their arithmetic **mean** and shape **sigma** (the standard deviation
of ``log X``), because the sources quote means: ``mean = exp(mu + sigma**2 / 2)``.
"""
from __future__ import annotations

import math

import numpy as np

Z_95 = 1.6448536269514722  # standard-normal 95th percentile (closed form, scipy.stats.norm.ppf(0.95))


def lognormal_mu(mean: float, sigma: float) -> float:
    """``mu`` of the lognormal whose arithmetic mean is ``mean``: ``mu = ln(mean) - sigma**2 / 2``."""
    return math.log(mean) - sigma * sigma / 2.0


def lognormal_sigma_from_p95_over_mean(ratio: float) -> float:
    """Shape ``sigma`` of a lognormal whose p95 is ``ratio`` times its mean.

    ``p95 / mean = exp(mu + Z_95*sigma) / exp(mu + sigma**2/2) = exp(Z_95*sigma - sigma**2/2)``, so
    ``sigma**2/2 - Z_95*sigma + ln(ratio) = 0``; the smaller root is the one on the rising branch.
    A solution exists for ``1 < ratio <= exp(Z_95**2 / 2)`` (about 3.87).
    """
    c = math.log(ratio)
    disc = Z_95 * Z_95 - 2.0 * c
    if not (ratio > 1.0) or disc < 0.0:
        raise ValueError(f"p95/mean = {ratio!r}: expected 1 < ratio <= {math.exp(Z_95 ** 2 / 2):.3f}")
    return Z_95 - math.sqrt(disc)


def draw_lognormal(rng: np.random.Generator, mean: float, sigma: float) -> float:
    """One lognormal draw with the given mean; ``sigma == 0`` returns ``mean`` (no draw)."""
    if sigma == 0.0:
        return float(mean)
    return float(rng.lognormal(lognormal_mu(mean, sigma), sigma))


def draw_tokens(rng: np.random.Generator, mean: float, sigma: float, max_tokens: int) -> int:
    """A token count: a lognormal draw rounded to an integer and clipped to ``[1, max_tokens]``."""
    x = draw_lognormal(rng, mean, sigma)
    return int(min(max_tokens, max(1, round(x))))


def draw_lognormals(rng: np.random.Generator, mean: float, sigma: float, n: int) -> list[float]:
    """``n`` lognormal draws with the given mean, in one call to ``rng`` (fast for whole sessions)."""
    if sigma == 0.0:
        return [float(mean)] * n
    return rng.lognormal(lognormal_mu(mean, sigma), sigma, n).tolist()


def draw_token_counts(rng: np.random.Generator, mean: float, sigma: float, max_tokens: int, n: int) -> list[int]:
    """``n`` token counts: lognormal draws rounded to integers and clipped to ``[1, max_tokens]``."""
    return [int(min(max_tokens, max(1, round(x)))) for x in draw_lognormals(rng, mean, sigma, n)]
