"""Summary statistics of a run's scores (pure functions; reference values in the tests).

- mean with a 95% confidence interval from Student's t (n - 1 degrees of freedom): the scores
  of one scorer over a run's results are bounded in [0, 1], so the t interval is close to the
  bootstrap's for the sizes runs have (n >= 20) and needs no resampling;
- pass rate with the Wilson score interval (correct near 0 and 1, unlike the normal one).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval | None:
    """The t interval of the mean; None below two values (no spread to estimate)."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    deviation = statistics.stdev(values)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * deviation / math.sqrt(n)
    return Interval(low=max(0.0, mean - half), high=min(1.0, mean + half))


def wilson_interval(passed: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    if n == 0:
        return None
    z = float(scipy_stats.norm.ppf((1 + confidence) / 2))
    rate = passed / n
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half))
