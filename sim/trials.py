"""Virtual randomised trials, designed as real ones are: an allocation ratio, an analysis at a number of events or
at a calendar time, an optional interim analysis with group-sequential boundaries; over replicates, the hazard
ratios, the log-rank power with its Monte Carlo error, and the smallest trial that reaches a target power. A response
end point (EASL, RECIST objective response, PSA50: ``RESPONSE_ENDPOINTS``) is analysed at the end of follow-up by the
two-proportion score test (Pearson's chi-square without continuity correction), every randomised patient counted
(a patient without the assessment does not respond).

Replicate ``r`` randomises fresh patients, ``n_e`` to the experimental arm and ``n_r`` to the reference arm
(accrual, follow-up and dropout as in the config). Patient ``j`` of arm ``a`` (0 experimental, 1 reference) in
replicate ``r`` has the global id ``OFFSET + (2 r + a) STRIDE + j``, so trials never share patients with each other
or with ``rptsim run`` (ids below ``OFFSET``), a replicate's first ``n`` patients per arm are the same whatever ``n``
(common random numbers along the sample-size search), and results depend only on the seed, not on threads or
batching.

Calendar time runs from the first randomisation (day 0 of accrual); a patient's event happens on calendar day
``entry_day + time``. An analysis looks at the data on its cut-off day: the end of follow-up (the config's accrual
plus follow-up), a calendar time, or the day of the N-th event of both arms together; patients who entered after
the cut-off are left out and the others are censored at ``cut-off - entry``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import xarray as xr
from scipy import optimize, special

from sim import analysis, engine, group_sequential, outcomes
from sim.config import Config, ConfigError
from sim.survival import cox_two_group, logrank, two_proportion_z
from sim.units import DAYS_PER_MONTH

OFFSET = 1 << 40  # trial patients' ids start here
STRIDE = 1 << 20  # room for up to ~1 million patients per arm
REPLICATES_PER_BATCH = 64
ENDPOINTS = {"pfs": ("pfs_time_days", "pfs_event"), "os": ("os_time_days", "os_event")}  # time to event
# binary end points: per patient, from one arm's outcomes; and their names
RESPONSE_ENDPOINTS = {"easl": analysis.easl_index_response, "orr": analysis.objective_response,
                      "psa50": analysis.psa50_response}
ENDPOINT_CHOICES = (*ENDPOINTS, *RESPONSE_ENDPOINTS)
RESPONSE_NAMES = {"easl": "EASL response of the index lesion", "orr": "objective response (RECIST 1.1)",
                  "psa50": "PSA50 (PCWG3)"}
SCHEMA, SCHEMA_VERSION = "rptsim-trials", 1


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class TrialDesign:
    """One trial design: arms, size (``patients`` randomised in all, split by ``allocation``), analysis timing
    (``events`` or ``analysis_months``; neither: the end of follow-up) and an optional ``interim`` analysis at that
    fraction of the target events."""

    experimental: str
    reference: str
    patients: int
    replicates: int
    alpha: float = 0.05
    endpoint: str = "pfs"
    allocation: tuple[int, int] = (1, 1)
    events: int | None = None
    analysis_months: float | None = None
    interim: float | None = None

    @property
    def response(self) -> bool:
        """Whether the end point is a response (binary) rather than a time to event."""
        return self.endpoint in RESPONSE_ENDPOINTS

    def arm_sizes(self) -> tuple[int, int]:
        """(experimental, reference) patients: the experimental arm gets N a / (a + b) rounded half up, the
        reference arm the rest (2:1 of 90: 60 + 30; 1:1 of 229: 115 + 114)."""
        a, b = self.allocation
        n_e = _half_up(self.patients * a / (a + b))
        return n_e, self.patients - n_e

    def at(self, patients: int) -> TrialDesign:
        """The same design with ``patients`` randomised; an events-driven analysis keeps its events per patient."""
        events = None if self.events is None else max(1, _half_up(self.events * patients / self.patients))
        return replace(self, patients=patients, events=events)

    def look_events(self) -> list[int]:
        """Events at each analysis of an events-driven design: ceil(fraction x target) at the interim."""
        if self.interim is None:
            return [self.events]
        return [math.ceil(self.interim * self.events - 1e-9), self.events]  # 1e-9: 0.3 x 10 is 3.0000000000000004

    def bounds(self) -> np.ndarray:
        """|z| boundary of each analysis: Lan-DeMets O'Brien-Fleming type with an interim, else z_{1 - alpha/2}."""
        fractions = [1.0] if self.interim is None else [self.interim, 1.0]
        return group_sequential.boundaries(fractions, self.alpha)

    def check(self, cfg: Config) -> None:
        names = [a.name for a in cfg.arms]
        for arm in (self.experimental, self.reference):
            if arm not in names:
                raise ConfigError(f"--arms: unknown arm {arm!r} (defined: {names})")
        a, b = self.allocation
        if not (isinstance(a, int) and isinstance(b, int) and 1 <= a <= 100 and 1 <= b <= 100):
            raise ConfigError(f"--allocation = {a}:{b}: must be two integers in [1, 100], e.g. 2:1")
        n_e, n_r = self.arm_sizes()
        if not (1 <= n_e < STRIDE and 1 <= n_r < STRIDE):
            raise ConfigError(f"--patients = {self.patients}: allocation {a}:{b} gives the arms {n_e} and {n_r} "
                              f"patients; each must be in [1, {STRIDE - 1}]")
        if not 1 <= self.replicates <= 100_000:
            raise ConfigError(f"--replicates = {self.replicates}: must be in [1, 100000]")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"--alpha = {self.alpha}: must be in (0, 1)")
        if self.endpoint not in ENDPOINTS and not self.response:
            raise ConfigError(f"--endpoint = {self.endpoint!r}: must be one of {', '.join(ENDPOINT_CHOICES)}")
        if self.endpoint == "psa50" and cfg.psa is None:
            raise ConfigError(f"--endpoint psa50: {cfg.trial.name} does not model PSA (no [psa] section)")
        self._check_timing(cfg)

    def _check_timing(self, cfg: Config) -> None:
        if self.response and (self.events, self.analysis_months, self.interim) != (None, None, None):
            raise ConfigError(f"--endpoint {self.endpoint}: a response end point is analysed once, at the end of "
                              "follow-up: drop --events, --analysis-months and --interim")
        if self.events is not None and self.analysis_months is not None:
            raise ConfigError("--events and --analysis-months: give one analysis time, not both")
        if self.events is not None and not 1 <= self.events <= self.patients:
            raise ConfigError(f"--events = {self.events}: must be in [1, {self.patients}] (the patients randomised)")
        end = cfg.trial.accrual_months + cfg.trial.follow_up_months
        if self.analysis_months is not None and not 0 < self.analysis_months <= end:
            raise ConfigError(f"--analysis-months = {self.analysis_months}: must be in (0, {end:g}] (trial."
                              "accrual_months + trial.follow_up_months: the simulated follow-up ends there)")
        if self.interim is None:
            return
        if self.events is None:
            raise ConfigError(f"--interim = {self.interim}: needs --events (the interim analysis is at this fraction "
                              "of the target events)")
        if not 0 < self.interim < 1:
            raise ConfigError(f"--interim = {self.interim}: must be in (0, 1)")
        if self.look_events()[0] >= self.events:
            raise ConfigError(f"--interim = {self.interim}: the interim analysis at {self.look_events()[0]} of "
                              f"--events {self.events} would be the final analysis; give a smaller fraction")


def parse_allocation(text: str) -> tuple[int, int]:
    """``"2:1"`` -> (2, 1): experimental:reference, positive integers."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() and 1 <= int(p) <= 100 for p in parts):
        raise ConfigError(f"--allocation = {text!r}: must be EXPERIMENTAL:REFERENCE, two integers in [1, 100], "
                          "e.g. 2:1")
    return int(parts[0]), int(parts[1])


def choose_arms(cfg: Config, arms: list[str] | None) -> tuple[str, str]:
    """``arms`` as (experimental, reference); by default the config's reference arm and its only other arm."""
    if arms:
        return arms[0], arms[1]
    reference = cfg.reference_arm()
    others = [a.name for a in cfg.arms if a.name != reference]
    if len(others) != 1:
        raise ConfigError(f"--arms not given and {cfg.trial.name} has {len(others)} arms besides the reference arm "
                          f"{reference!r}: give --arms EXPERIMENTAL REFERENCE (arms: {[a.name for a in cfg.arms]})")
    return others[0], reference


def design_from_flags(cfg: Config, flags) -> TrialDesign:  # noqa: ANN001 - rptsim trial's argparse namespace
    """The design of ``rptsim trial``: its flags first, then the config's published design (``trial.
    randomised_patients``, ``trial.allocation``). ``--patients-per-arm N`` is N + N at 1:1."""
    experimental, reference = choose_arms(cfg, flags.arms)
    allocation = parse_allocation(flags.allocation) if flags.allocation else None
    if flags.patients_per_arm is not None:
        if allocation not in (None, (1, 1)):
            raise ConfigError(f"--patients-per-arm means 1:1, not --allocation {flags.allocation}: give the total "
                              "with --patients")
        if not 1 <= flags.patients_per_arm < STRIDE:
            raise ConfigError(f"--patients-per-arm = {flags.patients_per_arm}: must be in [1, {STRIDE - 1}]")
        patients, allocation = 2 * flags.patients_per_arm, (1, 1)
    elif flags.randomised_patients is not None:
        patients = flags.randomised_patients
    elif cfg.trial.randomised_patients is not None:
        patients = cfg.trial.randomised_patients
    else:
        raise ConfigError(f"{flags.config}: no trial size: give --patients N or --patients-per-arm N, or set "
                          "trial.randomised_patients")
    return TrialDesign(experimental, reference, patients, flags.replicates, flags.alpha, flags.endpoint,
                       allocation or cfg.trial.allocation, flags.events, flags.analysis_months, flags.interim)


def endpoint_name(cfg: Config, endpoint: str) -> str:
    """The end point as the trial names it: PFS by the config's name (rPFS for VISION), OS, or a response."""
    return {"pfs": cfg.trial.pfs_name, "os": "OS", **RESPONSE_NAMES}[endpoint]


def same_regimen(cfg: Config, a: str, b: str) -> bool:
    """Whether two arms apply the same treatment: their configs are equal but for name and label (every kernel
    input of an arm comes from its config and the shared sections), so the rejection rate of the test is then the
    type-I error."""
    def treatment(name: str) -> dict:
        return cfg.arm(name).model_dump(exclude={"name", "label"})

    return a == b or treatment(a) == treatment(b)


# ----------------------------------------------------------------------------------------------------------------
# One analysis


def event_days(entry: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Calendar days (``entry + time``) of the events, sorted."""
    return np.sort((entry + time)[np.asarray(event, dtype=bool)])


def at_cutoff(entry: np.ndarray, time: np.ndarray, event: np.ndarray, cutoff: float):  # noqa: ANN201
    """The data on calendar day ``cutoff``: (time, event) of the patients entered by then, censored at
    ``cutoff - entry``. An event counts when ``entry + time <= cutoff``, the same sum that :func:`event_days`
    gives, so an analysis at the N-th event's day sees exactly N events (without ties)."""
    event = np.asarray(event, dtype=bool)
    included = entry <= cutoff
    seen = entry + time <= cutoff
    return np.where(seen, time, cutoff - entry)[included], (event & seen)[included]


def _analyse(arms, cutoff: float) -> tuple[float, float, int, int]:  # noqa: ANN001
    """(z, Cox HR, events, patients) of one replicate's ``arms`` ((entry, time, event) experimental, reference)
    on the cut-off day."""
    (t_e, d_e), (t_r, d_r) = (at_cutoff(*arm, cutoff) for arm in arms)
    group = np.concatenate([np.ones(t_e.size), np.zeros(t_r.size)])
    hr = cox_two_group(np.concatenate([t_e, t_r]), np.concatenate([d_e, d_r]), group).hr
    return logrank(t_r, d_r, t_e, d_e).z, hr, int(d_e.sum() + d_r.sum()), t_e.size + t_r.size


# ----------------------------------------------------------------------------------------------------------------
# Replicated trials


@dataclass(frozen=True)
class TrialResult:
    """Per replicate (rows) and analysis (columns: the interim, if any, then the final). For a response end point:
    one analysis, ``effect`` the response-rate difference (experimental - reference), ``events`` the responders,
    and ``response_rates`` (replicates, 2) each arm's rate (experimental, reference)."""

    design: TrialDesign
    bounds: np.ndarray  # (looks,) |z| boundary
    z: np.ndarray  # signed log-rank (response: two-proportion) z, negative favours the experimental arm
    effect: np.ndarray  # Cox HR, experimental vs reference (response: rate difference)
    events: np.ndarray  # events analysed (response: responders)
    patients: np.ndarray  # patients randomised by the cut-off
    cutoff_day: np.ndarray  # calendar day of the data cut-off
    events_reached: np.ndarray  # (replicates,) the target events occurred within follow-up (True without events)
    response_rates: np.ndarray | None = None

    @property
    def p_value(self) -> np.ndarray:
        """Two-sided nominal p of each analysis (that of :func:`sim.survival.logrank`, or of the two-proportion
        score test)."""
        return 2.0 * special.ndtr(-np.abs(self.z))

    @property
    def crossed(self) -> np.ndarray:
        return np.abs(np.nan_to_num(self.z)) >= self.bounds

    @property
    def rejected(self) -> np.ndarray:
        """H0 rejected at some analysis (an analysis without information, z = nan, rejects nothing)."""
        return self.crossed.any(axis=1)

    @property
    def stop_look(self) -> np.ndarray:
        """Index of the analysis at which each trial stops: the first crossing, else the final analysis."""
        return np.where(self.rejected, np.argmax(self.crossed, axis=1), self.z.shape[1] - 1)

    @property
    def power(self) -> float:
        return float(np.mean(self.rejected))

    @property
    def power_mc_se(self) -> float:
        """Monte Carlo standard error of the power, sqrt(p (1 - p) / R) (binomial; Morris TP, White IR, Crowther MJ.
        Using simulation studies to evaluate statistical methods. Stat Med 2019;38:2074-2102, table 6)."""
        return math.sqrt(self.power * (1.0 - self.power) / self.z.shape[0])


def _cutoffs(design: TrialDesign, arms, end_day: float) -> tuple[list[float], bool]:  # noqa: ANN001
    """Cut-off days of the analyses of one replicate and whether its target events occurred within follow-up."""
    if design.events is None:
        return [end_day if design.analysis_months is None else design.analysis_months * DAYS_PER_MONTH], True
    days = event_days(*(np.concatenate(x) for x in zip(*arms, strict=True)))
    cut = [float(days[n - 1]) if n <= days.size else end_day for n in design.look_events()]
    return cut, design.events <= days.size


def _replicate_outcomes(cfg: Config, design: TrialDesign, reps: np.ndarray) -> list:
    """Per arm (experimental, reference), the end point of the replicates ``reps`` (rows) and their patients:
    responders (booleans) for a response, else ``[entry_day, time, event]``."""
    per_arm = []
    for a, (name, n) in enumerate(zip((design.experimental, design.reference), design.arm_sizes(), strict=True)):
        ids = (OFFSET + (2 * reps[:, None] + a) * STRIDE + np.arange(n)[None, :]).ravel()
        res = engine.simulate_outcomes(cfg, name, ids)
        if design.response:
            per_arm.append(RESPONSE_ENDPOINTS[design.endpoint](res).reshape(len(reps), n))
        else:
            per_arm.append([res[v].values.reshape(len(reps), n) for v in ("entry_day", *ENDPOINTS[design.endpoint])])
    return per_arm


def simulate_trials(cfg: Config, design: TrialDesign, progress: Callable[[int], None] | None = None) -> TrialResult:
    """Run ``design.replicates`` independent trials; ``progress(k)`` after each batch of ``k`` replicates."""
    sizes = design.arm_sizes()
    end_day = (cfg.trial.accrual_months + cfg.trial.follow_up_months) * DAYS_PER_MONTH
    bounds = design.bounds()
    shape = (design.replicates, bounds.size)
    z, effect, cutoff = np.empty(shape), np.empty(shape), np.empty(shape)
    events, patients = np.empty(shape, np.int64), np.empty(shape, np.int64)
    reached = np.empty(design.replicates, bool)
    rates = np.empty((design.replicates, 2)) if design.response else None
    for first in range(0, design.replicates, REPLICATES_PER_BATCH):
        reps = np.arange(first, min(design.replicates, first + REPLICATES_PER_BATCH))
        per_arm = _replicate_outcomes(cfg, design, reps)
        if design.response:  # one analysis at the end of follow-up, every randomised patient counted
            k_e, k_r = (x.sum(axis=1) for x in per_arm)
            rates[reps] = np.stack([k_e / sizes[0], k_r / sizes[1]], axis=1)
            z[reps, 0] = two_proportion_z(k_e, sizes[0], k_r, sizes[1])
            effect[reps, 0] = rates[reps, 0] - rates[reps, 1]
            events[reps, 0], patients[reps, 0], cutoff[reps, 0], reached[reps] = k_e + k_r, sum(sizes), end_day, True
        else:
            for i, r in enumerate(reps):
                arms = [tuple(v[i] for v in arm) for arm in per_arm]
                days, reached[r] = _cutoffs(design, arms, end_day)
                for k, day in enumerate(days):
                    # the simulated follow-up ends on end_day: analyse the data as simulated (no second censoring)
                    z[r, k], effect[r, k], events[r, k], patients[r, k] = _analyse(arms, day if day < end_day
                                                                                   else math.inf)
                    cutoff[r, k] = day
        if progress is not None:
            progress(len(reps))
    return TrialResult(design, bounds, z, effect, events, patients, cutoff, reached, rates)


def _spread(values: np.ndarray, digits: int = 4) -> tuple[float | None, list[float] | None]:
    """Median and central 95 % range over the trials of the finite ``values``."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None, None
    low, high = np.percentile(finite, [2.5, 97.5])
    return round(float(np.median(finite)), digits), [round(float(low), digits), round(float(high), digits)]


def summarise(result: TrialResult, same: bool) -> dict:
    """The JSON summary of one design: the test, power and its Monte Carlo SE, the final analysis's effect
    distribution (HR; response: the rate difference and each arm's mean rate), the analysis timing, the interim's
    stopping rate and, for identical arms, the type-I error."""
    d = result.design
    out = {
        "experimental_arm": d.experimental,
        "reference_arm": d.reference,
        "endpoint": d.endpoint,
        "allocation": list(d.allocation),
        "patients": d.patients,
        "patients_per_arm": list(d.arm_sizes()),
        "replicates": int(result.z.shape[0]),
        "alpha": d.alpha,
        "analysis": "events" if d.events else "calendar" if d.analysis_months else "end of follow-up",
        "test": "two-proportion score test" if d.response else "log-rank",
        "power": round(result.power, 4),
        "power_mc_se": round(result.power_mc_se, 4),
        "analysis_months_mean": round(float(result.cutoff_day[:, -1].mean()) / DAYS_PER_MONTH, 2),
        "same_regimen": same,
    }
    if d.response:
        out["rate_difference_median"], out["rate_difference_ci"] = _spread(result.effect[:, -1])
        out["response_rates_mean"] = [round(float(r), 4) for r in result.response_rates.mean(axis=0)]
        out["responders_mean"] = round(float(result.events[:, -1].mean()), 1)
    else:
        out["hr_median"], out["hr_ci"] = _spread(result.effect[:, -1])
        out["events_mean"] = round(float(result.events[:, -1].mean()), 1)
    if d.events is not None:
        out["target_events"] = d.events
        out["events_reached_fraction"] = round(float(result.events_reached.mean()), 4)
    if d.analysis_months is not None:
        out["analysis_months"] = d.analysis_months
    if d.interim is not None:
        stop = result.stop_look
        rows = np.arange(stop.size)
        out.update({
            "interim_fraction": d.interim,
            "interim_events": d.look_events()[0],
            "boundaries_z": [round(float(c), 4) for c in result.bounds],
            "interim_stop_fraction": round(float(np.mean(stop == 0)), 4),
            "expected_events": round(float(result.events[rows, stop].mean()), 1),
            "expected_patients": round(float(result.patients[rows, stop].mean()), 1),
        })
    if same:
        out["type_i_error"] = out["power"]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Sample size: search and fitted power curve


def required_patients(cfg: Config, design: TrialDesign, target_power: float, max_per_arm: int = 20_000,
                      progress: Callable[[int], None] | None = None,
                      known: dict[int, TrialResult] | None = None) -> tuple[int | None, dict[int, TrialResult]]:
    """Smallest trial (patients randomised) whose simulated power reaches ``target_power``, over whole
    randomisation blocks (multiples of a + b for an a:b allocation, so the ratio is exact): doubling from the
    design's size (or halving from it), then bisection to 2 % (or one block). No arm exceeds ``max_per_arm``.
    Returns the size (None if the cap is not enough) and every evaluated trial by its size, ``known`` ones
    (already simulated, by size) included and not simulated again."""
    block, largest = sum(design.allocation), max(design.allocation)
    top = max_per_arm // largest
    cache = dict(known or {})

    def power_at(m: int) -> float:
        if m * block not in cache:
            cache[m * block] = simulate_trials(cfg, design.at(m * block), progress)
        return cache[m * block].power

    lo, hi = 0, min(top, max(1, _half_up(design.patients / block)))  # power(lo) < target <= power(hi)
    while power_at(hi) < target_power:
        if hi == top:
            return None, cache
        lo, hi = hi, min(2 * hi, top)
    while hi - lo > max(1, math.ceil(0.02 * hi)):
        mid = (lo + hi) // 2
        if power_at(mid) >= target_power:
            hi = mid
        else:
            lo = mid
    return hi * block, cache


@dataclass(frozen=True)
class PowerCurve:
    """power(N) = Phi(a + b sqrt(N)), N the patients randomised. Under proportional hazards the log-rank z is about
    normal with mean -log(HR) sqrt(p (1 - p) D), D the events (Schoenfeld D. The asymptotic properties of
    nonparametric tests for comparing survival distributions. Biometrika 1981;68:316-319), and D grows in proportion
    to N, so the power of a two-sided test is about Phi(b sqrt(N) - z_{1 - alpha/2}): increasing in N for b > 0. The
    two-proportion z of a response end point has mean (p_e - p_r) / sqrt(p q (1/n_e + 1/n_r)), also proportional to
    sqrt(N) (Fleiss 2003, section 4.2)."""

    a: float
    b: float

    def power(self, patients: float | np.ndarray) -> float | np.ndarray:
        return special.ndtr(self.a + self.b * np.sqrt(patients))

    def patients_for(self, target_power: float) -> float | None:
        """N at which the fitted power is ``target_power`` (0 if reached at any size; None if b <= 0)."""
        if self.b <= 0:
            return None
        return max(0.0, (special.ndtri(target_power) - self.a) / self.b) ** 2


def fit_power_curve(patients, successes, replicates) -> PowerCurve | None:  # noqa: ANN001
    """Maximum-likelihood binomial (probit) fit of :class:`PowerCurve` to ``successes`` of ``replicates`` trials at
    each size in ``patients``. None when the MLE is not finite: fewer than two sizes, or the rejections separate
    (every size is all-or-nothing on one side of a threshold, as when every power is 0 or 1)."""
    x = np.sqrt(np.asarray(patients, dtype=np.float64))
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(replicates, dtype=np.float64)
    hit, miss = x[k > 0], x[k < n]
    # the MLE of a probit with one covariate is finite iff neither direction separates hits from misses
    if np.unique(x).size < 2 or not hit.size or not miss.size or miss.max() <= hit.min() or hit.max() <= miss.min():
        return None
    scale = x.max()  # fit on x / max(x): coefficients of order 1

    def minus_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = theta[0] + theta[1] * x / scale
        ll = k * special.log_ndtr(eta) + (n - k) * special.log_ndtr(-eta)
        # d/d eta: k phi/Phi(eta) - (n - k) phi/Phi(-eta), with phi/Phi = exp(log phi - log Phi) for stability
        log_phi = -0.5 * eta**2 - 0.5 * math.log(2 * math.pi)
        g = k * np.exp(log_phi - special.log_ndtr(eta)) - (n - k) * np.exp(log_phi - special.log_ndtr(-eta))
        return -float(ll.sum()), -np.array([g.sum(), (g * x / scale).sum()])

    fit = optimize.minimize(minus_log_likelihood, np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-9})
    return PowerCurve(float(fit.x[0]), float(fit.x[1] / scale))


def power_curve(results: dict[int, TrialResult]) -> tuple[list[dict], PowerCurve | None]:
    """Every evaluated size's power with its Monte Carlo SE (and fitted power), and the fitted curve."""
    sizes = sorted(results)
    fit = fit_power_curve(sizes, [int(results[n].rejected.sum()) for n in sizes],
                          [results[n].z.shape[0] for n in sizes])
    points = []
    for n in sizes:
        res = results[n]
        point = {"patients": n, "patients_per_arm": list(res.design.arm_sizes()), "power": round(res.power, 4),
                 "power_mc_se": round(res.power_mc_se, 4)}
        if res.design.events is not None:
            point["target_events"] = res.design.events
        if fit is not None:
            point["power_fitted"] = round(float(fit.power(n)), 4)
        points.append(point)
    return points, fit


def search_summary(design: TrialDesign, target_power: float, max_per_arm: int, needed: int | None,
                   evaluated: dict[int, TrialResult]) -> dict:
    """The JSON keys of a sample-size search: the size found, the power curve and its fit, and the fitted size
    rounded up to whole randomisation blocks."""
    points, fit = power_curve(evaluated)
    fitted = fit.patients_for(target_power) if fit is not None else None
    block = sum(design.allocation)
    return {
        "target_power": target_power,
        "max_patients_per_arm": max_per_arm,
        "required_patients": needed,
        "required_patients_per_arm": list(design.at(needed).arm_sizes()) if needed else None,
        "power_curve": points,
        "power_curve_fit": {"a": round(fit.a, 6), "b": round(fit.b, 6)} if fit is not None else None,
        "required_patients_fitted": None if fitted is None else max(block, block * math.ceil(fitted / block)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Per-replicate file


# a trial file's per-analysis variables: (name, TrialResult field, long_name), by whether the end point is a response
LOOK_VARIABLES = {
    False: (("z", "z", "signed log-rank statistic (O - E) / sqrt(V) of the experimental arm; negative favours it"),
            ("p_value", "p_value", "two-sided nominal log-rank p-value"),
            ("hazard_ratio", "effect", "Cox hazard ratio (Efron ties), experimental vs reference"),
            ("events", "events", "events analysed, both arms")),
    True: (("z", "z", "two-proportion score statistic (pooled), negative favours the experimental arm"),
           ("p_value", "p_value", "two-sided nominal p-value of the two-proportion score test"),
           ("rate_difference", "effect", "response rate, experimental minus reference"),
           ("events", "events", "responders, both arms")),
}


def dataset(cfg: Config, design: TrialDesign, results: dict[int, TrialResult], flags: dict) -> xr.Dataset:
    """Every evaluated size's per-replicate analyses as a Dataset (size x replicate x look), with the design (the
    command's ``flags`` and the resolved ``design``) and the provenance (config, seed, version, commit) in its
    attributes."""
    sizes = sorted(results)
    first = results[sizes[0]]
    looks = ["interim", "final"][-first.bounds.size:]

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(results[n], name) for n in sizes])

    per_look = ("size", "replicate", "look")
    statistic = {name: (per_look, stack(field), {"units": "1", "long_name": text})
                 for name, field, text in LOOK_VARIABLES[first.design.response]}
    if first.design.response:
        statistic["response_rate"] = (("size", "replicate", "trial_arm"), stack("response_rates"),
                                      {"units": "1", "long_name": f"{RESPONSE_NAMES[first.design.endpoint]} rate"})
    data = {
        **statistic,
        "patients_analysed": (per_look, stack("patients"), {"units": "1", "long_name": "patients randomised by "
                                                            "the data cut-off"}),
        "cutoff_day": (per_look, stack("cutoff_day"), {"units": "day", "long_name": "data cut-off, calendar day "
                                                       "from the first randomisation"}),
        "rejected": (("size", "replicate"), stack("rejected"), {"units": "1", "long_name": "H0 rejected at some "
                                                                "analysis"}),
        "events_reached": (("size", "replicate"), stack("events_reached"), {"units": "1", "long_name": "target "
                           "events reached within follow-up (always true without an events target)"}),
        "boundary_z": (("look",), first.bounds, {"units": "1", "long_name": "two-sided |z| efficacy boundary"}),
    }
    coords = {
        "size": ("size", np.array(sizes, np.int64), {"units": "1", "long_name": "patients randomised, both arms"}),
        "patients_experimental": ("size", np.array([results[n].design.arm_sizes()[0] for n in sizes], np.int64),
                                  {"units": "1", "long_name": f"patients randomised to {first.design.experimental}"}),
        "patients_reference": ("size", np.array([results[n].design.arm_sizes()[1] for n in sizes], np.int64),
                               {"units": "1", "long_name": f"patients randomised to {first.design.reference}"}),
        "replicate": ("replicate", np.arange(first.z.shape[0], dtype=np.int64), {"long_name": "virtual trial"}),
        "look": ("look", looks, {"long_name": "analysis"}),
    }
    if first.design.response:
        coords["trial_arm"] = ("trial_arm", ["experimental", "reference"], {"long_name": "randomised arm"})
    if first.design.events is not None:
        coords["target_events"] = ("size", np.array([results[n].design.events for n in sizes], np.int64),
                                   {"units": "1", "long_name": "events of the final analysis"})
    prov = outcomes.provenance(cfg, "summary", 0)
    attrs = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "flags_json": json.dumps(flags, sort_keys=True),
             "design_json": json.dumps(asdict(design), sort_keys=True)}
    attrs.update({key: prov[key] for key in ("scenario", "seed", "config_json", "rptsim_version", "git_commit",
                                             "created_utc")})
    attrs.update(outcomes.cf_attributes(f"rptsim trial of {cfg.trial.name}: {design.experimental} vs "
                                        f"{design.reference}, {design.replicates} virtual trials per size",
                                        prov["created_utc"]))
    return xr.Dataset(data, coords=coords, attrs=attrs)
