"""Aggregate statistics (hygen.stats) against values worked out by hand."""

import numpy as np
import pytest

from hygen import stats


def test_iqm_drops_a_quarter_from_each_end():
    # 8 scores: floor(8/4) = 2 cut from each end -> mean of 3, 4, 5, 6
    table = np.array([[1.0, 8.0], [2.0, 7.0], [3.0, 6.0], [4.0, 5.0]])  # [runs, tasks]
    assert stats.iqm(table) == 4.5
    # 5 scores: floor(5/4) = 1 cut from each end -> mean of 0.2, 0.3, 0.9
    assert stats.iqm([[0.0], [0.2], [0.3], [0.9], [1.0]]) == pytest.approx(1.4 / 3)
    # an outlier moves the mean but not the IQM
    assert stats.iqm([1.0, 2.0, 3.0, 100.0]) == 2.5 and stats.mean([1.0, 2.0, 3.0, 100.0]) == 26.5


def test_bootstrap_interval_of_two_runs():
    # One task, runs 0 and 1. A bootstrap sample draws two runs: mean 0 (p 1/4), 0.5 (1/2), 1 (1/4),
    # so the 2.5 and 97.5 percentiles are 0 and 1. (IQM of 2 scores cuts nothing: the mean.)
    point, low, high = stats.stratified_bootstrap_ci([[0.0], [1.0]], stats.iqm, reps=4000)
    assert (point, low, high) == (0.5, 0.0, 1.0)
    # the interval at 40 % confidence (30th..70th percentile) is the middle value
    assert stats.stratified_bootstrap_ci([[0.0], [1.0]], stats.mean, reps=4000, confidence=0.4) == (0.5, 0.5, 0.5)


def test_bootstrap_is_stratified_by_task():
    # Each task's runs agree: any per-task resampling leaves the table unchanged, so the interval
    # collapses. (Pooling the 4 scores and resampling them would not: 0 and 1 would mix.)
    table = [[0.0, 1.0], [0.0, 1.0]]
    assert stats.stratified_bootstrap_ci(table, stats.mean) == (0.5, 0.5, 0.5)


def test_bootstrap_is_reproducible():
    table = np.random.default_rng(1).random((5, 3))
    assert stats.stratified_bootstrap_ci(table, seed=3) == stats.stratified_bootstrap_ci(table, seed=3)


def test_probability_of_improvement_by_hand():
    # One task. Pairs (x, y): x=1 beats y=0 only (1 of 3); x=2 ties twice (0.5+0.5) and beats 0 (1);
    # x=3 beats all three (3): (1 + 2 + 3) / 9 = 2/3.
    p, low, high = stats.probability_of_improvement([[1.0], [2.0], [3.0]], [[2.0], [2.0], [0.0]])
    assert p == pytest.approx(2 / 3)
    assert 0.0 <= low <= p <= high <= 1.0
    # two tasks: the per-task probabilities (1 and 0) are averaged
    p2, *_ = stats.probability_of_improvement([[1.0, 0.0]], [[0.0, 1.0]])
    assert p2 == 0.5
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement([[1.0, 0.0]], [[0.0]])


def test_performance_profile_by_hand():
    # task A runs 0.2, 0.6; task B runs 0.4, 1.0. Fraction above tau per task, averaged:
    # tau 0: (1 + 1)/2 = 1; tau 0.5: (0.5 + 0.5)/2 = 0.5; tau 0.8: (0 + 0.5)/2 = 0.25; tau 1: 0
    table = [[0.2, 0.4], [0.6, 1.0]]
    prof, low, high = stats.performance_profile(table, [0.0, 0.5, 0.8, 1.0])
    assert prof.tolist() == [1.0, 0.5, 0.25, 0.0]
    assert np.all(low <= prof) and np.all(prof <= high)
    assert low[0] == high[0] == 1.0  # every run is above 0 in every resample


def test_score_matrix_needs_every_task():
    assert stats.score_matrix([{"3m": 1.0, "4m": 0.5}], ["4m", "3m"]).tolist() == [[0.5, 1.0]]
    with pytest.raises(ValueError, match="no score for task '4m'"):
        stats.score_matrix([{"3m": 1.0}], ["3m", "4m"])


def test_paired_difference_interval_by_hand():
    # Two seeds, differences 0 and 10: a bootstrap sample of two seeds has mean 0 (p 1/4), 5 (1/2)
    # or 10 (1/4), so the 95 % interval is [0, 10] (the interval holds 0: inside the noise).
    assert stats.paired_difference_ci([0.0, 10.0], reps=4000) == (5.0, 0.0, 10.0)
    # every seed agrees: no spread to resample
    assert stats.paired_difference_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="at least one seed"):
        stats.paired_difference_ci([])
