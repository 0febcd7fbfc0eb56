"""Survival statistics: Kaplan-Meier with confidence limits, RMST, log-rank, two-group Cox, Aalen-Johansen, Wilson.

Plain arrays in, small frozen dataclasses out, no hidden state (in the style of lifelines' API). The numbers match
lifelines 0.30 (``KaplanMeierFitter``, ``restricted_mean_survival_time``, ``logrank_test``, ``CoxPHFitter``,
``AalenJohansenFitter``) and ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``; see
``tests/test_survival.py`` for the tolerances.

Conventions shared by every estimator: times are non-negative floats, an event indicator is truthy for an event
and falsy for censoring, and a subject censored at a time tied with events is still at risk at that time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = [
    "CumulativeIncidence",
    "Estimate",
    "HazardRatio",
    "KaplanMeier",
    "LogRank",
    "aalen_johansen",
    "cox_two_group",
    "kaplan_meier",
    "KMFunctionals",
    "logrank",
    "newcombe_difference_ci",
    "paired_proportion_difference",
    "wilson_ci",
]


def _z(level: float) -> float:
    """Two-sided standard-normal quantile for a ``level`` confidence interval."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(special.ndtri(0.5 + 0.5 * level))


# ----------------------------------------------------------------------------------------------------------------
# Kaplan-Meier


@dataclass(frozen=True)
class KaplanMeier:
    """Product-limit estimate (Kaplan EL, Meier P. J Am Stat Assoc 1958;53:457-481).

    ``time`` are the distinct event times, ``survival`` the estimate just after each, ``at_risk`` and
    ``events`` the counts there. ``lower`` and ``upper`` are pointwise ``level`` confidence limits of
    ``survival`` at the same times (log-log transform of Greenwood's variance; see :func:`kaplan_meier`).
    """

    time: np.ndarray
    survival: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float = 0.95

    def at(self, t: float | np.ndarray) -> np.ndarray:
        """S(t): right-continuous step function, 1 before the first event."""
        idx = np.searchsorted(self.time, t, side="right")
        if self.time.size == 0:  # no events: S = 1 throughout (sim.analysis's copy raised IndexError here)
            return np.ones(np.shape(idx))
        return np.where(idx == 0, 1.0, self.survival[np.maximum(idx - 1, 0)])

    def median(self) -> float | None:
        """Smallest time with S(t) <= 0.5; ``None`` when the curve never reaches 0.5."""
        below = np.nonzero(self.survival <= 0.5)[0]
        return float(self.time[below[0]]) if below.size else None

    def median_ci(self) -> tuple[float | None, float | None]:
        """``level`` confidence interval of the median by inverting the pointwise band.

        Brookmeyer R, Crowley J. A confidence interval for the median survival time. Biometrics 1982;38:29-41,
        here with the log-log band as R's ``survfit`` and lifelines do: the lower limit is the first time the
        *lower* curve is <= 0.5 (it falls first), the upper limit the first time the *upper* curve is <= 0.5;
        equal to ``lifelines.utils.median_survival_times(kmf.confidence_interval_)``. ``None`` for a limit never
        reached (lifelines reports ``inf``).
        """
        return _first_at_or_below(self.time, self.lower, 0.5), _first_at_or_below(self.time, self.upper, 0.5)

    def rmst(self, horizon: float) -> float:
        """Restricted mean survival time: the area under the step function S(t) on [0, ``horizon``].

        Royston P, Parmar MKB. Restricted mean survival time: an alternative to the hazard ratio for the design
        and analysis of randomized trials with a time-to-event outcome. BMC Med Res Methodol 2013;13:152.
        Equal to ``lifelines.utils.restricted_mean_survival_time(kmf, t=horizon)``. Beyond the last event time
        the curve is held at its last value.
        """
        horizon = float(horizon)
        if not horizon >= 0.0:
            raise ValueError(f"horizon must be >= 0, got {horizon}")
        k = int(np.searchsorted(self.time, horizon, side="right"))
        knots = np.empty(k + 2)
        knots[0] = 0.0
        knots[1 : k + 1] = self.time[:k]
        knots[k + 1] = horizon
        heights = np.empty(k + 1)
        heights[0] = 1.0
        heights[1:] = self.survival[:k]
        return float(np.dot(np.diff(knots), heights))


def _run_starts(sorted_time: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values in a sorted array (``np.unique``'s
    ``return_index`` without its second sort)."""
    if sorted_time.size == 0:
        return np.zeros(0, np.intp)
    new = np.empty(sorted_time.size, dtype=bool)
    new[0] = True
    np.not_equal(sorted_time[1:], sorted_time[:-1], out=new[1:])
    return np.flatnonzero(new)


def _first_at_or_below(time: np.ndarray, curve: np.ndarray, q: float) -> float | None:
    below = np.nonzero(curve <= q)[0]
    return float(time[below[0]]) if below.size else None


def _event_times_up_to(order: np.ndarray, starts: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Per subject, the number of distinct event times <= its time (``np.searchsorted(event_times, time,
    side="right")``) from the sort already done: ``order`` the stable argsort of the times, ``starts`` the first
    sorted position of each run of equal times, ``kept`` the runs with an event."""
    up_to = np.empty(order.size, np.intp)
    up_to[order] = np.repeat(np.cumsum(kept), np.diff(starts, append=order.size))
    return up_to


def kaplan_meier(time: np.ndarray, event: np.ndarray, level: float = 0.95) -> KaplanMeier:
    """Kaplan-Meier estimator; censored times tied with events are at risk at that time.

    Pointwise limits use Greenwood's variance (Greenwood M. The natural duration of cancer. Reports on Public
    Health and Medical Subjects 33. London: HMSO; 1926), V = sum d / (n (n - d)), on the log(-log S) scale
    ("exponential Greenwood"; Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data. 2nd ed.
    Wiley; 2002): S ** exp(+-z sqrt(V) / log S). As in lifelines' default, a term with n = d (the curve drops
    to 0) contributes 0 to V, and both limits are 0 where S = 0.
    """
    return _kaplan_meier(time, event, level)[0]


def _kaplan_meier(time: np.ndarray, event: np.ndarray, level: float) -> tuple[KaplanMeier, np.ndarray]:
    """:func:`kaplan_meier`, and each subject's number of event times <= its own (:func:`_event_times_up_to`)."""
    z = _z(level)
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event).astype(bool)
    order = np.argsort(time, kind="stable")
    t_sorted, e_sorted = time[order], event[order]
    first = _run_starts(t_sorted)
    uniq = t_sorted[first]
    at_risk = len(time) - first
    events = np.add.reduceat(e_sorted.astype(np.int64), first) if len(time) else np.zeros(0, np.int64)
    keep = events > 0
    uniq, at_risk, events = uniq[keep], at_risk[keep], events[keep]
    survival = np.cumprod(1.0 - events / at_risk)
    lower, upper = _loglog_band(survival, at_risk, events, z)
    km = KaplanMeier(uniq, survival, at_risk, events, lower, upper, float(level))
    return km, _event_times_up_to(order, first, keep)


def _loglog_band(survival: np.ndarray, at_risk: np.ndarray, events: np.ndarray, z: float):
    n, d = at_risk.astype(np.float64), events.astype(np.float64)
    alive = n - d
    terms = np.divide(d, n * alive, out=np.zeros_like(n), where=alive > 0)
    sd = np.sqrt(np.cumsum(terms))
    positive = survival > 0.0
    with np.errstate(divide="ignore"):
        log_s = np.log(survival)
    # S ** exp(z sd / log S) <= S <= S ** exp(-z sd / log S), since log S < 0. At S = 1 (impossible at an
    # event time) the limits would be 0/0; at S = 0 both are 0.
    half = np.divide(z * sd, log_s, out=np.zeros_like(sd), where=positive)
    lower = np.where(positive, np.exp(log_s * np.exp(-half)), 0.0)
    upper = np.where(positive, np.exp(log_s * np.exp(half)), 0.0)
    return lower, upper


# ----------------------------------------------------------------------------------------------------------------
# Influence functions of Kaplan-Meier functionals (paired comparisons)


@dataclass(frozen=True)
class Estimate:
    """A statistic and each subject's contribution to its error: ``influence[i]`` is the subject's influence
    function divided by n, so ``sum(influence ** 2)`` estimates the variance and, for two statistics on the same
    subjects, ``sum((a.influence - b.influence) ** 2)`` the variance of their difference."""

    value: float
    influence: np.ndarray


class KMFunctionals:
    """Kaplan-Meier survival at a horizon and restricted mean survival time up to it, each with every subject's
    influence (:class:`Estimate`), for one sample: the curve and each subject's place on it are computed once, so
    each further horizon costs O(n).

    The influence function of S(t) is -S(t) [delta_i 1{T_i <= t} / y(T_i) - int_0^{min(T_i, t)} dLambda / y]
    with y the fraction at risk (Reid N. Influence functions for censored data. Ann Stat 1981;9:78-92); that of
    the RMST is its integral over [0, horizon] (Andersen PK, Hansen MG, Klein JP. Regression analysis of
    restricted mean survival time based on pseudo-observations. Lifetime Data Anal 2004;10:335-350). With A(u) the
    area under S from u to the horizon (RMST) or S(horizon) (survival), subject i's influence over n is
    -[delta_i 1{T_i <= horizon} A(T_i) / Y(T_i) - sum_{u_j <= min(T_i, horizon)} d_j A(u_j) / Y_j^2]. Its sum of
    squares is Greenwood's variance up to O(1/n) (tests/test_paired.py checks it against the bootstrap).
    """

    def __init__(self, time: np.ndarray, event: np.ndarray) -> None:
        self.time = np.asarray(time, dtype=np.float64)
        self.event = np.asarray(event).astype(bool)
        # the curve, and the event times <= each subject's time: searchsorted(u, min(T, h)) = min(this,
        # searchsorted(u, h))
        self.km, self._up_to = _kaplan_meier(self.time, self.event, 0.95)
        self._events = np.flatnonzero(self.event)  # indices: each estimate updates these rows, faster than by mask
        self._own = self._up_to[self._events] - 1  # an event's own time is the last of them

    def estimate(self, horizon: float, kind: str) -> Estimate:
        """S(``horizon``) (``kind="survival"``) or the RMST to ``horizon`` (``kind="rmst"``)."""
        if kind not in ("survival", "rmst"):
            raise ValueError(f"kind must be 'survival' or 'rmst', got {kind!r}")
        km = self.km
        u, at_risk, deaths = km.time, km.at_risk.astype(np.float64), km.events.astype(np.float64)
        inside = u <= horizon
        if kind == "survival":
            value = float(km.at(horizon))
            area = np.where(inside, value, 0.0)
        else:
            value = km.rmst(horizon)
            step = np.clip(np.minimum(np.append(u[1:], horizon), horizon) - u, 0.0, None)  # S = survival[j] here
            area = np.where(inside, np.cumsum((km.survival * step)[::-1])[::-1], 0.0)
        compensator = np.concatenate(([0.0], np.cumsum(deaths * area / at_risk**2)))
        influence = compensator[np.minimum(self._up_to, np.searchsorted(u, horizon, side="right"))]
        own = self._own
        influence[self._events] -= area[own] / at_risk[own]  # area is 0 beyond the horizon
        return Estimate(value, influence)


# ----------------------------------------------------------------------------------------------------------------
# Two-group tables shared by the log-rank test and the Cox model


def _two_group_table(time: np.ndarray, event: np.ndarray, group: np.ndarray):
    """At each distinct event time: at risk overall and in group 1, events overall and in group 1; and per row, the
    number of these times <= its own (:func:`_event_times_up_to`).

    One sort, then cumulative sums over the sorted arrays; O(n log n).
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event).astype(bool)
    group = np.asarray(group).astype(bool)
    if not time.shape == event.shape == group.shape or time.ndim != 1:
        raise ValueError("time, event and group must be 1-D arrays of one length")
    m = time.size
    if m == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z, z
    order = np.argsort(time, kind="stable")  # radix/timsort: about twice as fast as the default here
    ts, es, gs = time[order], event[order], group[order]
    starts = _run_starts(ts)
    cum_e = np.zeros(m + 1, np.int64)
    np.cumsum(es, out=cum_e[1:])
    cum_e1 = np.zeros(m + 1, np.int64)
    np.cumsum(es & gs, out=cum_e1[1:])
    cum_g = np.zeros(m + 1, np.int64)
    np.cumsum(gs, out=cum_g[1:])
    bounds = np.append(starts, m)
    d = cum_e[bounds[1:]] - cum_e[starts]
    keep = d > 0
    s = starts[keep]
    n = m - s
    n1 = cum_g[m] - cum_g[s]
    d1 = cum_e1[bounds[1:][keep]] - cum_e1[s]
    return n, n1, d[keep], d1, _event_times_up_to(order, starts, keep)


def _stack_two_samples(time_a, event_a, time_b, event_b):
    time_a, time_b = np.asarray(time_a, dtype=np.float64), np.asarray(time_b, dtype=np.float64)
    group = np.zeros(time_a.size + time_b.size, dtype=bool)
    group[time_a.size :] = True
    event = np.concatenate((np.asarray(event_a).astype(bool), np.asarray(event_b).astype(bool)))
    return np.concatenate((time_a, time_b)), event, group


# ----------------------------------------------------------------------------------------------------------------
# Log-rank test


@dataclass(frozen=True)
class LogRank:
    """Two-sample log-rank test: chi-square statistic (1 df), its p-value, and the signed statistic
    z = (O_B - E_B) / sqrt(V) of the second sample (z^2 = statistic; negative when B has fewer events than expected)."""

    statistic: float
    p_value: float
    z: float


def logrank(time_a: np.ndarray, event_a: np.ndarray, time_b: np.ndarray, event_b: np.ndarray) -> LogRank:
    """Two-sample log-rank test with the hypergeometric variance.

    Mantel N. Evaluation of survival data and two new rank order statistics arising in its consideration. Cancer
    Chemother Rep 1966;50:163-170. Peto R, Peto J. Asymptotically efficient rank invariant test procedures. J R
    Stat Soc A 1972;135:185-207. At each distinct event time with n at risk (n_b in B) and d events (d_b in B):
    E = d n_b / n, V = d (n_b / n) (1 - n_b / n) (n - d) / (n - 1); statistic (sum d_b - sum E)^2 / sum V,
    referred to chi-square with 1 df. Equal to ``lifelines.statistics.logrank_test``. ``nan`` when V = 0
    (no events, or the groups never share a risk set).
    """
    n, n1, d, d1, _ = _two_group_table(*_stack_two_samples(time_a, event_a, time_b, event_b))
    n, n1, d = n.astype(np.float64), n1.astype(np.float64), d.astype(np.float64)
    p1 = n1 / n
    expected = float(np.dot(d, p1))
    hyper = np.divide(n - d, n - 1.0, out=np.zeros_like(n), where=n > 1)
    var = float(np.sum(d * p1 * (1.0 - p1) * hyper))
    if not var > 0.0:
        return LogRank(math.nan, math.nan, math.nan)
    z = (float(d1.sum()) - expected) / math.sqrt(var)
    return LogRank(z * z, float(special.chdtrc(1, z * z)), z)


# ----------------------------------------------------------------------------------------------------------------
# Cox proportional hazards, one binary covariate


@dataclass(frozen=True)
class HazardRatio:
    """Hazard ratio of group 1 versus group 0 with its Wald ``level`` interval, SE of log HR and Wald p-value."""

    hr: float
    low: float
    high: float
    se_log_hr: float
    p_value: float


def _efron_terms(n: np.ndarray, n1: np.ndarray, d: np.ndarray, d1: np.ndarray):
    """Per tied death l = 0..d-1 at each event time, the Efron risk-set sums split as a0 + exp(beta) a1, with the
    event time ``which`` each row belongs to and its ``frac`` = l / d.

    With x in {0, 1}, Efron's l-th denominator is sum_{risk} e^{beta x} - (l/d) sum_{deaths} e^{beta x}
    = (n0 - l d0 / d) + e^beta (n1 - l d1 / d), and its x-weighted sum is e^beta (n1 - l d1 / d).
    """
    n0, d0 = n - n1, d - d1
    total = int(d.sum())
    if total == d.size:  # no tied events: l = 0 only
        return n0, n1, np.arange(d.size), np.zeros(d.size)
    which = np.repeat(np.arange(d.size), d)
    first = np.cumsum(d) - d
    frac = (np.arange(total) - first[which]) / d[which]
    a0 = n0[which] - frac * d0[which]
    a1 = n1[which] - frac * d1[which]
    return a0, a1, which, frac


def _efron_newton(a0: np.ndarray, a1: np.ndarray, events1: float, tol: float = 1e-10, max_iter: int = 100):
    """Solve Efron's score equation for b: U(b) = events1 - sum r = 0, r = e^b a1 / (a0 + e^b a1).

    The log partial likelihood events1 b - sum log(a0 + e^b a1) is concave (information sum r (1 - r) > 0), so
    U decreases in b: Newton's method with steps capped at 2 and kept inside the bracket [lo, hi] where U
    changes sign (bisecting when a step leaves it) converges from b = 0 without evaluating the likelihood
    (Press WH et al. Numerical Recipes. 3rd ed. 2007, section 9.4, ``rtsafe``). Returns (b, information), the
    information taken at the last iterate (which differs from b by less than ``tol``).
    """
    b, lo, hi = 0.0, -math.inf, math.inf
    r = np.empty_like(a0)
    buf = np.empty_like(a0)
    info = math.nan
    for _ in range(max_iter):
        w = math.exp(b)
        np.multiply(a1, w, out=r)
        np.add(a0, r, out=buf)
        np.divide(r, buf, out=r)
        total = float(r.sum())
        score = events1 - total
        info = total - float(np.dot(r, r))
        if score == 0.0:
            break
        if score > 0.0:
            lo = b
        else:
            hi = b
        if not info > 0.0:
            break
        step = min(max(score / info, -2.0), 2.0)
        if abs(step) < tol:  # converged; tested before the bracket, which a step below b's rounding can touch
            b += step
            break
        nb = b + step
        if not lo < nb < hi:  # the bound crossed is finite, and so is the other (the current b)
            nb = 0.5 * (lo + hi)
        b = nb
    return b, info


def cox_two_group(time: np.ndarray, event: np.ndarray, group: np.ndarray, level: float = 0.95,
                  cluster: np.ndarray | None = None) -> HazardRatio:
    """Cox proportional-hazards model with one binary covariate (group 1 vs 0), Efron's handling of ties.

    Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187-220. Efron B. The efficiency of
    Cox's likelihood function for censored data. J Am Stat Assoc 1977;72:557-565. Newton-Raphson on the log
    partial likelihood, SE from the observed information, Wald interval exp(b +- z se) and Wald p-value; equal to
    ``lifelines.CoxPHFitter`` (its default Efron ties) once both are converged.

    With ``cluster`` (one label per row, e.g. the patient when every patient appears once in each group), the SE is
    the robust sandwich of Lin DY, Wei LJ. The robust inference for the Cox proportional hazards model. J Am Stat
    Assoc 1989;84:1074-1078, summing the score residuals within each cluster (:func:`_score_residuals`); this is
    the SE that respects pairing, as R's ``coxph(..., cluster = id)``.

    Work is one sort plus O(number of events) per Newton step. When the likelihood is monotone (e.g. no events
    in one group while the other group has events at shared times) the MLE is infinite: ``hr`` is 0 or inf and
    the other fields are ``nan``; with no events, nobody in one group, or no event time at which both groups
    are at risk, everything is ``nan``.
    """
    z = _z(level)
    n, n1, d, d1, up_to = _two_group_table(time, event, group)
    d0 = d - d1
    n0 = n - n1
    # The score tends to sum d1 - sum_{n1>0} d as b -> +inf and to sum d1 - sum_{n0=0} d as b -> -inf.
    plus_inf = not np.any(d0[n1 > 0])
    minus_inf = not np.any(d1[n0 > 0])
    if plus_inf or minus_inf:
        hr = math.nan if plus_inf == minus_inf else (math.inf if plus_inf else 0.0)
        return HazardRatio(hr, math.nan, math.nan, math.nan, math.nan)
    a0, a1, which, frac = _efron_terms(n.astype(np.float64), n1.astype(np.float64), d, d1)
    b, info = _efron_newton(a0, a1, float(d1.sum()))
    if cluster is None:
        se = 1.0 / math.sqrt(info)
    else:
        residual = _score_residuals(event, group, b, a0, a1, which, frac, d, up_to)
        se = math.sqrt(float(np.sum(np.bincount(_codes(cluster), weights=residual) ** 2))) / info
    return HazardRatio(
        hr=math.exp(b),
        low=math.exp(b - z * se),
        high=math.exp(b + z * se),
        se_log_hr=se,
        p_value=float(2.0 * special.ndtr(-abs(b) / se)),
    )


def _codes(labels: np.ndarray) -> np.ndarray:
    """Each label's rank among the distinct labels (``np.unique``'s inverse); integer labels spanning no more values
    than there are labels (patient indices) are ranked by counting instead of a sort."""
    labels = np.asarray(labels).ravel()
    if labels.dtype.kind != "i" or labels.size == 0 or int(labels.max()) - int(labels.min()) >= labels.size:
        return np.unique(labels, return_inverse=True)[1]
    offset = labels - labels.min()
    seen = np.zeros(labels.size, bool)
    seen[offset] = True
    return (np.cumsum(seen) - 1)[offset]


def _score_residuals(event, group, b, a0, a1, which, frac, d, up_to) -> np.ndarray:  # noqa: ANN001
    """Efron-tie score residuals of every row at log HR ``b`` (their sum is the score, 0 at the MLE).

    Therneau TM, Grambsch PM. Modeling Survival Data: Extending the Cox Model. Springer 2000, section 3.7: at
    tied death step l of an event time with d deaths, each death counts 1/d and carries risk weight
    (1 - l/d) e^{b x}; a row's residual is sum over steps of (dN - at-risk weight / D) (x - xbar), with
    D = a0 + e^b a1 and xbar = e^b a1 / D. For binary x the per-step terms are summed per event time once, for
    x = 0 and x = 1, and each row picks up the cumulative sums up to its own time (``up_to``: the event times <= the
    row's, from :func:`_two_group_table`).
    """
    event = np.asarray(event).astype(bool)
    x = np.asarray(group).astype(bool)
    w = math.exp(b)
    denom = a0 + w * a1
    xbar = w * a1 / denom
    size = d.size  # the event times
    at_risk, at_death, own = [], [], []  # per event time, for x = 0 and x = 1
    for value in (0.0, 1.0):
        g = (value - xbar) / denom
        at_risk.append(np.concatenate(([0.0], np.cumsum(np.bincount(which, weights=g, minlength=size)))))
        at_death.append(np.bincount(which, weights=(1.0 - frac) * g, minlength=size)
                        - np.bincount(which, weights=g, minlength=size))
        own.append(np.bincount(which, weights=value - xbar, minlength=size) / d)
    last = np.maximum(up_to - 1, 0)
    residual = np.empty(event.size)
    for value, rows in ((0, ~x), (1, x)):
        died = event[rows]
        exposure = at_risk[value][up_to[rows]] + np.where(died, at_death[value][last[rows]], 0.0)
        residual[rows] = np.where(died, own[value][last[rows]], 0.0) - (w if value else 1.0) * exposure
    return residual


# ----------------------------------------------------------------------------------------------------------------
# Competing risks


@dataclass(frozen=True)
class CumulativeIncidence:
    """Cumulative incidence of each competing cause.

    ``time`` are the distinct times with an event of any cause; ``cif[c - 1]`` is the cumulative incidence of
    cause c just after each (shape ``(n_causes, len(time))``).
    """

    time: np.ndarray
    cif: np.ndarray

    def at(self, t: float | np.ndarray) -> np.ndarray:
        """CIF of every cause at ``t``: right-continuous, 0 before the first event; shape (n_causes, *shape(t))."""
        idx = np.searchsorted(self.time, t, side="right")
        padded = np.concatenate((np.zeros((self.cif.shape[0], 1)), self.cif), axis=1)
        return padded[:, idx]


def aalen_johansen(time: np.ndarray, cause: np.ndarray, n_causes: int) -> CumulativeIncidence:
    """Aalen-Johansen estimator of the cumulative incidence functions under competing risks.

    Aalen OO, Johansen S. An empirical transition matrix for non-homogeneous Markov chains based on censored
    observations. Scand J Stat 1978;5:141-150. ``cause`` 0 is censoring, 1..n_causes the competing events;
    F_c(t) = sum_{t_j <= t} S(t_j-) d_cj / n_j with S the all-cause Kaplan-Meier curve. Ties between causes
    need no special handling (lifelines' ``AalenJohansenFitter`` jitters them; without such ties it agrees,
    except that lifelines leaves out events at its first time point, t = 0, which are counted here).
    """
    n_causes = int(n_causes)
    time = np.asarray(time, dtype=np.float64)
    cause = np.asarray(cause)
    if time.shape != cause.shape or time.ndim != 1:
        raise ValueError("time and cause must be 1-D arrays of one length")
    if n_causes < 1:
        raise ValueError(f"n_causes must be >= 1, got {n_causes}")
    if cause.size and (cause.min() < 0 or cause.max() > n_causes or np.any(cause != np.round(cause))):
        raise ValueError(f"cause must hold integers 0..{n_causes}")
    cause = cause.astype(np.int64)
    m = time.size
    if m == 0:
        return CumulativeIncidence(np.zeros(0), np.zeros((n_causes, 0)))
    order = np.argsort(time, kind="stable")
    ts, cs = time[order], cause[order]
    starts = _run_starts(ts)
    slot = np.zeros(m, np.int64)
    slot[starts[1:]] = 1
    np.cumsum(slot, out=slot)
    counts = np.bincount(slot * (n_causes + 1) + cs, minlength=starts.size * (n_causes + 1))
    counts = counts.reshape(starts.size, n_causes + 1)[:, 1:]
    d = counts.sum(axis=1)
    keep = d > 0
    n = (m - starts[keep]).astype(np.float64)
    d, counts = d[keep], counts[keep]
    surv = np.cumprod(1.0 - d / n)
    before = np.concatenate(([1.0], surv[:-1]))
    cif = np.cumsum((before / n)[:, None] * counts, axis=0).T
    return CumulativeIncidence(ts[starts[keep]], np.ascontiguousarray(cif))


# ----------------------------------------------------------------------------------------------------------------
# Binomial proportion


def wilson_ci(successes, n, level: float = 0.95):
    """Wilson score interval for a binomial proportion.

    Wilson EB. Probable inference, the law of succession, and statistical inference. J Am Stat Assoc
    1927;22:209-212. Written as in Newcombe RG (Stat Med 1998;17:857-872) and scipy:
    (2k + z^2 +- z sqrt(4 k (n - k) / n + z^2)) / (2 (n + z^2)), with the bound set to exactly 0 (1) when
    successes = 0 (n), as ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``. Scalars give a tuple
    of floats; arrays broadcast and give a tuple of arrays.
    """
    z = _z(level)
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if np.any(m < 1) or np.any(k < 0) or np.any(k > m):
        raise ValueError("need n >= 1 and 0 <= successes <= n")
    z2 = z * z
    denom = 2.0 * (m + z2)
    center = (2.0 * k + z2) / denom
    half = z / denom * np.sqrt(4.0 * k * (m - k) / m + z2)
    low = np.where(k == 0, 0.0, center - half)
    high = np.where(k == m, 1.0, center + half)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def two_proportion_z(k1, n1, k2, n2):
    """Two-sample score statistic for equal proportions, ``(p2 - p1) / sqrt(pbar (1 - pbar) (1/n1 + 1/n2))`` with the
    pooled ``pbar = (k1 + k2) / (n1 + n2)``: its square is Pearson's chi-square of the 2x2 table without continuity
    correction (Fleiss JL, Levin B, Paik MC. Statistical Methods for Rates and Proportions, 3rd ed. 2003, section
    6.2), the test behind the sample size of ``sim.uncertainty.proportion_trial_size``. Signed so that a higher
    first proportion gives a negative value; NaN when every subject or none is a success (no information).
    Arrays broadcast."""
    k1, n1, k2, n2 = (np.asarray(v, dtype=np.float64) for v in (k1, n1, k2, n2))
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0.0, (k2 / n2 - k1 / n1) / np.sqrt(var), np.nan)


def newcombe_difference_ci(k1, n1, k2, n2, phi: float = 0.0, level: float = 0.95) -> tuple[float, float, float]:
    """Difference p1 - p2 of two proportions with Newcombe's hybrid score interval (his method 10).

    Newcombe RG. Interval estimation for the difference between independent proportions: comparison of eleven
    methods. Stat Med 1998;17:873-890 (``phi = 0``), and, for paired data, Newcombe RG. Improved confidence
    intervals for the difference between binomial proportions based on paired data. Stat Med 1998;17:2635-2650
    (method 10), with ``phi`` the correlation of the pairs: from the Wilson limits (l_i, u_i) of each proportion,
    lower = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2) and
    upper = d + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2). Returns (d, lower, upper).
    """
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, level)
    l2, u2 = wilson_ci(k2, n2, level)
    diff = p1 - p2
    below = math.sqrt(max((p1 - l1) ** 2 - 2.0 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    above = math.sqrt(max((u1 - p1) ** 2 - 2.0 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return diff, diff - below, diff + above


def paired_proportion_difference(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of the proportions of ``x`` and ``y`` observed on the same subjects (two boolean arrays), with
    Newcombe's paired method 10 interval (:func:`newcombe_difference_ci`).

    phi = (a d - b c) / sqrt((a + b)(c + d)(a + c)(b + d)) from the 2x2 table of pairs (a: both, b: x only, c: y
    only, d: neither), set to 0 when a margin is empty, as in Newcombe (1998). Returns (d, lower, upper).
    """
    x, y = np.asarray(x).astype(bool), np.asarray(y).astype(bool)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError("x and y must be non-empty 1-D arrays of one length")
    n = x.size
    a, b, c = int(np.sum(x & y)), int(np.sum(x & ~y)), int(np.sum(~x & y))
    d = n - a - b - c
    margins = float(a + b) * float(c + d) * float(a + c) * float(b + d)
    phi = (float(a) * d - float(b) * c) / math.sqrt(margins) if margins > 0 else 0.0
    return newcombe_difference_ci(a + b, n, a + c, n, phi, level)
