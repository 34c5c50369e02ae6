"""The paired statistics against reference values computed independently of the code under test:
McNemar p-values from the binomial formula by hand, the bootstrap interval against the normal
approximation on a synthetic case, and cases whose answer is known exactly."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from evaluations import paired
from evaluations.compare import compare_scores


def exact_two_sided(b: int, c: int) -> float:
    """Two-sided exact McNemar: 2 x P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), capped at 1."""
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (1, 9, 22 / 1024),  # 2 x (C(10,0) + C(10,1)) / 2^10
        (0, 5, 2 / 32),
        (3, 12, 1152 / 32768),  # 2 x (1 + 15 + 105 + 455) / 2^15
        (7, 7, 1.0),
        (10, 4, exact_two_sided(10, 4)),
    ],
)
def test_mcnemar_matches_the_binomial_formula(b, c, expected):
    # b items passed only in the baseline, c only in the candidate, plus concordant pairs that
    # must not change the answer.
    baseline = [True] * b + [False] * c + [True] * 20 + [False] * 5
    candidate = [False] * b + [True] * c + [True] * 20 + [False] * 5

    result = paired.mcnemar_exact(baseline, candidate)

    assert (result.only_baseline_passed, result.only_candidate_passed) == (b, c)
    assert result.p_value == pytest.approx(expected, rel=1e-12)


def test_mcnemar_without_discordant_pairs_is_one():
    assert paired.mcnemar_exact([True, False], [True, False]).p_value == 1.0


def test_bootstrap_interval_agrees_with_the_normal_approximation_on_a_large_sample():
    differences = np.random.default_rng(7).normal(0.05, 0.2, size=800)
    mean = differences.mean()
    half = 1.959964 * differences.std(ddof=1) / math.sqrt(differences.size)

    interval = paired.bootstrap_mean_interval(differences)

    assert interval is not None
    assert interval.low == pytest.approx(mean - half, abs=0.002)
    assert interval.high == pytest.approx(mean + half, abs=0.002)


def test_bootstrap_interval_of_constant_differences_is_that_constant():
    interval = paired.bootstrap_mean_interval([0.25] * 30)

    assert interval == paired.Interval(low=0.25, high=0.25)


def test_bootstrap_is_seeded_and_needs_two_pairs():
    values = [0.1, -0.3, 0.5, 0.0, 0.2, 0.9, -0.1]

    assert paired.bootstrap_mean_interval(values) == paired.bootstrap_mean_interval(values)
    assert paired.bootstrap_mean_interval([0.4]) is None
    assert paired.RESAMPLES >= 2000


def test_bootstrap_chunks_large_samples_without_changing_the_resample_count():
    # 20,000 pairs x 5,000 resamples is 100 M indices: done in chunks, memory stays bounded.
    interval = paired.bootstrap_mean_interval(np.zeros(20_000))

    assert interval == paired.Interval(low=0.0, high=0.0)


@pytest.mark.parametrize(
    ("interval", "mcnemar", "expected"),
    [
        (paired.Interval(0.01, 0.2), None, paired.BETTER),
        (paired.Interval(-0.2, -0.01), None, paired.WORSE),
        (paired.Interval(-0.1, 0.1), None, paired.NO_DIFFERENCE),
        (paired.Interval(-0.1, 0.1), paired.McNemar(1, 9, 22 / 1024), paired.BETTER),
        (paired.Interval(-0.1, 0.1), paired.McNemar(9, 1, 22 / 1024), paired.WORSE),
        (paired.Interval(0.01, 0.2), paired.McNemar(9, 1, 22 / 1024), paired.NO_DIFFERENCE),  # they disagree
        (None, paired.McNemar(0, 5, 0.0625), paired.NO_DIFFERENCE),
    ],
)
def test_verdict(interval, mcnemar, expected):
    assert paired.verdict(interval=interval, mcnemar=mcnemar) == expected


def test_compare_scores_pairs_items_by_key_and_counts_the_unpaired():
    keys = [uuid.UUID(int=n) for n in range(12)]
    # Ten shared items: the candidate passes 9 the baseline failed and fails 1 the baseline passed.
    baseline = dict.fromkeys(keys[:9], 0.0) | {keys[9]: 1.0, keys[10]: 1.0}
    candidate = dict.fromkeys(keys[:9], 1.0) | {keys[9]: 0.0, keys[11]: 1.0}

    row = compare_scores(scorer="exact", kind="exact_match", threshold=1.0, baseline=baseline, candidate=candidate)

    assert row.pairs == 10
    assert row.unpaired == 2
    assert row.baseline_mean == pytest.approx(0.1)
    assert row.candidate_mean == pytest.approx(0.9)
    assert row.difference == pytest.approx(0.8)
    assert row.mcnemar is not None
    assert (row.mcnemar.only_baseline_passed, row.mcnemar.only_candidate_passed) == (1, 9)
    assert row.mcnemar.p_value == pytest.approx(22 / 1024)
    assert row.verdict == paired.BETTER
    assert row.interval is not None
    assert row.interval.low > 0


def test_compare_scores_with_nothing_paired_has_no_detectable_difference():
    row = compare_scores(scorer="s", kind="exact_match", threshold=1.0, baseline={uuid.UUID(int=1): 1.0}, candidate={})

    assert (row.pairs, row.unpaired, row.verdict) == (0, 1, paired.NO_DIFFERENCE)
    assert row.summary == "no detectable difference with 0 items"
