"""Dosimetry of one administration, per organ and per lesion: true dose, BED, measured or predicted dose
(docs/model.md 3 and 5.1).

For an organ (or lesion) with Gy/GBq ``g`` and cycle-to-cycle log-sd ``s``, cycle ``k`` of activity ``A`` delivers
``D = A g exp(s z)`` (``z``: counter ``k`` of the organ's intra-patient stream); a measured cycle reports
``D b exp(s_m z')`` (``b``: the patient's systematic error, the same in every cycle; ``z'``: its measurement
stream); a cycle not measured is predicted as ``A`` times the measured Gy/GBq of the cycles measured before it (0
before any). The *known* dose and BED sums are what a guided regimen sees; the known BEDs use the half-life that the
dosimetry knows (measured, or the population's), not the true one.
"""

import math

from numba import njit

from sim import rng
from sim.kernels import KERNEL
from sim.kernels.radiobiology import bed
from sim.kernels.tumour import LESION_INTRA_STREAM, LESION_MEASUREMENT_STREAM


@njit(inline="always", **KERNEL)
def draw_dose(patient_key, stream, k, activity, gy_per_gbq, sigma):
    """True absorbed dose of cycle ``k``: ``A g exp(sigma z_k)``."""
    return activity * gy_per_gbq * math.exp(sigma * rng.normal(rng.stream_key(patient_key, stream), k))


@njit(inline="always", **KERNEL)
def report_dose(patient_key, stream, k, dose, bias, sigma, measured, activity, measured_sum, measured_activity):
    """The dose dosimetry reports for cycle ``k``: ``(value recorded, known value)``. Measured: ``D b exp(sigma z_k)``
    for both (``b``: the patient's systematic error); not measured: NaN recorded, and the prediction
    ``A x measured_sum / measured_activity`` known (0 before any measured cycle)."""
    if measured:
        m = dose * bias * math.exp(sigma * rng.normal(rng.stream_key(patient_key, stream), k))
        return m, m
    if measured_activity > 0.0:
        return math.nan, activity * measured_sum / measured_activity
    return math.nan, 0.0


@njit(inline="always", **KERNEL)
def administer_organs(i, k, patient_key, activity, measured, measured_activity, patients, organs, out, w):
    """Doses, BEDs and reports of every organ at risk for cycle ``k``; adds the known doses and BEDs to
    ``w.known_gy`` / ``w.known_bed_gy`` and the measured ones to ``w.measured_gy``."""
    for o in range(organs.alpha_beta_gy.shape[0]):
        d = draw_dose(patient_key, organs.intra_stream[o], k, activity, patients.gy_per_gbq[i, o],
                      organs.intra_sigma[o])
        teff, repair, ab = patients.teff_h[i, o], organs.repair_h[o], organs.alpha_beta_gy[o]
        out.dose_gy[i, k, o] = d
        out.bed_gy[i, k, o] = bed(d, teff, repair, ab)
        recorded, m = report_dose(patient_key, organs.measurement_stream[o], k, d, patients.measurement_bias[i, o],
                                  organs.measurement_sigma[o], measured, activity, w.measured_gy[i, o],
                                  measured_activity)
        out.dose_measured_gy[i, k, o] = recorded
        if measured:
            w.measured_gy[i, o] += m
        w.known_gy[i, o] += m
        w.known_bed_gy[i, o] += bed(m, patients.known_teff_h[i, o], repair, ab)


@njit(inline="always", **KERNEL)
def administer_lesions(i, k, patient_key, activity, measured, measured_activity, decline, patients, tumour, out, w):
    """Doses, BEDs and reports of every lesion for cycle ``k`` (Gy/GBq x ``decline``, the fall of tumour uptake over
    the cycles given); adds the known doses to ``w.lesion_known_gy`` and the measured ones to
    ``w.lesion_measured_gy``."""
    for j in range(patients.lesion_count[i]):
        item = rng.U64(j)
        d = draw_dose(patient_key, LESION_INTRA_STREAM + item, k, activity,
                      patients.lesion_gy_per_gbq[i, j] * decline, tumour.intra_sigma)
        out.lesion_dose_gy[i, k, j] = d
        out.lesion_bed_gy[i, k, j] = bed(d, patients.lesion_teff_h[i, j], tumour.repair_h, tumour.alpha_beta_gy)
        recorded, m = report_dose(patient_key, LESION_MEASUREMENT_STREAM + item, k, d,
                                  patients.lesion_measurement_bias[i, j], tumour.measurement_sigma, measured, activity,
                                  w.lesion_measured_gy[i, j], measured_activity)
        out.lesion_dose_measured_gy[i, k, j] = recorded
        if measured:
            w.lesion_measured_gy[i, j] += m
        w.lesion_known_gy[i, j] += m
