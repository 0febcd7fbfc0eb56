"""Run one scenario: config -> cohort -> kernel (per arm, in patient chunks) -> outcome arrays.

``keep`` sets what a run holds in memory: ``"cycles"`` every per-cycle array (about 1.4 kB per patient and
arm for 4 cycles); ``"patients"`` and ``"summary"`` reduce each chunk's per-cycle arrays to the per-patient
``variables.TOTALS`` at once, so memory is about 100 bytes per patient and arm plus one chunk, and the summary is
the same as from the full arrays (``"summary"`` also drops the baseline covariates).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim import cohort as cohort_mod
from sim import regimens, variables
from sim.config import DAYS_PER_MONTH, DAYS_PER_WEEK, DAYS_PER_YEAR, Arm, Config
from sim.kernels import layout as L
from sim.kernels.patient import simulate_arm

DEFAULT_CHUNK = 100_000  # patients per chunk: 100k keeps a 10^6-patient reduced run under 0.8 GB at full speed
KEEP_LEVELS = ("cycles", "patients", "summary")


@dataclass
class ArmResult:
    """Raw kernel output of one arm."""

    per_cycle: np.ndarray  # (N_CYCLE_VARS, n, K)
    per_patient: np.ndarray  # (N_PATIENT_VARS, n)


@dataclass
class RunResult:
    config: Config
    cohort: cohort_mod.Cohort | None  # None with keep="summary"
    arms: dict[str, ArmResult]  # keep="cycles": the raw kernel output per arm
    max_cycles: int
    keep: str
    n_patients: int
    # keep="patients"/"summary": PATIENT_VARS and TOTALS as (arm, patient) arrays in their output dtypes
    reduced: dict[str, np.ndarray] | None


def sigma_ln(cv: float) -> float:
    """Sigma of log of a log-normal with coefficient of variation ``cv``."""
    return math.sqrt(math.log1p(cv * cv))


def model_vector(cfg: Config, arm: Arm) -> np.ndarray:
    """The kernel's model-parameter vector (``layout`` entries) for one arm."""
    m = np.zeros(L.N_MODEL)
    rb, tu, nh = cfg.radiobiology, cfg.tumour, cfg.natural_history
    m[L.KIDNEY_ALPHA_BETA_GY], m[L.KIDNEY_REPAIR_H] = rb.kidney.alpha_beta_gy, rb.kidney.repair_half_time_h
    m[L.MARROW_ALPHA_BETA_GY], m[L.MARROW_REPAIR_H] = rb.marrow.alpha_beta_gy, rb.marrow.repair_half_time_h
    m[L.TUMOUR_ALPHA_BETA_GY], m[L.TUMOUR_REPAIR_H] = rb.tumour.alpha_beta_gy, rb.tumour.repair_half_time_h
    agent_name = getattr(arm, "agent", None)
    if agent_name is not None:
        ag = cfg.agents[agent_name]
        m[L.KIDNEY_INTRA_SIGMA] = sigma_ln(ag.kidney.intra_patient_cv)
        m[L.MARROW_INTRA_SIGMA] = sigma_ln(ag.marrow.intra_patient_cv)
        m[L.TUMOUR_INTRA_SIGMA] = sigma_ln(ag.tumour.intra_patient_cv)
        m[L.TUMOUR_DOSE_DECLINE] = ag.tumour.dose_decline_per_cycle
    dosimetry = getattr(arm, "dosimetry", None)
    if dosimetry is not None:
        method, scale = cfg.dosimetry_methods[dosimetry.method], dosimetry.error_scale
        m[L.KIDNEY_MEAS_SIGMA] = sigma_ln(scale * method.kidney_cv)
        m[L.MARROW_MEAS_SIGMA] = sigma_ln(scale * method.marrow_cv)
        m[L.TUMOUR_MEAS_SIGMA] = sigma_ln(scale * method.tumour_cv)
    m[L.DEAD_CLEARANCE_PER_DAY] = math.log(2.0) / tu.dead_cell_clearance_half_life_days
    m[L.NEW_LESION_EXPONENT] = tu.new_lesion_burden_exponent
    m[L.CONFIRM_RESPONSE] = float(tu.response_confirmation)
    m[L.BACKGROUND_HAZARD_65_PER_YEAR] = nh.background_hazard_at_65_per_year
    m[L.BACKGROUND_SLOPE_PER_YEAR] = nh.background_hazard_log_slope_per_year
    m[L.PRE_PROGRESSION_DEATH_PER_DAY] = nh.pre_progression_death_per_month / DAYS_PER_MONTH
    m[L.DROPOUT_PER_DAY] = cfg.trial.dropout_per_year / DAYS_PER_YEAR
    mw, kd, le = cfg.marrow, cfg.kidney, cfg.late_effects
    m[L.MARROW_MTT_DAYS], m[L.PLATELET_LIFESPAN_DAYS] = mw.mtt_days, mw.platelet_lifespan_days
    ne = mw.neutrophils
    m[L.NEUTROPHIL_MTT_DAYS], m[L.NEUTROPHIL_LIFESPAN_DAYS] = ne.mtt_days, ne.lifespan_days
    m[L.NEUTROPHIL_GAMMA], m[L.NEUTROPHIL_ALPHA_RATIO] = ne.feedback_gamma, ne.alpha_ratio
    m[L.MARROW_GAMMA], m[L.MARROW_RESERVE_PER_GY] = mw.feedback_gamma, mw.reserve_loss_per_gy
    m[L.MARROW_FIRST_STEP_DAYS], m[L.MARROW_WINDOW_DAYS] = mw.max_step_days, mw.window_after_last_cycle_days
    m[L.FATAL_GRADE4_PROBABILITY] = mw.fatal_grade4_probability
    m[L.KIDNEY_BED50_GY], m[L.KIDNEY_LKB_M] = kd.bed50_gy, kd.lkb_m
    m[L.KIDNEY_RISK_FACTOR_SHIFT_GY] = kd.risk_factor_bed50_shift_gy
    m[L.NEPHROPATHY_LATENCY_DAYS] = kd.nephropathy_latency_months_median * DAYS_PER_MONTH
    m[L.NEPHROPATHY_LATENCY_SIGMA] = kd.nephropathy_latency_sigma_ln
    m[L.NEPHROPATHY_EGFR_LOSS] = kd.nephropathy_egfr_loss_fraction
    m[L.EGFR_AGE_DECLINE_PER_YEAR] = kd.age_decline_ml_min_per_year
    m[L.EGFR_RADIATION_DECLINE_PER_GY_YEAR] = kd.radiation_decline_per_gy_per_year
    m[L.EGFR_RISK_FACTOR_MULTIPLIER] = kd.risk_factor_decline_multiplier
    m[L.EGFR_SUBCLINICAL_LATENCY_DAYS] = kd.subclinical_latency_months * DAYS_PER_MONTH
    m[L.MDS_RISK_PER_GY], m[L.MDS_CHEMO_MULTIPLIER] = le.mds_aml_risk_per_gy, le.mds_aml_prior_chemotherapy_multiplier
    m[L.MDS_LATENCY_DAYS] = le.mds_aml_latency_months_median * DAYS_PER_MONTH
    m[L.MDS_LATENCY_SIGMA] = le.mds_aml_latency_sigma_ln
    m[L.MDS_DEATH_PER_DAY] = le.mds_aml_death_per_month / DAYS_PER_MONTH
    return m


def scan_days(cfg: Config) -> np.ndarray:
    """Tumour-assessment days (> 0) from the imaging phases, up to the longest possible follow-up."""
    horizon = (cfg.trial.accrual_months + cfg.trial.follow_up_months) * DAYS_PER_MONTH
    days: list[float] = []
    start = 0.0
    for phase in cfg.trial.imaging:
        end = min(horizon, phase.until_week * DAYS_PER_WEEK) if phase.until_week is not None else horizon
        step = phase.every_weeks * DAYS_PER_WEEK
        m = 1
        while start + m * step <= end + 1e-9:
            days.append(start + m * step)
            m += 1
        start = days[-1] if days else start
        if start >= horizon:
            break
    return np.asarray(days, dtype=np.float64)


def max_cycles(cfg: Config) -> int:
    """Width of the per-cycle outputs: the most cycles any arm can give (at least 1)."""
    return max(1, *(regimens.encode(arm).n_cycles for arm in cfg.arms))


def simulate(cfg: Config, arm: Arm, patients: cohort_mod.Cohort, k_max: int, scans: np.ndarray) -> ArmResult:
    """Simulate one arm on the given patients (a whole cohort or any chunk of it)."""
    plan = regimens.encode(arm)
    agent = cfg.agents[plan.agent] if plan.agent is not None else None
    n = len(patients)
    out = ArmResult(np.empty((L.N_CYCLE_VARS, n, k_max)), np.empty((L.N_PATIENT_VARS, n)))
    simulate_arm(cohort_mod.kernel_patients(cfg, patients, agent), patients.patient_ids, np.int64(cfg.trial.seed),
                 model_vector(cfg, arm), plan.vector, plan.activities, scans, out.per_cycle, out.per_patient)
    return out


def run(cfg: Config, chunk_size: int = DEFAULT_CHUNK, progress: Callable[[int], None] | None = None,
        keep: str = "cycles") -> RunResult:
    """Simulate every arm of ``cfg`` on the same patients; ``progress(n)`` is called per finished chunk-arm."""
    if keep not in KEEP_LEVELS:
        raise ValueError(f"keep = {keep!r}: must be one of {', '.join(KEEP_LEVELS)}")
    n = cfg.trial.patients
    k_max = max_cycles(cfg)
    scans = scan_days(cfg)
    names = [arm.name for arm in cfg.arms]
    if keep == "cycles":
        arms = {a: ArmResult(np.empty((L.N_CYCLE_VARS, n, k_max)), np.empty((L.N_PATIENT_VARS, n))) for a in names}
        reduced = None
    else:
        arms = {}
        reduced = {name: np.empty((len(names), n), dtype) for name, _, dtype, *_ in variables.PATIENT_VARS}
        reduced |= {name: np.empty((len(names), n), dtype) for name, _, _, dtype, *_ in variables.TOTALS}
    cohorts = []
    for start in range(0, n, chunk_size):
        chunk = cohort_mod.draw(cfg, np.arange(start, min(n, start + chunk_size), dtype=np.int64))
        part_of = slice(start, start + len(chunk))
        if keep != "summary":
            cohorts.append(chunk)
        for j, arm in enumerate(cfg.arms):
            part = simulate(cfg, arm, chunk, k_max, scans)
            if reduced is None:
                arms[arm.name].per_cycle[:, part_of] = part.per_cycle
                arms[arm.name].per_patient[:, part_of] = part.per_patient
            else:
                for name, idx, *_ in variables.PATIENT_VARS:
                    reduced[name][j, part_of] = part.per_patient[idx]
                for name, values in variables.totals_of_kernel(part.per_cycle).items():
                    reduced[name][j, part_of] = values
            if progress is not None:
                progress(len(chunk))
    return RunResult(cfg, _concat(cohorts) if cohorts else None, arms, k_max, keep, n, reduced)


def _concat(chunks: list[cohort_mod.Cohort]) -> cohort_mod.Cohort:
    if len(chunks) == 1:
        return chunks[0]
    return cohort_mod.Cohort(
        np.concatenate([c.patient_ids for c in chunks]),
        {k: np.concatenate([c.covariates[k] for c in chunks]) for k in chunks[0].covariates},
        np.concatenate([c.entry_day for c in chunks]),
        np.concatenate([c.admin_censor_day for c in chunks]),
        np.concatenate([c.effects for c in chunks]),
    )
