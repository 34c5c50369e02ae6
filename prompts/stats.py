"""Statistics for experiment results, with the standard library only.

Welch's t-test for means (Student t CDF through the regularized incomplete beta function)
and the two-proportion z-test for rates; 95% confidence intervals.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

_NORMAL = statistics.NormalDist()
ALPHA = 0.05
POWER = 0.8


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isnan(t) or df <= 0:
        return 1.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(probability: float, df: float) -> float:
    """The t value with P(T <= t) = probability (bisection on the CDF)."""
    target = 2.0 * (1.0 - probability)  # two-sided tail mass for a positive quantile
    low, high = 0.0, 1e4
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_two_sided_p(middle, df) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


@dataclass(frozen=True)
class MeanSummary:
    count: int
    mean: float | None
    low: float | None
    high: float | None
    variance: float | None


def summarize_mean(values: Sequence[float]) -> MeanSummary:
    count = len(values)
    if count == 0:
        return MeanSummary(0, None, None, None, None)
    mean = statistics.fmean(values)
    if count < 2:
        return MeanSummary(count, mean, None, None, None)
    variance = statistics.variance(values)
    half = t_quantile(0.975, count - 1) * math.sqrt(variance / count)
    return MeanSummary(count, mean, mean - half, mean + half, variance)


@dataclass(frozen=True)
class RateSummary:
    count: int
    successes: int
    rate: float | None
    low: float | None
    high: float | None


def summarize_rate(successes: int, count: int) -> RateSummary:
    """Rate with a Wilson 95% interval (sane at small counts and at 0% or 100%)."""
    if count == 0:
        return RateSummary(0, 0, None, None, None)
    z = _NORMAL.inv_cdf(1 - ALPHA / 2)
    rate = successes / count
    denominator = 1 + z * z / count
    centre = (rate + z * z / (2 * count)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / count + z * z / (4 * count * count)) / denominator
    return RateSummary(count, successes, rate, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    difference: float


def welch_t_test(a: MeanSummary, b: MeanSummary) -> TestResult | None:
    if a.variance is None or b.variance is None or a.mean is None or b.mean is None:
        return None
    se2 = a.variance / a.count + b.variance / b.count
    if se2 == 0:
        return TestResult(0.0, 1.0 if a.mean == b.mean else 0.0, b.mean - a.mean)
    t = (b.mean - a.mean) / math.sqrt(se2)
    df = se2 * se2 / ((a.variance / a.count) ** 2 / (a.count - 1) + (b.variance / b.count) ** 2 / (b.count - 1))
    return TestResult(t, t_two_sided_p(t, df), b.mean - a.mean)


def two_proportion_z_test(a: RateSummary, b: RateSummary) -> TestResult | None:
    if a.count == 0 or b.count == 0 or a.rate is None or b.rate is None:
        return None
    pooled = (a.successes + b.successes) / (a.count + b.count)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.count + 1 / b.count))
    if se == 0:
        return TestResult(0.0, 1.0, b.rate - a.rate)
    z = (b.rate - a.rate) / se
    return TestResult(z, 2 * (1 - _NORMAL.cdf(abs(z))), b.rate - a.rate)


def calls_needed_for_means(a: MeanSummary, b: MeanSummary) -> int | None:
    """Calls per variant to detect the observed difference at 5% significance and 80% power."""
    if a.mean is None or b.mean is None or a.variance is None or b.variance is None or a.mean == b.mean:
        return None
    z = _NORMAL.inv_cdf(1 - ALPHA / 2) + _NORMAL.inv_cdf(POWER)
    return math.ceil(z * z * (a.variance + b.variance) / (a.mean - b.mean) ** 2)


def calls_needed_for_rates(a: RateSummary, b: RateSummary) -> int | None:
    if a.rate is None or b.rate is None or a.rate == b.rate:
        return None
    z = _NORMAL.inv_cdf(1 - ALPHA / 2) + _NORMAL.inv_cdf(POWER)
    spread = a.rate * (1 - a.rate) + b.rate * (1 - b.rate)
    return math.ceil(z * z * spread / (a.rate - b.rate) ** 2)
