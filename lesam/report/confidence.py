"""95% confidence intervals over seeds (Student t), and what they say about the paper's numbers."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

LEVEL = 0.95
REPRODUCED, ABOVE, BELOW, ONE_SEED, NO_VERDICT = "reproduced", "above", "below", "one seed", "—"
HELD, REVERSED, UNRESOLVED = "held", "reversed", "unresolved"


@dataclass(frozen=True)
class Interval:
    """center ± half_width, the t interval at LEVEL; half_width 0 when the values do not vary."""

    center: float
    half_width: float

    @property
    def low(self) -> float:
        """The lower end."""
        return self.center - self.half_width

    @property
    def high(self) -> float:
        """The upper end."""
        return self.center + self.half_width


def t_quantile(df: float) -> float:
    """The two-sided LEVEL quantile of Student's t with `df` degrees of freedom, t_{0.975, df}."""
    return float(student_t.ppf(0.5 + LEVEL / 2, df))


def mean_interval(values: Sequence[float]) -> Interval | None:
    """The t interval of the mean of `values`: mean ± t_{0.975, n-1} s / sqrt(n); None for fewer than two."""
    n = len(values)
    if n < 2:
        return None
    return Interval(statistics.mean(values), t_quantile(n - 1) * statistics.stdev(values) / math.sqrt(n))


def difference_interval(method: Sequence[float], baseline: Sequence[float]) -> Interval | None:
    """Welch's t interval of mean(method) - mean(baseline), unpaired; None when a side has fewer than two values.

    Degrees of freedom by Welch-Satterthwaite; with no variance on either side the interval is the point.
    """
    if len(method) < 2 or len(baseline) < 2:
        return None
    a, b = (statistics.variance(v) / len(v) for v in (method, baseline))
    center = statistics.mean(method) - statistics.mean(baseline)
    if a + b == 0:
        return Interval(center, 0.0)
    df = (a + b) ** 2 / (a**2 / (len(method) - 1) + b**2 / (len(baseline) - 1))
    return Interval(center, t_quantile(df) * math.sqrt(a + b))


def verdict(n: int, interval: Interval | None, paper: float | None) -> str:
    """Whether the paper's number lies in our interval (ends included), above it or below it.

    one seed: n = 1 (no interval); NO_VERDICT: no published number, or no run.
    """
    if paper is None or n == 0:
        return NO_VERDICT
    if interval is None:
        return ONE_SEED
    if paper < interval.low:
        return ABOVE
    if paper > interval.high:
        return BELOW
    return REPRODUCED


def ordering(n: int, interval: Interval | None, paper: float | None) -> str:
    """Whether our difference's interval lies on the same side of 0 as the paper's difference.

    `n`: the runs of the side with fewer. unresolved: the interval holds 0; one seed: a side has one run;
    NO_VERDICT: no paper difference, a paper difference of 0 (no ordering to hold), or a side without runs.
    """
    if paper is None or paper == 0 or n == 0:
        return NO_VERDICT
    if interval is None:
        return ONE_SEED
    if interval.low <= 0 <= interval.high:
        return UNRESOLVED
    return HELD if (interval.low > 0) == (paper > 0) else REVERSED
