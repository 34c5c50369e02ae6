"""Paired statistics for comparing two runs on the same items (pure functions; reference values
are checked in evaluations/tests/test_paired.py).

- the mean difference (candidate - baseline) over the items both runs scored, with a percentile
  interval from a paired bootstrap: items are resampled with replacement, each resample keeps an
  item's two scores together. Vectorised: one (resamples x n) index matrix, chunked so memory
  stays under ~40 MB whatever n is. The seed is fixed, so a comparison reads the same every time;
- pass/fail at the scorer's threshold with McNemar's exact test: under "no difference" the
  discordant pairs (passed in one run only) split 50/50, so the two-sided p-value is the
  binomial test of one side's count among them;
- a verdict: "better" / "worse" when the interval excludes 0 or McNemar rejects at `ALPHA` (the
  two agreeing in direction), "no detectable difference" otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 5_000
SEED = 20_240_601
_CELLS_PER_CHUNK = 5_000_000  # int64 indices: 40 MB per chunk

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class McNemar:
    only_baseline_passed: int  # b: passed in the baseline, failed in the candidate
    only_candidate_passed: int  # c: failed in the baseline, passed in the candidate
    p_value: float  # two-sided exact; 1.0 with no discordant pair


def bootstrap_mean_interval(
    differences: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval | None:
    """Percentile interval of the mean of paired differences; None below two pairs."""
    values = np.asarray(differences, dtype=np.float64)
    n = values.size
    if n < 2:
        return None
    generator = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    rows = max(1, _CELLS_PER_CHUNK // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        indices = generator.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[indices].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(low=float(low), high=float(high))


def mcnemar_exact(
    baseline_passed: Sequence[bool] | np.ndarray, candidate_passed: Sequence[bool] | np.ndarray
) -> McNemar:
    """McNemar's exact test on paired pass/fail outcomes (the same items in the same order)."""
    baseline = np.asarray(baseline_passed, dtype=bool)
    candidate = np.asarray(candidate_passed, dtype=bool)
    only_baseline = int(np.count_nonzero(baseline & ~candidate))
    only_candidate = int(np.count_nonzero(~baseline & candidate))
    discordant = only_baseline + only_candidate
    if discordant == 0:
        return McNemar(only_baseline_passed=0, only_candidate_passed=0, p_value=1.0)
    p_value = float(scipy_stats.binomtest(only_candidate, discordant, 0.5, alternative="two-sided").pvalue)
    return McNemar(only_baseline_passed=only_baseline, only_candidate_passed=only_candidate, p_value=min(1.0, p_value))


def verdict(*, interval: Interval | None, mcnemar: McNemar | None, alpha: float = ALPHA) -> str:
    """One word per scorer. Each test votes when it is significant; opposite votes cancel out."""
    votes = set()
    if interval is not None:
        if interval.low > 0:
            votes.add(BETTER)
        elif interval.high < 0:
            votes.add(WORSE)
    if mcnemar is not None and mcnemar.p_value < alpha:
        votes.add(BETTER if mcnemar.only_candidate_passed > mcnemar.only_baseline_passed else WORSE)
    if len(votes) == 1:
        return votes.pop()
    return NO_DIFFERENCE
