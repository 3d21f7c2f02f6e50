"""The 95% intervals and verdicts against values computed by hand: Student t on the seeds for a cell,
Welch's t for a difference, and each verdict's edge (one seed, zero variance, no published number)."""

import math

import pytest
from scipy import stats

from lesam.report.confidence import (
    ABOVE,
    BELOW,
    HELD,
    NO_VERDICT,
    ONE_SEED,
    REPRODUCED,
    REVERSED,
    UNRESOLVED,
    Interval,
    difference_interval,
    mean_interval,
    ordering,
    t_quantile,
    verdict,
)

# t_{0.975, df}, in closed form (not from the code under test):
T1 = 12.706204736174696  # df 1 (Cauchy): tan(0.475 pi)
T2 = 4.302652729749464  # df 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so t = sqrt(2 * 0.95^2 / (1 - 0.95^2))
T4 = 2.7764451051977934  # df 4 (Shaw 2006): a = 4p(1-p), q = cos(arccos(sqrt(a)) / 3) / sqrt(a), t = 2 sqrt(q - 1)


def test_t_quantiles_are_the_closed_forms():
    assert [t_quantile(df) for df in (1, 2, 4)] == pytest.approx([T1, T2, T4], rel=1e-12)


def test_mean_interval_three_seeds():
    interval = mean_interval([80.0, 80.2, 80.4])  # mean 80.2, sample std 0.2
    half = T2 * 0.2 / math.sqrt(3)  # 0.4968...
    assert (interval.low, interval.center, interval.high) == pytest.approx((80.2 - half, 80.2, 80.2 + half), rel=1e-12)


def test_mean_interval_two_seeds():
    interval = mean_interval([84.0, 85.0])  # mean 84.5, sample std sqrt(0.5)
    assert (interval.low, interval.high) == pytest.approx((84.5 - T1 * 0.5, 84.5 + T1 * 0.5), rel=1e-12)


def test_one_seed_has_no_interval_and_zero_variance_is_the_point():
    assert mean_interval([80.0]) is None and mean_interval([]) is None
    assert mean_interval([83.42, 83.42, 83.42]) == Interval(83.42, 0.0)


def test_verdicts():
    interval = Interval(80.2, 0.5)  # [79.7, 80.7]
    assert verdict(3, interval, 80.17) == REPRODUCED
    assert verdict(3, interval, 79.7) == REPRODUCED  # the ends belong to the interval
    assert verdict(3, interval, 79.5) == ABOVE  # our interval lies above the paper's number
    assert verdict(3, interval, 81.0) == BELOW
    assert verdict(1, None, 80.17) == ONE_SEED
    assert verdict(3, interval, None) == NO_VERDICT  # no published number
    assert verdict(0, None, 80.17) == NO_VERDICT  # no run finished
    point = Interval(83.42, 0.0)  # three equal values
    assert verdict(3, point, 83.42) == REPRODUCED
    assert (verdict(3, point, 83.43), verdict(3, point, 83.41)) == (BELOW, ABOVE)


def test_welch_interval_equal_variances():
    # variances 0.04 / 3 on each side: df = (2a)^2 / (2 a^2 / 2) = 4, se = sqrt(0.08 / 3)
    interval = difference_interval([82.0, 82.2, 82.4], [80.0, 80.2, 80.4])
    half = T4 * math.sqrt(0.08 / 3)  # 0.4534...
    assert (interval.low, interval.center, interval.high) == pytest.approx((2 - half, 2.0, 2 + half), rel=1e-12)


def test_welch_interval_one_side_without_variance():
    # a = 0.5 / 2, b = 0: df = a^2 / (a^2 / 1) = 1, se = 0.5
    interval = difference_interval([84.0, 85.0], [84.0, 84.0, 84.0])
    assert (interval.low, interval.high) == pytest.approx((0.5 - T1 * 0.5, 0.5 + T1 * 0.5), rel=1e-12)


def test_welch_interval_matches_scipys_unequal_variance_test():
    method, baseline = [81.2, 81.9, 82.6, 81.4], [80.1, 80.3, 80.2]  # unequal n and variances: df is not whole
    expected = stats.ttest_ind(method, baseline, equal_var=False).confidence_interval(0.95)
    interval = difference_interval(method, baseline)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high), rel=1e-12)


def test_difference_edges():
    assert difference_interval([82.0], [80.0, 80.2]) is None  # one seed on a side
    point = difference_interval([84.0, 84.0], [83.42, 83.42, 83.42])  # no variance on either side: the point
    assert (point.center, point.half_width) == (pytest.approx(0.58, rel=1e-12), 0.0)


def test_orderings():
    assert ordering(3, Interval(2.0, 0.45), 1.34) == HELD
    assert ordering(3, Interval(-1.0, 0.45), 1.45) == REVERSED
    assert ordering(3, Interval(-0.13, 0.2), -0.5) == UNRESOLVED
    assert ordering(3, Interval(-1.0, 0.45), -0.13) == HELD  # the paper's own ordering may be a loss
    assert ordering(3, Interval(0.0, 0.0), 1.0) == UNRESOLVED  # equal means: no ordering
    assert ordering(1, None, 1.34) == ONE_SEED
    assert ordering(0, None, 1.34) == NO_VERDICT  # a cell without runs
    assert ordering(3, Interval(2.0, 0.45), None) == NO_VERDICT  # no paper difference
