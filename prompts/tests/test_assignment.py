from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from prompts import assignment, stats


def test_assignment_is_sticky():
    first = [assignment.assign(experiment_id=7, subject=f"user-{i}", weights=[50, 50]) for i in range(200)]
    again = [assignment.assign(experiment_id=7, subject=f"user-{i}", weights=[50, 50]) for i in range(200)]

    assert first == again
    assert assignment.bucket(experiment_id=7, subject="user-1") == assignment.bucket(experiment_id=7, subject="user-1")


@pytest.mark.parametrize("weights", [[50, 50], [90, 10], [20, 30, 50]])
def test_split_converges_to_the_weights_within_two_points(weights):
    counts = Counter(
        assignment.assign(experiment_id=42, subject=f"subject-{i}", weights=weights) for i in range(10_000)
    )

    for index, weight in enumerate(weights):
        share = 100 * counts[index] / 10_000
        expected = 100 * weight / sum(weights)
        assert abs(share - expected) <= 2, (index, share, expected)


def test_different_experiments_shuffle_subjects_independently():
    subjects = [f"s{i}" for i in range(1000)]
    one = [assignment.assign(experiment_id=1, subject=s, weights=[1, 1]) for s in subjects]
    two = [assignment.assign(experiment_id=2, subject=s, weights=[1, 1]) for s in subjects]

    agreement = sum(a == b for a, b in zip(one, two, strict=True)) / len(subjects)
    assert 0.4 < agreement < 0.6


def test_segment_matching():
    assert assignment.matches_segment({"country": "FR"}, {"country": "FR", "plan": "pro"})
    assert not assignment.matches_segment({"country": "FR"}, {"country": "DE"})
    assert not assignment.matches_segment({"country": "FR"}, {})


def test_student_t_tail_matches_reference_values():
    # Reference values from statistical tables (two-sided).
    assert stats.t_two_sided_p(2.0, 10) == pytest.approx(0.073388, abs=1e-6)
    assert stats.t_two_sided_p(2.228139, 10) == pytest.approx(0.05, abs=1e-6)
    assert stats.t_quantile(0.975, 30) == pytest.approx(2.042272, abs=1e-5)


def test_welch_t_test_matches_a_worked_example():
    # Welch's classic example: means 20.82 / 22.99 ... computed by hand from the raw data below.
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]

    result = stats.welch_t_test(stats.summarize_mean(a), stats.summarize_mean(b))

    assert result is not None
    assert result.statistic == pytest.approx(2.46, abs=0.01)
    assert result.p_value == pytest.approx(0.021, abs=0.002)


def test_two_proportion_z_test():
    result = stats.two_proportion_z_test(stats.summarize_rate(50, 100), stats.summarize_rate(65, 100))

    assert result is not None
    assert result.statistic == pytest.approx(0.15 / math.sqrt(0.575 * 0.425 * 0.02), abs=1e-9)
    assert result.p_value == pytest.approx(0.0319, abs=1e-3)


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    generator = random.Random(5)
    covered = 0
    for _ in range(400):
        sample = [generator.gauss(10, 3) for _ in range(12)]
        summary = stats.summarize_mean(sample)
        assert summary.low is not None
        assert summary.high is not None
        covered += summary.low <= 10 <= summary.high
    assert 0.91 <= covered / 400 <= 0.99
    assert stats.summarize_rate(0, 10).high == pytest.approx(0.2775, abs=1e-3)  # Wilson, not 0
