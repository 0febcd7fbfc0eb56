"""Hand-made kernel inputs, by name: one group at a time from defaults plus keyword overrides.

The defaults describe a plain patient (60 years, 100 mL tumour with 20 % stroma, stable growth over 300 days,
kidney 0.5 Gy/GBq, marrow 0.03 Gy/GBq, tumour 4 Gy/GBq, platelets 250 and neutrophils 4.0 x 1e9/L, eGFR 90 falling
1 mL/min a year, no acute renal event), a
model without variability, measurement error, background death or MDS/AML, and a fixed regimen without
dose-modification rules, whose activities are not planned per patient. Organs are (kidney, marrow) and blood lines
(platelets, neutrophils); one lesion (or as
many as ``lesion_volume_ml`` has columns: all present, targets, receptor-positive, growing at the patient's rate, with
the patient's radiosensitivity); dosimetry without systematic error that knows the true half-lives.
"""

from __future__ import annotations

import math

import numpy as np

from sim import kernel_inputs, kernel_outputs, rng
from sim.kernels import marrow, policy, tumour
from sim.kernels.patient import run_arm

ORGANS = ("kidney", "marrow")
LINES = (marrow.PLATELET_GRADE_BELOW, marrow.NEUTROPHIL_GRADE_BELOW)


def patients(n: int = 1, ids=None, **values) -> kernel_inputs.Patients:  # noqa: ANN001
    base = dict(
        patient_id=np.arange(3, 3 + n) if ids is None else ids, age_years=60.0, admin_censor_day=3000.0,
        growth_per_day=math.log(2) / 300.0, new_lesion_per_day=0.0, post_progression_death_per_day=1e-3,
        tumour_alpha_per_gy=0.0, psa0_ng_ml=10.0,
        egfr_baseline_ml_min=90.0, kidney_risk_factor=0.0, egfr_decline_ml_min_per_year=1.0,
        acute_renal_day=math.inf, prior_chemotherapy=0.0,
        marrow_alpha_per_gy=1.5, blood_baseline=[250.0, 4.0], gy_per_gbq=[0.5, 0.03], teff_h=[55.0, 40.0],
        lesion_volume_ml=[100.0], lesion_stroma_fraction=[0.2], lesion_negative_fraction=[0.0],
        lesion_gy_per_gbq=[4.0], lesion_teff_h=[90.0], planned_activity_gbq=math.nan,
        pre_progression_death_multiplier=1.0)
    base.update(values)
    m = np.shape(base["lesion_volume_ml"])[-1]  # every lesion present, a target, receptor-positive, no cross-fire
    def per_lesion(name: str) -> np.ndarray:  # a per-patient value, the same for each lesion
        return np.multiply.outer(np.asarray(base.pop(name)), np.ones(m))

    lesion_defaults = dict(lesion_count=m, lesion_role=[tumour.ROLE_TARGET] * m, lesion_receptor_negative=[0] * m,
                           lesion_negative_dose_ratio=[0.0] * m, lesion_growth_per_day=per_lesion("growth_per_day"),
                           lesion_alpha_per_gy=per_lesion("tumour_alpha_per_gy"), lesion_measurement_bias=[1.0] * m)
    # dosimetry without a systematic error, knowing the true half-lives
    exact = dict(measurement_bias=np.ones_like(np.asarray(base["gy_per_gbq"], dtype=float)),
                 known_teff_h=base["teff_h"])
    no_other_cause = dict(blood_background_per_day=np.zeros(np.shape(base["blood_baseline"])),
                          blood_background_e=np.ones(np.shape(base["blood_baseline"])))
    base = lesion_defaults | exact | no_other_cause | base
    out = {}
    for q in kernel_inputs.PATIENT_INPUTS:
        v = np.asarray(base[q.name], dtype=q.dtype)
        out[q.name] = np.broadcast_to(v, (n,) + v.shape[1:] if v.ndim == len(q.dims) else (n,) + v.shape).copy()
    return kernel_inputs.make("Patients", **out)


def organs(**values) -> kernel_inputs.Organs:
    base = dict(alpha_beta_gy=[2.6, 10.0], repair_h=[2.8, 0.5], intra_sigma=[0.0, 0.0], measurement_sigma=[0.0, 0.0],
                intra_stream=[rng.stream_id(f"dosimetry/{o}/intra-patient") for o in ORGANS],
                measurement_stream=[rng.stream_id(f"dosimetry/{o}/measurement") for o in ORGANS],
                toxicity_bed50_gy=[math.inf, math.inf], toxicity_m=[1.0, 1.0], toxicity_grade2_ratio=[1.0, 1.0],
                toxicity_other_cause=[0.0, 0.0], toxicity_stream=[rng.stream_id(f"{o}/toxicity") for o in ORGANS])
    base.update(values)
    return kernel_inputs.make("Organs", **base)


def lesions(**values) -> kernel_inputs.Lesions:
    base = dict(alpha_beta_gy=10.0, repair_h=1.5, intra_sigma=0.0, measurement_sigma=0.0, dose_decline=0.0,
                dead_clearance_per_day=math.log(2) / 30, new_lesion_exponent=0.0, confirm_response=False,
                stroma_relax_per_day=0.0, disappeared_ml=math.pi / 6 * 0.5**3, progression_absolute_mm=5.0,
                non_target_progression_ratio=2.0, psa_modelled=False, psa_clearance_per_day=0.0,
                psa_negative_ratio=1.0, psa_dead_ratio=0.0, resection_probability=0.0, resection_viable_ratio=0.0,
                resection_residual_ml=0.0, resection_window_days=0.0)
    base.update(values)
    return kernel_inputs.make("Lesions", **base)


def blood(**values) -> kernel_inputs.Blood:
    base = dict(organ=1, background_after_progression=1.0, mtt_days=[20.0, 5.2], lifespan_days=[5.0, 1.3],
                gamma=[0.3, 0.16], alpha_ratio=[1.0, 1.0],
                reserve_ratio=[1.0, 1.0],
                grade_below=LINES, reserve_per_gy=0.15, first_step_days=0.5, window_days=112.0,
                fatal_grade4_probability=0.0, fatal_line=0)
    base.update(values)
    return kernel_inputs.make("Blood", **base)


def kidney(**values) -> kernel_inputs.Kidney:
    base = dict(organ=0, bed50_gy=49.5, lkb_m=0.108, risk_factor_bed50_ratio=0.7, nephropathy_latency_days=540.0,
                nephropathy_latency_sigma=0.5, nephropathy_egfr_loss=0.6,
                radiation_decline_per_gy_year=0.0015, risk_factor_decline_multiplier=1.5,
                subclinical_latency_days=180.0)
    base.update(values)
    return kernel_inputs.make("Kidney", **base)


def events(**values) -> kernel_inputs.Events:
    base = dict(background_hazard_65_per_year=1e-12, background_slope_per_year=0.0, pre_progression_death_per_day=0.0,
                dropout_per_day=0.0, mds_risk_per_gy=0.0, mds_chemo_multiplier=2.0, mds_latency_days=880.0,
                mds_latency_sigma=0.45, mds_death_per_day=0.002)
    base.update(values)
    return kernel_inputs.make("Events", **base)


def regimen(n_cycles: int, activities=None, interval_days: float = 56.0, **values) -> kernel_inputs.Regimen:  # noqa: ANN001
    never = policy.NEVER_GRADE
    base = dict(n_cycles=n_cycles, interval_days=interval_days, continue_after=0,
                activities_gbq=activities if activities is not None else [7.4] * max(n_cycles, 1),
                rule=policy.RULE_FIXED, guided_activity_gbq=7.4, kidney_limit_gy=math.inf,
                kidney_limit_risk_factor_gy=math.inf, marrow_limit_gy=2.0, target_gy=math.inf, target_is_bed=True,
                min_activity_gbq=0.0, max_activity_gbq=math.inf, reduce_last_cycle=False, measured_cycles=0,
                withhold_grade=[never, never], reduce_grade=[never, never], withhold_egfr_below_ml_min=0.0,
                withhold_egfr_drop=1.0, reduction_fraction=0.0, restore_after_tolerated=False, max_reductions=1,
                recheck_days=7.0, max_delay_days=112.0, reduce_if_withheld=False, stop_at_psa_progression=False,
                pause_after=0, pause_psa_ratio=0.0, retreat_cycles=0, retreat_only_after_pause=False,
                retreat_min_day=math.inf, retreat_activity_gbq=0.0, retreat_interval_days=56.0,
                retreat_kidney_limit_gy=math.inf)
    base.update(values)
    return kernel_inputs.make("Regimen", **base)


SCANS_Q12W = np.arange(84.0, 3000.0, 84.0)


def inputs(patient=None, organ=None, lesion=None, blood_params=None, kidney_params=None, event_params=None,  # noqa: ANN001
           plan=None, scans=SCANS_Q12W, seed: int = 11) -> kernel_inputs.KernelInputs:
    """A KernelInputs from the groups given, defaults for the others (a 4-cycle fixed regimen)."""
    return kernel_inputs.KernelInputs(
        seed, patient if patient is not None else patients(), organ if organ is not None else organs(),
        lesion if lesion is not None else lesions(), blood_params if blood_params is not None else blood(),
        kidney_params if kidney_params is not None else kidney(),
        event_params if event_params is not None else events(), plan if plan is not None else regimen(4),
        np.asarray(scans, dtype=np.float64))


def sizes(inp: kernel_inputs.KernelInputs, k_max: int) -> dict[str, int]:
    p = inp.patients
    return {"patient": p.age_years.shape[0], "cycle": k_max, "organ": p.gy_per_gbq.shape[1],
            "lesion": p.lesion_volume_ml.shape[1], "blood_line": p.blood_baseline.shape[1]}


def run(inp: kernel_inputs.KernelInputs, k_max: int = 6) -> kernel_outputs.Outputs:
    """The kernel's outputs for ``inp`` (cycles axis of ``k_max``)."""
    out = kernel_outputs.allocate(sizes(inp, k_max))
    run_arm(*inp.args(), out)
    return out
