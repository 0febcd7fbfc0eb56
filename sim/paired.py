"""Paired comparisons: two arms that treat the same virtual patients with the same random draws.

Each patient is observed under both treatments, so an arm's effect is estimated from within-patient differences:
its confidence interval excludes the between-patient spread that an independent-sample interval carries (that
spread is what ``rptsim trial`` simulates). A simulator can also read each patient's own gain, which no real trial
observes. Arrays in, plain numbers out; :mod:`sim.analysis` names them in the run summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from sim.survival import KMFunctionals


@dataclass(frozen=True)
class Difference:
    """``estimate`` = arm minus reference, its paired ``level`` interval, and the SEs with and without pairing."""

    estimate: float
    low: float
    high: float
    se: float
    se_unpaired: float


def km_differences(time_a: np.ndarray, event_a: np.ndarray, time_r: np.ndarray, event_r: np.ndarray,
                   queries: list[tuple[float, str]], level: float = 0.95) -> list[Difference]:
    """Differences in Kaplan-Meier RMST (``kind="rmst"``) or survival (``kind="survival"``) at each
    ``(horizon, kind)`` of ``queries``, of two arms on the same patients (row i of each array is patient i).

    Paired delta method: the variance of the difference is the sum over patients of the squared difference of
    their two influences (:class:`sim.survival.KMFunctionals`), i.e. the variance of a mean of within-patient
    differences (Andersen PK, Perme MP. Pseudo-observations in survival analysis. Stat Methods Med Res
    2010;19:71-99); Wald interval. ``se_unpaired`` adds the two variances as if the arms held different patients.
    Coverage is tested by simulation in tests/test_paired.py.
    """
    return curve_differences(KMFunctionals(time_a, event_a), KMFunctionals(time_r, event_r), queries, level)


def curve_differences(arm: KMFunctionals, reference: KMFunctionals, queries: list[tuple[float, str]],
                      level: float = 0.95) -> list[Difference]:
    """:func:`km_differences` of two arms' curves already fitted on the same patients (the run summary fits each
    arm's once, for its own statistics and every comparison)."""
    if arm.time.shape != reference.time.shape:
        raise ValueError("paired arms need the same patients: arrays of one length")
    z = float(special.ndtri(0.5 + 0.5 * level))
    out = []
    for horizon, kind in queries:
        a, r = arm.estimate(horizon, kind), reference.estimate(horizon, kind)
        diff = a.value - r.value
        se = math.sqrt(float(np.sum((a.influence - r.influence) ** 2)))
        se_unpaired = math.sqrt(float(np.sum(a.influence**2) + np.sum(r.influence**2)))
        out.append(Difference(diff, diff - z * se, diff + z * se, se, se_unpaired))
    return out


def km_difference(time_a: np.ndarray, event_a: np.ndarray, time_r: np.ndarray, event_r: np.ndarray,
                  horizon: float, kind: str, level: float = 0.95) -> Difference:
    """One query of :func:`km_differences`."""
    return km_differences(time_a, event_a, time_r, event_r, [(horizon, kind)], level)[0]


def restricted_gain(time_a: np.ndarray, event_a: np.ndarray, time_r: np.ndarray, event_r: np.ndarray,
                    horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's gain min(T_arm, horizon) - min(T_reference, horizon), and whether it is known.

    A time restricted to the horizon is known when the event was observed or follow-up reached the horizon; the gain
    needs both arms' (the arms share each patient's censoring, so it is rarely known in one arm only). The mean
    gain over patients with complete follow-up to the horizon is the RMST difference.
    """
    known_a = np.asarray(event_a).astype(bool) | (time_a >= horizon)
    known_r = np.asarray(event_r).astype(bool) | (time_r >= horizon)
    return np.minimum(time_a, horizon) - np.minimum(time_r, horizon), known_a & known_r


def gain_distribution(gain: np.ndarray, threshold: float, unchanged: float) -> dict:
    """Fractions of patients gaining more than ``threshold``, losing more than it, and within ``unchanged`` of no
    change, with the mean and quantiles of the gain (same units as ``gain``; ``None`` when no patient)."""
    if gain.size == 0:
        return {key: None for key in ("gain_fraction", "loss_fraction", "unchanged_fraction", "mean", "p05", "p25",
                                      "median", "p75", "p95")}
    q = np.percentile(gain, [5, 25, 50, 75, 95])
    return {
        "gain_fraction": float(np.mean(gain > threshold)),
        "loss_fraction": float(np.mean(gain < -threshold)),
        "unchanged_fraction": float(np.mean(np.abs(gain) < unchanged)),
        "mean": float(gain.mean()),
        **dict(zip(("p05", "p25", "median", "p75", "p95"), (float(x) for x in q), strict=True)),
    }


def benefit_by_covariate(gain: np.ndarray, covariates: dict[str, np.ndarray], among: np.ndarray | None = None,
                         orders: dict[str, np.ndarray] | None = None, groups: int = 4) -> dict[str, dict]:
    """Which baseline covariates predict a patient's gain, among the patients ``among`` (a mask over the
    covariates' patients; all by default; ``gain`` holds theirs): per covariate, Spearman's rank correlation with
    the gain and the mean gain in each of ``groups`` quantile groups of the covariate (``q1`` lowest; a covariate
    with at most ``groups`` distinct values, e.g. a yes/no risk factor, is grouped by value instead), ordered by
    decreasing |rho|. rho is ``None`` when the covariate or the gain does not vary.

    Spearman C. The proof and measurement of association between two things. Am J Psychol 1904;15:72-101: the
    Pearson correlation of mid-ranks, as ``scipy.stats.spearmanr``. ``orders``: each covariate's argsort, when the
    caller asks about several subsets of one cohort (the ranks within a subset follow from it without sorting).
    """
    among = np.ones(gain.size, dtype=bool) if among is None else among
    from scipy.stats import rankdata  # here: importing scipy.stats costs ~0.5 s that a plain run does not need

    gain_rank = rankdata(gain)
    out = {}
    for name, full in covariates.items():
        x = full[among]
        varies = gain.size > 2 and np.ptp(x) > 0.0 and np.ptp(gain) > 0.0
        order = orders[name] if orders is not None else np.argsort(full, kind="stable")
        rho = float(np.corrcoef(_ranks_within(full, order, among), gain_rank)[0, 1]) if varies else None
        values = np.unique(x)
        if values.size <= groups:
            keys, group = [f"{v:g}" for v in values], np.searchsorted(values, x)
        else:
            keys = [f"q{g + 1}" for g in range(groups)]
            group = np.searchsorted(np.quantile(x, np.linspace(0.0, 1.0, groups + 1)[1:-1]), x, side="right")
        means = {key: float(gain[group == g].mean()) if np.any(group == g) else None for g, key in enumerate(keys)}
        out[name] = {"spearman_rho": rho, "mean_gain_by_group": means}
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1]["spearman_rho"] or 0.0)))


def _ranks_within(x: np.ndarray, order: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Mid-ranks (ties averaged, 1-based) of ``x[among]``, given ``order``, the argsort of ``x``."""
    sub = order[among[order]]  # the subset's patients in increasing x
    xs = x[sub]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]]) if xs.size else np.zeros(0, np.intp)
    ends = np.r_[starts[1:], xs.size]
    ranks = np.empty(x.size)
    ranks[sub] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks[among]
