"""Column layout of the arrays exchanged with the kernel (struct of arrays, float64 throughout).

The kernel takes one patient matrix ``patients[n, N_PATIENT]`` (per-arm: the dosimetry columns depend on
the agent), one model-parameter vector ``model[N_MODEL]`` and one regimen description, and fills
``per_cycle[N_CYCLE_VARS, n, K]`` and ``per_patient[N_PATIENT_VARS, n]``. Fixed-width float arrays keep
the kernel's signature, and so its compiled code, the same for every scenario.
"""

# patients[n, :], all rates per day
(AGE_YEARS, TUMOUR_VOLUME_ML, STROMA_FRACTION, RECEPTOR_NEGATIVE_FRACTION, GROWTH_PER_DAY,
 NEW_LESION_PER_DAY, TUMOUR_ALPHA_PER_GY, ADMIN_CENSOR_DAY, POST_PROGRESSION_DEATH_PER_DAY,
 KIDNEY_GY_PER_GBQ, KIDNEY_TEFF_H, MARROW_GY_PER_GBQ, MARROW_TEFF_H, TUMOUR_GY_PER_GBQ, TUMOUR_TEFF_H,
 ) = range(15)
N_PATIENT = 15

# model[:]
(KIDNEY_ALPHA_BETA_GY, KIDNEY_REPAIR_H, MARROW_ALPHA_BETA_GY, MARROW_REPAIR_H, TUMOUR_ALPHA_BETA_GY,
 TUMOUR_REPAIR_H, KIDNEY_INTRA_SIGMA, MARROW_INTRA_SIGMA, TUMOUR_INTRA_SIGMA, KIDNEY_MEAS_SIGMA,
 MARROW_MEAS_SIGMA, TUMOUR_MEAS_SIGMA, TUMOUR_DOSE_DECLINE, DEAD_CLEARANCE_PER_DAY, NEW_LESION_EXPONENT,
 CONFIRM_RESPONSE, BACKGROUND_HAZARD_65_PER_YEAR, BACKGROUND_SLOPE_PER_YEAR, PRE_PROGRESSION_DEATH_PER_DAY,
 DROPOUT_PER_DAY,
 ) = range(20)
N_MODEL = 20

# per_cycle[v, n, k]
(C_TIME_DAYS, C_ACTIVITY_GBQ, C_KIDNEY_DOSE_GY, C_KIDNEY_DOSE_MEASURED_GY, C_KIDNEY_BED_GY, C_MARROW_DOSE_GY,
 C_MARROW_DOSE_MEASURED_GY, C_MARROW_BED_GY, C_TUMOUR_DOSE_GY, C_TUMOUR_DOSE_MEASURED_GY, C_TUMOUR_BED_GY,
 ) = range(11)
N_CYCLE_VARS = 11

# per_patient[v, n]
(P_CYCLES, P_PFS_DAYS, P_PFS_EVENT, P_OS_DAYS, P_OS_EVENT, P_DEATH_CAUSE, P_BEST_RESPONSE, P_PROGRESSION_TYPE,
 P_NADIR_RATIO,
 ) = range(9)
N_PATIENT_VARS = 9

# Codes (stored as small integers; meanings go into the HDF5 attributes).
CAUSE_ALIVE, CAUSE_CANCER_AFTER_PROGRESSION, CAUSE_CANCER_BEFORE_PROGRESSION, CAUSE_OTHER = 0, 1, 2, 3
CAUSE_MEANINGS = "alive_or_censored cancer_after_progression cancer_before_progression other_causes"
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
