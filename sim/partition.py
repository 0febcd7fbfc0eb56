"""Intra-arterial 90Y microspheres (selective internal radiation therapy, SIRT): the partition model of where the
activity lodges, and the pre-treatment plan of the activity from predictive (99mTc-MAA SPECT/CT) dosimetry
(docs/model.md 5.6).

Microspheres stay where the blood carries them and decay there (a permanent implant: the dose rate falls with the
physical half-life, 64.1 h, which is the agent's effective half-life). A share LSF (lung shunt fraction) reaches
the lungs; the rest is shared by the perfused tumour and normal liver in proportion to mass x tumour-to-normal
uptake ratio T/N. The absorbed dose per GBq of a compartment is E x (its share per kg), E ~ 49.67 Gy kg/GBq the
90Y beta energy absorbed locally (Ho S et al. Eur J Nucl Med 1996;23:947; Gulec SA et al. J Nucl Med 2006;47:1209):

    normal liver  D_N / A = E (1 - LSF) / (M_N + sum_j T/N_j M_j)
    lesion j      D_j / A = T/N_j x D_N / A
    lungs         D_L / A = E LSF / M_lung
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRAMS_PER_KG = 1000.0


@dataclass(frozen=True)
class Shares:
    """Per patient, the share of the administered activity absorbed per kg of normal perfused liver and of the
    lungs (1/kg; times the agent's E, Gy kg/GBq, it is Gy/GBq)."""

    liver_per_kg: np.ndarray
    lung_per_kg: np.ndarray


def shares(lung_shunt_fraction: np.ndarray, liver_ml: np.ndarray, lesion_ml: np.ndarray, lesion_tn: np.ndarray,
           lung_mass_kg: float, density_g_ml: float) -> Shares:
    """The partition model's shares per kg (module docstring); ``lesion_ml`` and ``lesion_tn`` are (patient, lesion)
    with T/N 0 for a lesion the microspheres do not reach (outside the perfused territory, or absent)."""
    weighted_ml = liver_ml + (lesion_tn * lesion_ml).sum(axis=1)
    liver = (1.0 - lung_shunt_fraction) * GRAMS_PER_KG / (density_g_ml * weighted_ml)
    return Shares(liver, lung_shunt_fraction / lung_mass_kg)


def planned_activity(target_gy_per_gbq: np.ndarray, target_gy: float, limits: list[tuple[float, np.ndarray]],
                     most_gbq: float) -> np.ndarray:
    """The planned activity per patient: ``A = min(target / G_target, min_o limit_o / G_o, A_max)`` with the
    *predicted* Gy/GBq ``G`` of the target and of each limited organ (an organ predicted at 0 Gy/GBq sets no limit).
    DOSISPHERE-01's arms (Garin E et al. Lancet Gastroenterol Hepatol 2021;6:17): 120 Gy to the perfused volume, or
    >= 205 Gy (aiming at 250-300) to the index lesion within the normal-liver and the 30 Gy lung limits."""
    with np.errstate(divide="ignore"):
        activity = np.minimum(target_gy / target_gy_per_gbq, most_gbq)
        for limit_gy, gy_per_gbq in limits:
            activity = np.minimum(activity, limit_gy / gy_per_gbq)
    return activity
