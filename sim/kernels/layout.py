"""Column layout of the arrays exchanged with the kernel (struct of arrays, float64 throughout).

The kernel takes one patient matrix ``patients[n, N_PATIENT]`` (per-arm: the dosimetry columns depend on
the agent), one model-parameter vector ``model[N_MODEL]``, one regimen vector ``regimen[N_REGIMEN]`` with the
per-cycle ``activities``, and fills
``per_cycle[N_CYCLE_VARS, n, K]`` and ``per_patient[N_PATIENT_VARS, n]``. Fixed-width float arrays keep
the kernel's signature, and so its compiled code, the same for every scenario.
"""

# patients[n, :], all rates per day
(AGE_YEARS, TUMOUR_VOLUME_ML, STROMA_FRACTION, RECEPTOR_NEGATIVE_FRACTION, GROWTH_PER_DAY,
 NEW_LESION_PER_DAY, TUMOUR_ALPHA_PER_GY, ADMIN_CENSOR_DAY, POST_PROGRESSION_DEATH_PER_DAY,
 KIDNEY_GY_PER_GBQ, KIDNEY_TEFF_H, MARROW_GY_PER_GBQ, MARROW_TEFF_H, TUMOUR_GY_PER_GBQ, TUMOUR_TEFF_H,
 PLATELETS_BASELINE, MARROW_ALPHA_PER_GY, EGFR_BASELINE, KIDNEY_RISK_FACTOR, PRIOR_CHEMOTHERAPY,
 NEUTROPHILS_BASELINE,
 ) = range(21)
N_PATIENT = 21

# model[:]
(KIDNEY_ALPHA_BETA_GY, KIDNEY_REPAIR_H, MARROW_ALPHA_BETA_GY, MARROW_REPAIR_H, TUMOUR_ALPHA_BETA_GY,
 TUMOUR_REPAIR_H, KIDNEY_INTRA_SIGMA, MARROW_INTRA_SIGMA, TUMOUR_INTRA_SIGMA, KIDNEY_MEAS_SIGMA,
 MARROW_MEAS_SIGMA, TUMOUR_MEAS_SIGMA, TUMOUR_DOSE_DECLINE, DEAD_CLEARANCE_PER_DAY, NEW_LESION_EXPONENT,
 CONFIRM_RESPONSE, BACKGROUND_HAZARD_65_PER_YEAR, BACKGROUND_SLOPE_PER_YEAR, PRE_PROGRESSION_DEATH_PER_DAY,
 DROPOUT_PER_DAY,
 # marrow (platelets); MARROW_FIRST_STEP_DAYS is config marrow.max_step_days, the first trial step of each interval
 MARROW_MTT_DAYS, PLATELET_LIFESPAN_DAYS, MARROW_GAMMA, MARROW_RESERVE_PER_GY, MARROW_FIRST_STEP_DAYS,
 MARROW_WINDOW_DAYS, FATAL_GRADE4_PROBABILITY,
 # kidney
 KIDNEY_BED50_GY, KIDNEY_LKB_M, KIDNEY_RISK_FACTOR_SHIFT_GY, NEPHROPATHY_LATENCY_DAYS, NEPHROPATHY_LATENCY_SIGMA,
 NEPHROPATHY_EGFR_LOSS, EGFR_AGE_DECLINE_PER_YEAR, EGFR_RADIATION_DECLINE_PER_GY_YEAR,
 EGFR_RISK_FACTOR_MULTIPLIER, EGFR_SUBCLINICAL_LATENCY_DAYS,
 # MDS / AML
 MDS_RISK_PER_GY, MDS_CHEMO_MULTIPLIER, MDS_LATENCY_DAYS, MDS_LATENCY_SIGMA, MDS_DEATH_PER_DAY,
 # marrow (neutrophils): same model, own kinetics; radiosensitivity = patient's alpha x ratio
 NEUTROPHIL_MTT_DAYS, NEUTROPHIL_LIFESPAN_DAYS, NEUTROPHIL_GAMMA, NEUTROPHIL_ALPHA_RATIO,
 ) = range(46)
N_MODEL = 46

# regimen[:] (a "never" threshold is encoded as a value the rule cannot reach)
(R_N_CYCLES, R_INTERVAL_DAYS, R_CONTINUE_AFTER, R_WITHHOLD_GRADE, R_WITHHOLD_EGFR_BELOW, R_WITHHOLD_EGFR_DROP,
 R_REDUCE_GRADE, R_REDUCTION_FRACTION, R_RESTORE, R_MAX_REDUCTIONS, R_RECHECK_DAYS, R_MAX_DELAY_DAYS,
 R_REDUCE_IF_WITHHELD, R_WITHHOLD_NEUTROPHIL_GRADE, R_REDUCE_NEUTROPHIL_GRADE,
 # dosimetry and guided rules (docs/model.md section 5)
 R_RULE, R_GUIDED_ACTIVITY, R_KIDNEY_LIMIT_GY, R_KIDNEY_LIMIT_RF_GY, R_MARROW_LIMIT_GY, R_TARGET, R_TARGET_IS_BED,
 R_MIN_ACTIVITY, R_MAX_ACTIVITY, R_REDUCE_LAST, R_MEASURED_CYCLES,
 ) = range(26)
N_REGIMEN = 26
RULE_FIXED, RULE_KIDNEY_LIMIT, RULE_KIDNEY_TARGET, RULE_TUMOUR_TARGET = range(4)
NEVER_GRADE = 99.0

# per_cycle[v, n, k]
(C_TIME_DAYS, C_ACTIVITY_GBQ, C_KIDNEY_DOSE_GY, C_KIDNEY_DOSE_MEASURED_GY, C_KIDNEY_BED_GY, C_MARROW_DOSE_GY,
 C_MARROW_DOSE_MEASURED_GY, C_MARROW_BED_GY, C_TUMOUR_DOSE_GY, C_TUMOUR_DOSE_MEASURED_GY, C_TUMOUR_BED_GY,
 C_DELAY_DAYS, C_REDUCED, C_PLATELET_NADIR, C_PLATELET_NADIR_DAY, C_PLATELET_GRADE, C_PLATELET_END,
 C_NEUTROPHIL_NADIR, C_NEUTROPHIL_GRADE, C_MEASURED,
 ) = range(20)
N_CYCLE_VARS = 20

# per_patient[v, n]
(P_CYCLES, P_PFS_DAYS, P_PFS_EVENT, P_OS_DAYS, P_OS_EVENT, P_DEATH_CAUSE, P_BEST_RESPONSE, P_PROGRESSION_TYPE,
 P_NADIR_RATIO, P_PLATELET_WORST_GRADE, P_EGFR_END, P_CKD_GRADE, P_RENAL_G3_DAYS, P_RENAL_G3_EVENT, P_MDS_AML,
 P_MDS_AML_DAY, P_DISCONTINUED_TOXICITY, P_NEUTROPHIL_WORST_GRADE, P_REACHED_TARGET,
 ) = range(19)
N_PATIENT_VARS = 19

# Codes (stored as small integers; meanings go into the HDF5 attributes).
CAUSE_ALIVE, CAUSE_CANCER_AFTER_PROGRESSION, CAUSE_CANCER_BEFORE_PROGRESSION, CAUSE_OTHER, CAUSE_TREATMENT = range(5)
CAUSE_MEANINGS = "alive_or_censored cancer_after_progression cancer_before_progression other_causes treatment_related"
RESPONSE_NE, RESPONSE_CR, RESPONSE_PR, RESPONSE_SD, RESPONSE_PD = 0, 1, 2, 3, 4
RESPONSE_MEANINGS = "not_evaluable complete_response partial_response stable_disease progressive_disease"
PROGRESSION_NONE, PROGRESSION_TARGET, PROGRESSION_NEW_LESION, PROGRESSION_BOTH = 0, 1, 2, 3
PROGRESSION_MEANINGS = "none target_growth new_lesion target_growth_and_new_lesion"

# RECIST 1.1 (Eisenhauer EA et al., Eur J Cancer 2009;45:228-247) on the sum of diameters, read here as
# volume^(1/3): PR = -30 % diameters (volume x 0.343), PD = +20 % over the nadir (volume x 1.728). CR is
# taken as diameters below 10 % of baseline (volume x 0.001): lesions no longer measurable.
PR_VOLUME_RATIO = 0.7**3
PD_VOLUME_RATIO = 1.2**3
CR_VOLUME_RATIO = 0.1**3

# Marrow integrator (sim/kernels/marrow.py): RK4 with an embedded third-order error estimate and step-size
# control. A step is accepted when its estimated local error is at most MARROW_RTOL of the smallest compartment; the
# next step is the current one times 0.9 (MARROW_RTOL / error)^(1/4), kept within [MARROW_MIN_STEP_FACTOR,
# MARROW_MAX_STEP_FACTOR]. A step is also short enough that the radiation kill alpha x dose rate at its start
# removes at most MARROW_MAX_KILL_PER_STEP of the progenitors (stiff early hours of a high-dose, short-half-life
# cycle), and any step down to MARROW_MIN_STEP_DAYS is accepted (a floor that ends the loop whatever the error).
MARROW_RTOL = 3e-5
MARROW_MIN_STEP_FACTOR = 0.2
MARROW_MAX_STEP_FACTOR = 4.0
MARROW_MAX_KILL_PER_STEP = 0.5
MARROW_MIN_STEP_DAYS = 1e-6

# CTCAE v5.0 grade thresholds (NCI 2017): platelet count decreased (1e9/L) and chronic kidney disease (eGFR).
PLATELET_GRADE_BELOW = (150.0, 75.0, 50.0, 25.0)  # grade g if count < PLATELET_GRADE_BELOW[g - 1]
NEUTROPHIL_GRADE_BELOW = (2.0, 1.5, 1.0, 0.5)  # LLN 2.0e9/L
CKD_GRADE_BELOW = (90.0, 60.0, 30.0, 15.0)
