"""Statistics on outcomes: Kaplan-Meier curves, medians, landmark survival, and the per-arm summary."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from sim import config, paired
from sim.config import COVARIATE_NAMES, Config, GuidedArm
from sim.outcomes import patient_level
from sim.survival import KMFunctionals, aalen_johansen, cox_two_group, kaplan_meier, paired_proportion_difference
from sim.units import DAYS_PER_MONTH

LANDMARK_MONTHS = (6, 12, 20, 24)


def _months(days: float | None) -> float | None:
    return None if days is None else round(days / DAYS_PER_MONTH, 3)


def _months_ci(ci: tuple[float | None, float | None]) -> list[float | None]:
    return [_months(ci[0]), _months(ci[1])]


def _median(x: np.ndarray) -> float:
    return round(float(np.median(x)), 4)


def survival_curves(a: xr.Dataset) -> dict[str, KMFunctionals]:
    """One arm's Kaplan-Meier curve of each end point (``ENDPOINTS``) with the patients' influences: fitted once
    (a sort of the arm's patients each), for the arm's summary and every paired comparison with it."""
    return {e: KMFunctionals(a[f"{e}_time_days"].values, a[f"{e}_event"].values) for e in ENDPOINTS}


def arm_summary(ds: xr.Dataset, arm: str, cfg: Config, curves: dict[str, KMFunctionals] | None = None) -> dict:
    """Efficacy, exposure, dosimetry, toxicity and resource summary of one arm (keys stable across versions);
    ``curves``: the arm's ``survival_curves`` when the caller has them.

    ``ds`` is patient-level (``outcomes.patient_level``): everything here is a statistic of per-patient values, so a
    run reduced chunk by chunk gives the same numbers as one holding every per-cycle array.
    """
    a = ds.sel(arm=arm)
    curves = curves or survival_curves(a)
    pfs, os_ = curves["pfs"].km, curves["os"].km
    cycles = a.cycles_given.values
    return {
        "label": str(a.arm_label.values),
        "n_patients": int(a.sizes["patient"]),
        "median_pfs_months": _months(pfs.median()),
        "median_pfs_ci": _months_ci(pfs.median_ci()),
        "median_os_months": _months(os_.median()),
        "median_os_ci": _months_ci(os_.median_ci()),
        "rmst_pfs_months": _months(pfs.rmst(cfg.trial.rmst_horizon_months * DAYS_PER_MONTH)),
        "rmst_os_months": _months(os_.rmst(cfg.trial.rmst_horizon_months * DAYS_PER_MONTH)),
        "pfs_at_months": {str(m): round(float(pfs.at(m * DAYS_PER_MONTH)), 4) for m in LANDMARK_MONTHS},
        "os_at_months": {str(m): round(float(os_.at(m * DAYS_PER_MONTH)), 4) for m in LANDMARK_MONTHS},
        "pfs_event_fraction": _rate(a.pfs_event.values == 1),  # events per patient: trial sizes from HRs
        "os_event_fraction": _rate(a.os_event.values == 1),
        "objective_response_rate": _rate(objective_response(a)),
        **response_summary(a),
        "cycles_median": float(np.median(cycles)),
        "cycles_mean": round(float(np.mean(cycles)), 4),
        "cycles_distribution": {str(k): _rate(cycles == k) for k in range(int(cycles.max(initial=0)) + 1)},
        "cumulative_activity_gbq_median": _median(a.activity_gbq_total.values),
        **dose_summary(a),
        **toxicity_summary(a),
        **incidence_summary(a),
        **resource_summary(a, cfg, arm),
        **retreatment_summary(a),
        **psa_summary(a),
        **({"resection_rate": _rate(np.isfinite(a.resection_day.values))} if cfg.resection is not None else {}),
    }


WHOLE_BODY_TUMOUR_DOSE_GY = 10.0  # Violet 2019's split of the first-cycle whole-body tumour dose (M)


def psa_summary(a: xr.Dataset) -> dict:
    """PCWG3 PSA end points of the first course (docs/model.md 3.6): PSA50 rate (confirmed), median best PSA change
    among patients with a value after baseline, the share of courses paused after an exceptional response
    (docs/model.md 5.5), and the first-cycle whole-body tumour dose (median) with PSA50 below and above 10 Gy (the
    dose-response Violet 2019 reports); empty where PSA is not modelled."""
    best = a.psa_best_change.values
    if np.isnan(best).all():
        return {}
    out = {"psa50_rate": _rate(psa50_response(a)), "psa_best_change_median": _median(best[~np.isnan(best)]),
           "psa_pause_rate": _rate(a.psa_paused.values == 1)}
    dose = a.whole_body_tumour_dose_gy.values
    if np.isfinite(dose).any():  # Violet J et al. J Nucl Med 2019;60:517: PSA50 less likely below 10 Gy
        low, high = dose < WHOLE_BODY_TUMOUR_DOSE_GY, dose >= WHOLE_BODY_TUMOUR_DOSE_GY
        psa50 = psa50_response(a)
        out.update({"whole_body_tumour_dose_gy_median": _median(dose[np.isfinite(dose)]),
                    "psa50_rate_whole_body_tumour_dose_below_10_gy": _rate(psa50[low]) if low.any() else None,
                    "psa50_rate_whole_body_tumour_dose_10_gy_or_more": _rate(psa50[high]) if high.any() else None})
    return out


def retreatment_summary(a: xr.Dataset) -> dict:
    """The fraction of patients re-treated at progression and, among them, the median PFS after re-treatment (KM,
    with its CI; docs/model.md 5.4); empty for an arm that cannot re-treat (no patient re-treated)."""
    again = ~np.isnan(a.retreatment_day.values)
    if not again.any():
        return {}
    km = kaplan_meier(a.retreatment_pfs_time_days.values[again], a.retreatment_pfs_event.values[again])
    return {"retreated_rate": _rate(again), "retreatment_pfs_median_months": _months(km.median()),
            "retreatment_pfs_median_ci": _months_ci(km.median_ci())}


def _rate(flags: np.ndarray) -> float:
    return round(float(np.mean(flags)), 4)


def dose_summary(a: xr.Dataset) -> dict:
    """Medians over patients of the cumulative absorbed dose and BED of each organ (``<organ>_dose_gy_median``,
    ``<organ>_bed_gy_median``) and of the index lesion (``tumour_dose_gy_median``, ``tumour_bed_gy_median``)."""
    out = {}
    for organ in a.organ.values:
        out[f"{organ}_dose_gy_median"] = _median(a.dose_gy_total.sel(organ=organ).values)
        out[f"{organ}_bed_gy_median"] = _median(a.bed_gy_total.sel(organ=organ).values)
    out["tumour_dose_gy_median"] = _median(a.index_lesion_dose_gy_total.values)
    out["tumour_bed_gy_median"] = _median(a.index_lesion_bed_gy_total.values)
    return out


def code(var: xr.DataArray, meaning: str) -> int:
    """The stored value of one of a coded variable's ``flag_meanings``."""
    return int(np.asarray(var.attrs["flag_values"])[var.attrs["flag_meanings"].split().index(meaning)])


def objective_response(a: xr.Dataset) -> np.ndarray:
    """Per patient: best overall response CR or PR."""
    best = a.best_response
    return (best.values == code(best, "complete_response")) | (best.values == code(best, "partial_response"))


BEST_RESPONSE_KEYS = {"CR": "complete_response", "PR": "partial_response", "SD": "stable_disease",
                      "PD": "progressive_disease", "NE": "not_evaluable"}


def measurable_disease(a: xr.Dataset) -> np.ndarray:
    """Per patient: at least one RECIST 1.1 target lesion at baseline."""
    return a.target_lesions.values > 0


EASL_VIABLE_RATIO = 0.5**1.5  # EASL partial response: the viable (enhancing) area -50 %, area ~ volume^(2/3)


def easl_index_response(a: xr.Dataset) -> np.ndarray:
    """Per patient: the index lesion's viable volume at the first scan at most ``EASL_VIABLE_RATIO`` of baseline, an
    EASL complete or partial response (Bruix J et al. J Hepatol 2001;35:421; the end point of DOSISPHERE-01, Garin E
    et al. Lancet Gastroenterol Hepatol 2021;6:17); a patient without that scan does not respond (mITT)."""
    return a.index_viable_ratio_first_scan.values <= EASL_VIABLE_RATIO


def psa50_response(a: xr.Dataset) -> np.ndarray:
    """Per patient: PSA fell to at most 50 % of baseline, confirmed (PCWG3; docs/model.md 3.6)."""
    return a.psa50.values == 1


def response_summary(a: xr.Dataset) -> dict:
    """Best overall response distribution (fractions of the arm; a patient without target lesions who neither
    responds completely nor progresses counts as SD), the objective response rate among patients with measurable
    disease (as VISION reported it) and the lesions per patient."""
    best = a.best_response.values
    measurable = measurable_disease(a)
    return {
        "best_response_rates": {key: _rate(best == code(a.best_response, meaning))
                                for key, meaning in BEST_RESPONSE_KEYS.items()},
        "measurable_disease_rate": _rate(measurable),
        "objective_response_rate_measurable": (_rate(objective_response(a)[measurable]) if measurable.any()
                                               else None),
        "easl_index_response_rate": _rate(easl_index_response(a)),
        "lesions_per_patient_mean": round(float(a.lesions_modelled.values.mean()), 4),
        "receptor_negative_lesion_rate": _rate(a.receptor_negative_lesions.values > 0),
        **lesion_dose_response(a),
    }


LESION_RESPONSE_VOLUME_RATIO = 0.7**3  # a lesion shrunk by >= 30 % in diameter: RECIST 1.1's PR threshold per lesion
DOSE_RESPONSE_PER_GY = 50.0  # Alipour R et al. EJNMMI 2023;50:2997 report the odds ratio per 50 Gy


def logistic_slope(x: np.ndarray, y: np.ndarray, tol: float = 1e-10) -> tuple[float, float]:
    """Maximum-likelihood slope of ``logit P(y) = b0 + b1 x`` and its standard error (inverse Fisher information),
    by Newton-Raphson (McCullagh P, Nelder JA. Generalized Linear Models, 2nd ed. 1989, section 4.4). The rows are
    every evaluable lesion of an arm (millions in a large run): each step works in place on two preallocated arrays."""
    design = np.column_stack([np.ones_like(x), x])
    p, weighted = np.empty_like(x), np.empty_like(design)

    def information(beta: np.ndarray) -> np.ndarray:
        """The Fisher information at ``beta``, with ``p`` = P(y) there."""
        np.matmul(design, beta, out=p)
        np.negative(p, out=p)
        np.exp(p, out=p)
        np.add(1.0, p, out=p)
        np.divide(1.0, p, out=p)  # 1 / (1 + exp(-design beta))
        np.multiply(design, (p * (1.0 - p))[:, None], out=weighted)
        return design.T @ weighted

    beta = np.zeros(2)
    for _ in range(100):
        step = np.linalg.solve(information(beta), design.T @ (y - p))
        beta += step
        if np.abs(step).max() < tol:
            break
    return float(beta[1]), float(np.sqrt(np.linalg.inv(information(beta))[1, 1]))


def evaluable_lesions(a: xr.Dataset) -> np.ndarray:
    """Per patient and lesion: the lesion got a first-cycle dose and has a volume ratio at best response."""
    dose, ratio = a.lesion_dose_gy_first.values, a.lesion_volume_ratio_best.values
    return np.isfinite(dose) & (dose > 0.0) & np.isfinite(ratio)


def lesion_dose_response(a: xr.Dataset) -> dict:
    """Lesion dose-response of a treated arm: the odds ratio (95 % Wald CI) per 50 Gy of first-cycle lesion absorbed
    dose for a lesion response (volume at best response <= 0.343 of baseline, i.e. -30 % in diameter), over the
    lesions of patients with a scan after treatment, as Alipour R et al. EJNMMI 2023;50:2997 report it."""
    dose = a.lesion_dose_gy_first.values
    ratio = a.lesion_volume_ratio_best.values
    use = evaluable_lesions(a)
    response = (ratio[use] <= LESION_RESPONSE_VOLUME_RATIO).astype(float)
    if use.sum() < 10 or response.min() == response.max():
        return {"lesion_response_rate": _rate(response) if use.any() else None,
                "lesion_response_or_per_50gy": None, "lesion_response_or_per_50gy_ci": [None, None]}
    slope, se = logistic_slope(dose[use] / DOSE_RESPONSE_PER_GY, response)
    return {"lesion_response_rate": _rate(response),
            "lesion_response_or_per_50gy": round(float(np.exp(slope)), 4),
            "lesion_response_or_per_50gy_ci": [round(float(np.exp(slope + z * se)), 4) for z in (-1.959964, 1.959964)]}


def toxicity_flags(a: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-patient flags behind the toxicity rates of a patient-level arm (the report's bars and the paired
    differences use the same ones): ``grade3plus_<adverse event>_rate`` for each blood line, renal grade >= 3,
    MDS/AML, reductions, delays, any haematological grade >= 3, discontinuation and treatment-related death."""
    worst = a.blood_worst_grade
    flags = {f"grade3plus_{ae}_rate": worst.sel(blood_line=line).values >= 3
             for line, ae in zip(worst.blood_line.values, worst.adverse_event.values, strict=True)}
    flags["grade3plus_renal_rate"] = a.renal_grade3_event.values == 1
    for organ, event in zip(a.organ.values, a.organ_adverse_event.values, strict=True):
        if event:  # an optional organ's late toxicity (docs/model.md 4.9)
            grade = a.organ_toxicity_grade.sel(organ=organ).values
            flags[f"grade1plus_{event}_rate"] = grade >= 1
            flags[f"grade2plus_{event}_rate"] = grade >= 2
    flags["renal_grade3plus_chronic_rate"] = a.ckd_grade.values >= 3  # eGFR < 30 by the end of follow-up
    flags["mds_aml_rate"] = a.mds_aml.values == 1
    flags["dose_reductions_rate"] = a.dose_reduced_any.values == 1
    flags["delays_rate"] = a.delayed_any.values == 1
    flags["grade3plus_haematological_rate"] = (worst >= 3).any("blood_line").values  # any line
    flags["discontinued_for_toxicity_rate"] = a.discontinued_for_toxicity.values == 1
    flags["treatment_related_death_rate"] = a.death_cause.values == code(a.death_cause, "treatment_related")
    return flags


INCIDENCE_MONTHS = (24, 60)  # horizons of the cumulative incidences: arms with different follow-up compare


def competing_events(a: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per cumulative-incidence end point (renal grade >= 3, MDS/AML), each patient's day and cause: 1 the event,
    2 death before it (the competing risk), 0 censored at the end of follow-up."""
    died = a.os_event.values == 1
    mds = a.mds_aml.values == 1

    def cause(event: np.ndarray) -> np.ndarray:
        return np.where(event, 1, np.where(died, 2, 0))

    return {"renal_grade3plus": (a.renal_grade3_time_days.values, cause(a.renal_grade3_event.values == 1)),
            "mds_aml": (np.where(mds, a.mds_aml_day.values, a.os_time_days.values), cause(mds))}


def incidence_at(time_days: np.ndarray, cause: np.ndarray) -> dict[str, float | None]:
    """Cumulative incidence of cause 1 at ``INCIDENCE_MONTHS`` with cause 2 (death) competing (Aalen-Johansen);
    None beyond the arm's longest follow-up."""
    cif = aalen_johansen(time_days, cause, 2)
    longest = float(np.max(time_days)) if time_days.size else 0.0
    return {str(m): (round(float(cif.at(m * DAYS_PER_MONTH)[0]), 4) if m * DAYS_PER_MONTH <= longest else None)
            for m in INCIDENCE_MONTHS}


EGFR_LOSS_FRACTION = 0.3  # a >= 30 % eGFR loss, a surrogate end point of kidney failure (Coresh J et al. JAMA
# 2014;311:2518) (M)


def incidence_summary(a: xr.Dataset) -> dict:
    """Renal grade >= 3 (eGFR < 30 or an acute event) and MDS/AML as cumulative incidences at 24 and 60 months,
    death a competing risk, so that arms and scenarios with different follow-up compare; and the fraction of
    4-year survivors (followed to 48 months) who lost >= 30 % of their baseline eGFR (None without any)."""
    change = a.egfr_change_48_months.values
    followed = ~np.isnan(change)
    return {"egfr_loss_30pct_4y_rate": _rate(change[followed] <= -EGFR_LOSS_FRACTION) if followed.any() else None,
            **{f"{name}_incidence": incidence_at(*events) for name, events in competing_events(a).items()}}


def toxicity_summary(a: xr.Dataset) -> dict:
    """Toxicity and dose-modification rates of one arm (fractions of its patients)."""
    return {key: _rate(flags) for key, flags in toxicity_flags(a).items()}


def resource_summary(a: xr.Dataset, cfg: Config, arm_name: str) -> dict:
    """Resource use per patient (docs/model.md 5.3), the spread of cumulative kidney BED, and target attainment."""
    arm = cfg.arm(arm_name)
    measured = a.cycles_measured.values
    cycles = a.cycles_given.values.astype(np.float64)
    activity = a.activity_gbq_total.values
    method = cfg.dosimetry_methods[arm.dosimetry.method] if getattr(arm, "dosimetry", None) else None
    sessions = measured * (method.sessions_per_cycle if method else 0)
    hours = measured * (method.physicist_hours_per_cycle if method else 0.0)
    visits = cycles + measured * (method.extra_visits_per_cycle if method else 0)
    treated = cycles > 0
    plan = getattr(arm, "planning", None)
    if plan is not None:  # one planning work-up (e.g. MAA SPECT/CT) per treated patient
        work_up = cfg.dosimetry_methods[plan.method]
        sessions = sessions + treated * work_up.sessions_per_cycle
        hours = hours + treated * work_up.physicist_hours_per_cycle
        visits = visits + treated * work_up.extra_visits_per_cycle
    kidney_bed = a.bed_gy_total.sel(organ="kidney").values[treated]
    out = {
        "activity_gbq_total_mean": round(float(activity.mean()), 4),
        "spect_sessions_mean": round(float(sessions.mean()), 4),
        "physicist_hours_mean": round(float(hours.mean()), 4),
        "hospital_visits_mean": round(float(visits.mean()), 4),
        "kidney_bed_gy_cv": (round(float(kidney_bed.std() / kidney_bed.mean()), 4) if kidney_bed.sum() > 0
                             else None),
        **({"planning_target": plan.target} if plan is not None else {}),
    }
    if cfg.costs is not None:
        c = cfg.costs
        cost = (activity * c.per_gbq + cycles * c.per_administration + sessions * c.per_imaging_session
                + hours * c.per_physicist_hour)
        out["cost_mean"] = round(float(cost.mean()), 2)
        out["cost_currency"] = c.currency
    if isinstance(arm, GuidedArm):
        reached = _rate(a.reached_target.values == 1)
        out["fraction_reaching_target"] = reached
        if arm.rule != "tumour_dose_target":
            out["fraction_reaching_kidney_target"] = reached
    return out


ENDPOINTS = ("pfs", "os")
GAIN_MONTHS = 3.0  # a patient "gains" or "loses" beyond this many months of restricted time
UNCHANGED_DAYS = 1.0  # ... and is "unchanged" within a day


def comparison(ds: xr.Dataset, arm: str, reference: str, cfg: Config,
               curves: dict[str, dict[str, KMFunctionals]] | None = None) -> dict:
    """Paired effects of ``arm`` against ``reference``: both hold the same patients, so every CI here respects the
    pairing (:mod:`sim.paired`) and describes the effect in the simulated population; what a randomised trial of a
    given size would see is ``rptsim trial``'s answer. ``curves``: each arm's ``survival_curves`` when the caller
    has them.

    Cox HR with the patient-clustered robust CI (Lin & Wei 1989); RMST and landmark differences by the paired delta
    method; differences of rates (ORR, toxicities) with Newcombe's paired interval; and each patient's own gain
    (``individual``, see :func:`individual_effects`).
    """
    a, r = ds.sel(arm=arm), ds.sel(arm=reference)
    curves = curves or {arm: survival_curves(a), reference: survival_curves(r)}
    horizon = cfg.trial.rmst_horizon_months * DAYS_PER_MONTH
    n = a.sizes["patient"]
    out: dict = {}
    for endpoint in ENDPOINTS:
        t_a, e_a = a[f"{endpoint}_time_days"].values, a[f"{endpoint}_event"].values
        t_r, e_r = r[f"{endpoint}_time_days"].values, r[f"{endpoint}_event"].values
        hr = cox_two_group(np.concatenate([t_a, t_r]), np.concatenate([e_a, e_r]),
                           np.concatenate([np.ones(n), np.zeros(n)]), cluster=np.tile(np.arange(n), 2))
        out[f"{endpoint}_hr"] = _rounded(hr.hr)
        out[f"{endpoint}_hr_robust_ci"] = [_rounded(hr.low), _rounded(hr.high)]
        rmst, *at = paired.curve_differences(curves[arm][endpoint], curves[reference][endpoint], [(horizon, "rmst")]
                                             + [(m * DAYS_PER_MONTH, "survival") for m in LANDMARK_MONTHS])
        out[f"rmst_{endpoint}_difference_months"] = _months(rmst.estimate)
        out[f"rmst_{endpoint}_difference_ci"] = _months_ci((rmst.low, rmst.high))
        landmarks = dict(zip((str(m) for m in LANDMARK_MONTHS), at, strict=True))
        out[f"{endpoint}_at_months_difference"] = {m: _rounded(d.estimate) for m, d in landmarks.items()}
        out[f"{endpoint}_at_months_difference_ci"] = {m: [_rounded(d.low), _rounded(d.high)]
                                                      for m, d in landmarks.items()}
    out["objective_response_rate_difference"], out["objective_response_rate_difference_ci"] = _rate_difference(
        objective_response(a), objective_response(r))
    out["easl_index_response_rate_difference"], out["easl_index_response_rate_difference_ci"] = _rate_difference(
        easl_index_response(a), easl_index_response(r))
    flags_a, flags_r = toxicity_flags(a), toxicity_flags(r)
    out["toxicity_rate_differences"] = {}
    for key in flags_a:
        d, ci = _rate_difference(flags_a[key], flags_r[key])
        out["toxicity_rate_differences"] |= {key: d, f"{key}_ci": ci}
    out["individual"] = individual_effects(ds, arm, reference, horizon)
    return out


def _rate_difference(x: np.ndarray, y: np.ndarray) -> tuple[float, list[float]]:
    d, low, high = paired_proportion_difference(x, y)
    return _rounded(d), [_rounded(low), _rounded(high)]


def individual_gains(ds: xr.Dataset, arm: str, reference: str, endpoint: str, horizon_days: float):
    """Per patient: the gain in time to the ``endpoint`` (days, restricted to the horizon) of ``arm`` over
    ``reference``, and whether it is known (:func:`sim.paired.restricted_gain`)."""
    a, r = ds.sel(arm=arm), ds.sel(arm=reference)
    return paired.restricted_gain(a[f"{endpoint}_time_days"].values, a[f"{endpoint}_event"].values,
                                  r[f"{endpoint}_time_days"].values, r[f"{endpoint}_event"].values, horizon_days)


def individual_effects(ds: xr.Dataset, arm: str, reference: str, horizon_days: float) -> dict:
    """What no real trial can observe: each patient's own PFS and OS gain (months, restricted to the RMST horizon)
    under ``arm`` rather than ``reference``, summarised as the fractions gaining or losing more than
    ``GAIN_MONTHS`` and unchanged (within ``UNCHANGED_DAYS``), the mean and quantiles of the gain, and, when the
    run kept the baseline covariates, which of them predict the gain (:func:`sim.paired.benefit_by_covariate`).
    Fractions are of the patients whose gain is known (``evaluable_fraction`` of all)."""
    out: dict = {"horizon_months": _months(horizon_days), "threshold_months": GAIN_MONTHS}
    covariates = {name: ds[name].values for name in COVARIATE_NAMES if name in ds}
    orders = {name: np.argsort(x, kind="stable") for name, x in covariates.items()}  # shared by both endpoints
    for endpoint in ENDPOINTS:
        gain, known = individual_gains(ds, arm, reference, endpoint, horizon_days)
        months = gain[known] / DAYS_PER_MONTH
        stats = paired.gain_distribution(months, GAIN_MONTHS, UNCHANGED_DAYS / DAYS_PER_MONTH)
        entry = {"evaluable_fraction": _rate(known)}
        entry |= {k: _rounded(v) if v is not None else None for k, v in stats.items()}
        if covariates:
            by = paired.benefit_by_covariate(months, covariates, known, orders)
            entry["benefit_by_covariate"] = {
                c: {"spearman_rho": None if v["spearman_rho"] is None else _rounded(v["spearman_rho"]),
                    "mean_gain_months_by_group": {q: None if m is None else _rounded(m)
                                                  for q, m in v["mean_gain_by_group"].items()}}
                for c, v in by.items()}
        out[endpoint] = entry
    return out


def _rounded(x: float, digits: int = 4) -> float | None:
    return round(float(x), digits) if np.isfinite(x) else None


def summary(ds: xr.Dataset) -> dict:
    """The run summary written beside the HDF5 file (``OUT.summary.json``), from a run at any ``keep`` level."""
    cfg = config.validate(json.loads(ds.attrs["config_json"]), "config_json")
    ds = patient_level(ds)
    reference = cfg.reference_arm()
    curves = {str(arm): survival_curves(ds.sel(arm=arm)) for arm in ds.arm.values}
    return {
        "scenario": ds.attrs["scenario"],
        "seed": int(ds.attrs["seed"]),
        "n_patients": int(ds.sizes["patient"]),
        "rptsim_version": ds.attrs["rptsim_version"],
        "reference_arm": reference,
        "rmst_horizon_months": cfg.trial.rmst_horizon_months,
        "pfs_name": cfg.trial.pfs_name,
        "arms": {str(arm): arm_summary(ds, str(arm), cfg, curves[str(arm)]) for arm in ds.arm.values},
        "comparisons": {f"{arm} vs {reference}": comparison(ds, str(arm), reference, cfg, curves)
                        for arm in ds.arm.values if arm != reference},
    }
