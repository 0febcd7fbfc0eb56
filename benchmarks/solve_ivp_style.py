"""The way published in-silico RPT models are usually written, as a baseline for the numba kernel.

One Python loop over patients; inside it, the patient's event loop (scans, due days, dose-modification
re-checks) in plain Python, with the marrow kinetics (one Friberg chain per blood line, here platelets and
neutrophils, driven by the marrow dose rate, docs/model.md 4.1 and 4.7) integrated by ``scipy.integrate.solve_ivp``
(LSODA, ``rtol`` 1e-6) between consecutive events, and every closed-form part (doses, BED, tumour, event times,
kidney) in plain Python scalars. It reads the kernel's named inputs (``sim.kernel_inputs``: one patient's row of
each ``patients`` field, and the arm's ``organs``, ``lesions``, ``blood``, ``kidney``, ``events``, ``regimen``),
loops over the organ, lesion and blood-line axes generically (the kidney and the marrow are ``kidney.organ`` and
``blood.organ``, the line of a fatal grade 4 ``blood.fatal_line``), and fills the kernel's named outputs
(``sim.kernel_outputs``). The random numbers are the project's counter-based streams (``sim.rng``), keyed by the
stream ids the kernel uses, so a patient gets the same draws as in the kernel and the outputs compare one to one.

It implements the model of ``sim/kernels/patient.py`` (docs/model.md 3 and 4) for fixed regimens without
dosimetry (the NETTER-1 arms) and is written from the model description, not by calling the kernel's helpers:
its only numerical difference is the integrator (LSODA instead of the kernel's own adaptive RK4; LSODA is as
fast as or faster than scipy's other methods here: RK45 and DOP853 take 1-1.5x as long, BDF 4x, with the same
accuracy). The nadir is read from the solver's output on a uniform grid of at most ``NADIR_GRID_DAYS``
(``t_eval``), refined by the parabola through the grid minimum and its neighbours: it does not depend on how the
kernel steps, and the differences from the kernel are the two integrators' errors (~1e-5 relative).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from sim import kernel_outputs, rng
from sim.kernels import events, policy
from sim.kernels import kidney as renal
from sim.kernels import tumour as recist
from sim.kernels.marrow import FATAL_GRADE4_STREAM
from sim.units import DAYS_PER_YEAR, HOURS_PER_DAY

RTOL = 1e-6
ATOL = 1e-9
METHOD = "LSODA"  # the fastest scipy method for this system (see above)
NADIR_GRID_DAYS = 0.25
LN2 = math.log(2.0)
STATES, CIRC = 5, 4  # one blood line's states (Prol, T1, T2, T3, Circ), and the index of Circ among them
GRADE4 = 3  # index of the grade-4 threshold in a blood line's thresholds


def _grade(value: float, thresholds_below) -> int:  # noqa: ANN001 - a sequence of floats
    """CTCAE v5 grade: how many of the descending thresholds the value is below."""
    return sum(1 for threshold in thresholds_below if value < threshold)


def _bed(dose: float, teff_h: float, repair_h: float, alpha_beta: float) -> float:
    """BED of one administration, ``D (1 + G D / (alpha/beta))`` with ``G = T_rep / (T_rep + T_eff)``."""
    return dose * (1.0 + repair_h / (repair_h + teff_h) * dose / alpha_beta)


def _exponential_day(rate: float, e: float) -> float:
    return math.inf if rate <= 0.0 else e / rate


def _gompertz_day(age: float, h65: float, slope: float, e: float) -> float:
    h_now = h65 * math.exp(slope * (age - 65.0))
    if slope == 0.0:
        return DAYS_PER_YEAR * e / h_now
    return DAYS_PER_YEAR * math.log1p(e * slope / h_now) / slope


class Streams:
    """One patient's random streams (``sim.rng``): counter ``ctr`` of the stream with id ``stream`` (item ``item``
    of an indexed stream, such as one per lesion)."""

    def __init__(self, seed: int, patient_id: int) -> None:
        # numba returns a uint64 to Python as an int: wrap it again, or the next call would take it for an int64
        self.key = np.uint64(rng.patient_key(np.uint64(seed), np.int64(patient_id)))

    def uniform(self, stream: np.uint64, ctr: int = 0, item: int = 0) -> float:
        key = np.uint64(rng.stream_key(self.key, np.uint64((int(stream) + item) % 2**64)))
        return rng.uniform(key, ctr)

    def normal(self, stream: np.uint64, ctr: int = 0, item: int = 0) -> float:
        return rng.norm_ppf(self.uniform(stream, ctr, item))

    def exponential(self, stream: np.uint64, ctr: int = 0) -> float:
        return -math.log(self.uniform(stream, ctr))


class Marrow:
    """The blood lines of one patient (five states each), advanced by ``solve_ivp`` between events."""

    def __init__(self, baseline: np.ndarray, alpha_per_gy: float, blood, teff_h: float) -> None:  # noqa: ANN001
        self.lines = range(len(baseline))
        self.log_baseline = [math.log(b) for b in baseline]
        self.alpha = [alpha_per_gy * ratio for ratio in blood.alpha_ratio.tolist()]
        self.k_tr = [4.0 / mtt for mtt in blood.mtt_days.tolist()]
        self.k_circ = [1.0 / life for life in blood.lifespan_days.tolist()]
        self.gamma = blood.gamma.tolist()
        self.reserve = [float(blood.reserve_per_gy) * ratio for ratio in blood.reserve_ratio.tolist()]
        self.lam = LN2 / (teff_h / HOURS_PER_DAY) if teff_h > 0.0 else 0.0  # 1/day; no agent: never treated
        self.y = np.repeat(np.asarray(baseline, dtype=np.float64), STATES)
        self.dose_rate = 0.0  # Gy/day at self.t
        self.committed = 0.0  # Gy given so far
        self.t = 0.0

    def counts(self) -> list[float]:
        """The circulating count of every line now."""
        return [float(self.y[STATES * b + CIRC]) for b in self.lines]

    def give(self, dose_gy: float) -> None:
        """An administration now: the dose rate jumps by ``D lam``, the committed dose by ``D``."""
        self.dose_rate += dose_gy * self.lam
        self.committed += dose_gy

    def _rhs(self, t: float, y: np.ndarray, t0: float, r0: float) -> list[float]:
        r = r0 * math.exp(-self.lam * (t - t0))
        delivered = self.committed - r / self.lam  # Gy delivered by day t
        out = []
        values = y.tolist()
        for b in self.lines:
            p, x1, x2, x3, c = values[STATES * b:STATES * (b + 1)]
            k_tr, k_circ = self.k_tr[b], self.k_circ[b]
            log_setpoint = self.log_baseline[b] - self.reserve[b] * delivered
            feedback = math.exp(self.gamma[b] * (log_setpoint - math.log(c)))
            out += [k_tr * p * (feedback - 1.0) - self.alpha[b] * r * p, k_tr * (p - x1), k_tr * (x1 - x2),
                    k_tr * (x2 - x3), k_circ * (x3 - c)]
        return out

    def advance(self, t1: float) -> list[tuple[float, float]]:
        """Integrate to ``t1``; returns each line's nadir over ``[t, t1]`` and its day."""
        t0, span, r0 = self.t, t1 - self.t, self.dose_rate
        grid = np.linspace(t0, t1, max(1, math.ceil(span / NADIR_GRID_DAYS - 1e-9)) + 1)
        sol = solve_ivp(self._rhs, (t0, t1), self.y, method=METHOD, rtol=RTOL, atol=ATOL, t_eval=grid,
                        args=(t0, r0))
        self.y = sol.y[:, -1].copy()
        self.dose_rate = r0 * math.exp(-self.lam * span)
        self.t = t1
        return [_grid_nadir(sol.y[STATES * b + CIRC], grid) for b in self.lines]


def _grid_nadir(values: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """Minimum on the (uniform) grid, refined by the parabola through it and its two neighbours."""
    i = int(np.argmin(values))
    best, day = float(values[i]), float(grid[i])
    if 0 < i < len(values) - 1:
        before, after = values[i - 1], values[i + 1]
        curvature = before - 2.0 * best + after
        if curvature > 0.0:
            h = grid[1] - grid[0]
            day += 0.5 * (before - after) / curvature * h
            best -= 0.125 * (before - after) ** 2 / curvature
    return best, day


def _egfr(t: float, e0: float, background: float, decline: float, latency: float, times: list[float],
          beds: list[float], nephropathy_day: float = math.inf, loss: float = 0.0) -> float:
    e = e0 - background * t / DAYS_PER_YEAR
    for day, b in zip(times, beds, strict=True):
        if t - day - latency > 0.0:
            e -= e0 * decline * b * (t - day - latency) / DAYS_PER_YEAR
    if t >= nephropathy_day:
        e *= 1.0 - loss
    return max(e, 0.0)


def _first_day_below(level: float, t_end: float, egfr) -> float:  # noqa: ANN001 - egfr(t) callable
    if egfr(0.0) < level:
        return 0.0
    if egfr(t_end) >= level:
        return math.inf
    lo, hi = 0.0, t_end
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if egfr(mid) < level else (mid, hi)
    return hi


class Course:
    """One patient's course (docs/model.md 4.6) under a fixed regimen without dosimetry, written into row ``i``
    of the outputs ``out``: ``run()`` is the event loop, then the deaths, the last marrow window, the kidney."""

    def __init__(self, i: int, seed: int, patients, organs, lesions, blood, kidney, ev, regimen,  # noqa: ANN001
                 scans: np.ndarray, out: kernel_outputs.Outputs) -> None:
        self.p = type(patients)(*(values[i] for values in patients))  # this patient's row of every input
        self.i, self.organs, self.lesions, self.blood, self.kidney, self.ev = i, organs, lesions, blood, kidney, ev
        self.regimen, self.scans, self.out = regimen, scans, out
        p, s = self.p, Streams(seed, self.p.patient_id)
        self.s = s
        # tumour: per present lesion, stroma, receptor-positive and -negative viable cells, dead cells (mL)
        m = int(p.lesion_count)
        self.stroma = (p.lesion_stroma_fraction * p.lesion_volume_ml).tolist()[:m]
        viable = [v - st for v, st in zip(p.lesion_volume_ml.tolist()[:m], self.stroma, strict=True)]
        self.negative = [f * v for f, v in zip(p.lesion_negative_fraction.tolist()[:m], viable, strict=True)]
        self.positive = [v - n for v, n in zip(viable, self.negative, strict=True)]
        self.dead = [0.0] * len(viable)
        self.v0, self.viable0 = float(p.lesion_volume_ml[:m].sum()), sum(viable)
        # competing events
        self.t_bg = _gompertz_day(p.age_years, ev.background_hazard_65_per_year, ev.background_slope_per_year,
                                  s.exponential(events.BACKGROUND_DEATH_STREAM))
        t_dropout = _exponential_day(ev.dropout_per_day, s.exponential(events.DROPOUT_STREAM))
        t_pre = _exponential_day(ev.pre_progression_death_per_day * p.pre_progression_death_multiplier,
                                 s.exponential(events.PRE_PROGRESSION_DEATH_STREAM))
        self.censor = min(p.admin_censor_day, t_dropout)
        self.death_pre = min(self.t_bg, t_pre)
        self.cause_pre = events.CAUSE_OTHER if self.t_bg <= t_pre else events.CAUSE_CANCER_BEFORE_PROGRESSION
        self.new_lesion_threshold = s.exponential(recist.NEW_LESION_STREAM)
        # blood lines; the running nadir (and its day) of each line since the last administration
        self.marrow = Marrow(p.blood_baseline, p.marrow_alpha_per_gy, blood, p.teff_h[blood.organ])
        self.grade_below = [tuple(row) for row in blood.grade_below.tolist()]
        self.low, self.low_day = p.blood_baseline.tolist(), [0.0] * len(self.marrow.lines)
        self.horizon, self.fatal_checked = math.inf, False
        # kidney: eGFR decline per Gy of BED per year, the cycles' days and kidney BEDs
        self.decline = kidney.radiation_decline_per_gy_year * (
            kidney.risk_factor_decline_multiplier if p.kidney_risk_factor > 0.0 else 1.0)
        self.times: list[float] = []
        self.kidney_beds: list[float] = []
        # tumour response, the cycles and the dose-modification state
        self.t, self.new_lesion_h, self.last_scan_day = 0.0, 0.0, 0.0
        self.nadir = self.last_scan_volume = self.v0
        self.sum0, self.non_target_nadir, _, _ = self.reading()
        self.sum_nadir, self.best_value = self.sum0, math.inf
        self.prev_level, self.best = recist.RESPONSE_SD, recist.RESPONSE_NE
        self.progressed, self.progression_day, self.progression_type = False, 0.0, recist.PROGRESSION_NONE
        self.k, self.next_scan, self.cycles_open, self.due, self.first_due = 0, 0, regimen.n_cycles > 0, 0.0, 0.0
        self.withheld = self.reduced = self.discontinued = False
        self.n_reductions, self.last_admin, self.uptake_decline = 0, 0.0, 1.0
        self.mds_decided, self.mds_onset, self.t_mds = False, math.inf, math.inf

    def _other_cause_day(self, b: int) -> float:
        """Day of line ``b``'s decrease of other causes: its hazard, raised after progression, reaches its
        standard exponential (no re-treatment here: the progression is the first)."""
        rate, e = float(self.p.blood_background_per_day[b]), float(self.p.blood_background_e[b])
        t_p = self.progression_day if self.progressed else math.inf
        if not rate > 0.0:
            return math.inf
        if e <= rate * t_p:
            return e / rate
        return t_p + (e - rate * t_p) / (rate * float(self.blood.background_after_progression))

    def egfr(self, t: float, nephropathy_day: float = math.inf) -> float:
        kid = self.kidney
        return _egfr(t, self.p.egfr_baseline_ml_min, self.p.egfr_decline_ml_min_per_year, self.decline,
                     kid.subclinical_latency_days, self.times, self.kidney_beds, nephropathy_day,
                     kid.nephropathy_egfr_loss)

    def marrow_to(self, t_to: float) -> tuple[float, float]:
        """Advance the blood lines, lowering each line's running nadir; the fatal line's nadir and its day."""
        lows = self.marrow.advance(t_to)
        for b, (low, day) in enumerate(lows):
            if low < self.low[b]:
                self.low[b], self.low_day[b] = low, day
        return lows[self.blood.fatal_line]

    def fatal_grade4(self, low: float, low_day: float) -> bool:
        """The first grade-4 nadir of the fatal line in a cycle: is it fatal (drawn once per cycle)?"""
        if self.fatal_checked or not low < self.grade_below[self.blood.fatal_line][GRADE4]:
            return False
        self.fatal_checked = True
        return self.s.uniform(FATAL_GRADE4_STREAM, self.k - 1) < self.blood.fatal_grade4_probability

    def run(self) -> None:
        while True:
            t_cycle = self.due if self.cycles_open else math.inf
            t_scan = self.scans[self.next_scan] if self.next_scan < len(self.scans) else math.inf
            if t_scan == math.inf and t_cycle == math.inf:
                break
            t, is_scan = min(t_scan, t_cycle), t_scan <= t_cycle
            if not (t < self.death_pre and (t <= self.censor if is_scan else t < self.censor)):
                break
            self.grow(t)
            if self.k > 0 and min(t, self.horizon) > self.marrow.t:
                low, low_day = self.marrow_to(min(t, self.horizon))
                if self.fatal_grade4(low, low_day):
                    if low_day < self.death_pre:
                        self.death_pre, self.cause_pre = low_day, events.CAUSE_TREATMENT
                    break
            if is_scan:
                if self.scan(t):
                    break
            else:
                self.cycle_due(t)
        self.finish()

    def grow(self, t: float) -> None:
        """The tumour from ``self.t`` to ``t``: new-lesion hazard (viable sum at its viable-weighted growth rate),
        growth of the viable cells, stroma relaxation (exact), clearance."""
        p, dt, les = self.p, t - self.t, self.lesions
        exponent = les.new_lesion_exponent
        viable = [a + b for a, b in zip(self.positive, self.negative, strict=True)]
        rates = p.lesion_growth_per_day.tolist()[:len(viable)]
        growth = sum(g * v for g, v in zip(rates, viable, strict=True)) / sum(viable) if sum(viable) > 0 else 0.0
        if p.new_lesion_per_day > 0.0 and dt > 0.0:
            kg = exponent * growth
            ratio = (sum(viable) / self.viable0) ** exponent
            self.new_lesion_h += p.new_lesion_per_day * (dt if kg == 0.0 else ratio * math.expm1(kg * dt) / kg)
        k = les.stroma_relax_per_day
        for j, (g, v) in enumerate(zip(rates, viable, strict=True)):
            if k > 0.0:
                f = p.lesion_stroma_fraction[j]
                integral = dt if g + k == 0.0 else math.expm1((g + k) * dt) / (g + k)
                self.stroma[j] = math.exp(-k * dt) * (self.stroma[j] + f / (1.0 - f) * k * v * integral)
            self.positive[j] *= math.exp(g * dt)
            self.negative[j] *= math.exp(g * dt)
        clear = math.exp(-les.dead_clearance_per_day * dt)
        self.dead = [v * clear for v in self.dead]
        self.t = t

    def reading(self) -> tuple[float, float, bool, float]:
        """Target sum of diameters (mm), non-target volume (mL), no lesion visible, tumour volume (mL)."""
        target_sum = non_target = total = 0.0
        gone = True
        for j, v in enumerate(map(sum, zip(self.stroma, self.positive, self.negative, self.dead, strict=True))):
            total += v
            visible = v >= self.lesions.disappeared_ml
            gone = gone and not visible
            if self.p.lesion_role[j] == recist.ROLE_TARGET:
                target_sum += 10.0 * (6.0 * v / math.pi) ** (1.0 / 3.0) if visible else 0.0
            else:
                non_target += v
        return target_sum, non_target, gone, total

    def scan(self, t: float) -> bool:
        """RECIST 1.1 reading; ``True`` at progression."""
        les = self.lesions
        self.next_scan += 1
        target_sum, non_target, gone, volume = self.reading()
        value = target_sum if self.sum0 > 0.0 else volume
        if value < self.best_value:
            self.best_value = value
            for j, v in enumerate(map(sum, zip(self.stroma, self.positive, self.negative, self.dead, strict=True))):
                self.out.lesion_volume_ratio_best[self.i, j] = v / self.p.lesion_volume_ml[j]
        target_pd = (self.sum0 > 0.0 and target_sum >= recist.PD_SUM_RATIO * self.sum_nadir
                     and target_sum - self.sum_nadir >= les.progression_absolute_mm) or (
            self.non_target_nadir > 0.0 and non_target >= les.non_target_progression_ratio * self.non_target_nadir)
        new_lesion = self.new_lesion_h >= self.new_lesion_threshold
        self.last_scan_day = t
        if target_pd or new_lesion:
            self.progressed, self.progression_day = True, t
            self.progression_type = ((recist.PROGRESSION_TARGET if target_pd else 0)
                                     + (recist.PROGRESSION_NEW_LESION if new_lesion else 0))
            self.best = recist.RESPONSE_PD if self.best == recist.RESPONSE_NE else self.best
            return True
        level = recist.RESPONSE_CR if gone else (
            recist.RESPONSE_PR if self.sum0 > 0.0 and target_sum <= recist.PR_SUM_RATIO * self.sum0
            else recist.RESPONSE_SD)
        counted = max(level, self.prev_level) if self.lesions.confirm_response and level != recist.RESPONSE_SD \
            else level
        self.best = counted if self.best == recist.RESPONSE_NE else min(self.best, counted)
        self.prev_level, self.nadir, self.last_scan_volume = level, min(self.nadir, volume), volume
        self.sum_nadir, self.non_target_nadir = min(self.sum_nadir, target_sum), min(self.non_target_nadir, non_target)
        return False

    def cycle_due(self, t: float) -> None:
        """Continue (continuation rule, dose modification: withhold, reduce, discontinue, restore), then give."""
        reg = self.regimen
        stop = reg.continue_after > 0 and self.k >= reg.continue_after and not self.last_scan_volume < self.v0
        if not stop and self.k > 0:
            e_now, e0 = self.egfr(t), self.p.egfr_baseline_ml_min
            counts = self.marrow.counts()
            if (any(_grade(counts[b], self.grade_below[b]) >= reg.withhold_grade[b] for b in self.marrow.lines)
                    or e_now < reg.withhold_egfr_below_ml_min or e_now < (1.0 - reg.withhold_egfr_drop) * e0):
                self.withheld = True
                if t + reg.recheck_days - self.first_due > reg.max_delay_days:
                    stop = self.discontinued = True
                else:
                    self.due = t + reg.recheck_days
                    return
            elif (any(_grade(self.low[b], self.grade_below[b]) >= reg.reduce_grade[b] for b in self.marrow.lines)
                  or (self.withheld and reg.reduce_if_withheld)):
                if self.n_reductions >= reg.max_reductions:
                    stop = self.discontinued = True
                else:
                    self.reduced, self.n_reductions = True, self.n_reductions + 1
            elif self.reduced and reg.restore_after_tolerated:
                self.reduced = False
        if stop:
            self.cycles_open = False
        else:
            self.administer(t, reg.activities_gbq[self.k] * (1.0 - reg.reduction_fraction if self.reduced else 1.0))
        if not self.cycles_open:
            self.horizon = self.last_admin + self.blood.window_days
            if self.k > 0:
                self.decide_mds()

    def administer(self, t: float, a: float) -> None:
        """Cycle ``k`` at day ``t``: organ and lesion doses and BEDs, tumour kill, marrow forcing."""
        p, i, k, out, organs, lesions = self.p, self.i, self.k, self.out, self.organs, self.lesions
        out.cycle_time_days[i, k], out.activity_gbq[i, k] = t, a
        out.delay_days[i, k], out.dose_reduced[i, k] = t - self.first_due, self.reduced
        for o in range(len(organs.alpha_beta_gy)):
            dose = a * p.gy_per_gbq[o] * math.exp(organs.intra_sigma[o] * self.s.normal(organs.intra_stream[o], k))
            out.dose_gy[i, k, o] = dose
            out.bed_gy[i, k, o] = _bed(dose, p.teff_h[o], organs.repair_h[o], organs.alpha_beta_gy[o])
        for j in range(len(self.positive)):
            dose = a * p.lesion_gy_per_gbq[j] * self.uptake_decline * math.exp(
                lesions.intra_sigma * self.s.normal(recist.LESION_INTRA_STREAM, k, item=j))
            bed = _bed(dose, p.lesion_teff_h[j], lesions.repair_h, lesions.alpha_beta_gy)
            out.lesion_dose_gy[i, k, j], out.lesion_bed_gy[i, k, j] = dose, bed
            bed_negative = _bed(p.lesion_negative_dose_ratio[j] * dose, p.lesion_teff_h[j], lesions.repair_h,
                                lesions.alpha_beta_gy)
            killed = self.positive[j] * -math.expm1(-p.lesion_alpha_per_gy[j] * bed)
            killed_negative = self.negative[j] * -math.expm1(-p.lesion_alpha_per_gy[j] * bed_negative)
            self.positive[j] -= killed
            self.negative[j] -= killed_negative
            self.dead[j] += killed + killed_negative
        self.uptake_decline *= 1.0 - lesions.dose_decline
        self.times.append(t)
        self.kidney_beds.append(float(out.bed_gy[i, k, self.kidney.organ]))
        if k > 0:
            self.close_cycle(k - 1)
        self.marrow.give(float(out.dose_gy[i, k, self.blood.organ]))
        self.low, self.low_day = self.marrow.counts(), [t] * len(self.marrow.lines)
        self.fatal_checked, self.last_admin, self.withheld = False, t, False
        self.k = k + 1
        self.due = self.first_due = t + self.regimen.interval_days
        self.cycles_open = self.k < self.regimen.n_cycles

    def close_cycle(self, c: int) -> None:
        """Cycle ``c``'s nadir, its day after the administration, its grade and the count at its end, per line."""
        counts = self.marrow.counts()
        for b in self.marrow.lines:
            self.out.blood_nadir[self.i, c, b] = self.low[b]
            self.out.blood_nadir_day[self.i, c, b] = self.low_day[b] - self.last_admin
            self.out.blood_grade[self.i, c, b] = _grade(self.low[b], self.grade_below[b])
            self.out.blood_end[self.i, c, b] = counts[b]

    def decide_mds(self) -> None:
        """MDS/AML onset and death (a linear-exponential risk in the cumulative marrow dose)."""
        ev, s = self.ev, self.s
        chemo = ev.mds_chemo_multiplier if self.p.prior_chemotherapy > 0.0 else 1.0
        self.mds_decided = True
        if s.uniform(events.MDS_ONSET_STREAM) >= -math.expm1(-ev.mds_risk_per_gy * chemo * self.marrow.committed):
            return
        self.mds_onset = self.last_admin + ev.mds_latency_days * math.exp(
            ev.mds_latency_sigma * s.normal(events.MDS_LATENCY_STREAM))
        self.t_mds = self.mds_onset + _exponential_day(ev.mds_death_per_day, s.exponential(events.MDS_DEATH_STREAM))
        if self.t_mds < self.death_pre:
            self.death_pre, self.cause_pre = self.t_mds, events.CAUSE_TREATMENT

    def finish(self) -> None:
        """Deaths, the tail of the last marrow window, survival, response, blood and kidney outcomes."""
        p, i, k, out = self.p, self.i, self.k, self.out
        if k > 0 and not self.mds_decided:
            self.decide_mds()
        if self.progressed:
            death_day = self.progression_day + _exponential_day(
                p.post_progression_death_per_day, self.s.exponential(events.POST_PROGRESSION_DEATH_STREAM))
            cause = events.CAUSE_CANCER_AFTER_PROGRESSION
            if self.t_mds < death_day:
                death_day, cause = self.t_mds, events.CAUSE_TREATMENT
            if self.t_bg <= death_day:
                death_day, cause = self.t_bg, events.CAUSE_OTHER
        else:
            death_day, cause = self.death_pre, self.cause_pre
        if k > 0:
            t_to = min(self.horizon, self.last_admin + self.blood.window_days, death_day, self.censor)
            if t_to > self.marrow.t:
                low, low_day = self.marrow_to(t_to)
                if self.fatal_grade4(low, low_day) and low_day < death_day:
                    death_day, cause = low_day, events.CAUSE_TREATMENT
            self.close_cycle(k - 1)

        if self.progressed:
            pfs_day, pfs_event = self.progression_day, True
        elif death_day <= self.censor:
            pfs_day, pfs_event = death_day, True
        else:
            pfs_day, pfs_event = self.last_scan_day, False
        if death_day <= self.censor:
            os_day, os_event = death_day, True
        else:
            os_day, os_event, cause = self.censor, False, events.CAUSE_ALIVE
        out.cycles_given[i], out.pfs_time_days[i], out.pfs_event[i] = k, pfs_day, pfs_event
        out.os_time_days[i], out.os_event[i], out.death_cause[i] = os_day, os_event, cause
        out.best_response[i], out.progression_type[i] = self.best, self.progression_type
        out.tumour_nadir_ratio[i] = self.nadir / self.v0
        m = len(self.positive)
        if self.sum0 > 0.0 and self.best_value < math.inf:
            out.target_sum_best_change[i] = self.best_value / self.sum0 - 1.0
        out.lesions_modelled[i], out.lesion_role[i] = m, p.lesion_role
        out.target_lesions[i] = int((p.lesion_role[:m] == recist.ROLE_TARGET).sum())
        out.receptor_negative_lesions[i] = int(p.lesion_receptor_negative[:m].sum())
        out.lesion_volume_ml[i, :m], out.lesion_receptor_negative[i, :m] = p.lesion_volume_ml[:m], \
            p.lesion_receptor_negative[:m]
        out.lesion_dose_gy[i, :, m:] = out.lesion_bed_gy[i, :, m:] = math.nan  # absent lesions
        positive = p.lesion_receptor_negative[:m] == 0
        volume = float(p.lesion_volume_ml[:m][positive].sum())
        if k > 0 and volume > 0.0:  # the whole-body tumour dose of the first cycle
            out.whole_body_tumour_dose_gy[i] = float(
                (p.lesion_volume_ml[:m][positive] * out.lesion_dose_gy[i, 0, :m][positive]).sum()) / volume
        for b in self.marrow.lines:
            out.blood_worst_grade[i, b] = max([_grade(p.blood_baseline[b], self.grade_below[b]),
                                               *out.blood_grade[i, :k, b].tolist(),
                                               *([3] if self._other_cause_day(b) <= out.os_time_days[i] else [])])
        mds = self.mds_onset < death_day and self.mds_onset <= self.censor
        out.mds_aml[i], out.mds_aml_day[i] = mds, self.mds_onset if mds else math.nan
        out.discontinued_for_toxicity[i] = self.discontinued
        self.kidney_outcomes(os_day)

    def kidney_outcomes(self, end_day: float) -> None:
        """Nephropathy (LKB on the cumulative kidney BED), eGFR at the end of follow-up and at 4 years, the first
        renal grade >= 3 event (eGFR < 30 or the acute event)."""
        kid, i, out = self.kidney, self.i, self.out
        nephropathy_day = math.inf
        if self.k > 0:
            b50 = kid.bed50_gy * (kid.risk_factor_bed50_ratio if self.p.kidney_risk_factor > 0.0 else 1.0)
            ntcp = 0.5 * math.erfc(-((sum(self.kidney_beds) - b50) / (kid.lkb_m * b50)) / math.sqrt(2.0))
            if self.s.uniform(renal.NEPHROPATHY_STREAM) < ntcp:
                nephropathy_day = self.last_admin + kid.nephropathy_latency_days * math.exp(
                    kid.nephropathy_latency_sigma * self.s.normal(renal.NEPHROPATHY_LATENCY_STREAM))
        e_end = self.egfr(end_day, nephropathy_day)
        if renal.LANDMARK_DAYS <= end_day:
            out.egfr_change_48_months[i] = self.egfr(renal.LANDMARK_DAYS, nephropathy_day) / (
                self.p.egfr_baseline_ml_min) - 1.0
        renal_day = _first_day_below(renal.CKD_GRADE_BELOW[2], end_day, lambda t: self.egfr(t, nephropathy_day))
        acute = self.p.acute_renal_day < renal_day and self.p.acute_renal_day <= end_day
        renal_day = self.p.acute_renal_day if acute else renal_day
        out.egfr_end_ml_min[i], out.ckd_grade[i] = e_end, _grade(e_end, renal.CKD_GRADE_BELOW)
        out.renal_grade3_time_days[i] = min(renal_day, end_day)
        out.renal_grade3_event[i] = renal_day <= end_day
        out.renal_grade3_acute[i] = acute


def simulate_cohort(seed, patients, organs, lesions, blood, kidney, ev, regimen, scans,  # noqa: ANN001
                    sizes: dict[str, int]) -> kernel_outputs.Outputs:
    """The per-patient loop: one ``Course`` per patient. Takes the arguments of ``run_arm`` (the named inputs of
    ``sim.kernel_inputs``) without ``out``, plus the output ``sizes``, and returns the outputs, as the NumPy oracle
    does (outputs the baseline does not model keep their fill: no dosimetry measurements, no guided target)."""
    if regimen.rule != policy.RULE_FIXED or regimen.measured_cycles > 0:
        raise NotImplementedError("the solve_ivp baseline covers fixed regimens without dosimetry")
    out = kernel_outputs.allocate(sizes)
    for i in range(len(patients.patient_id)):
        Course(i, seed, patients, organs, lesions, blood, kidney, ev, regimen, scans, out).run()
    return out
