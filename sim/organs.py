"""The entries of the organ and blood-line axes.

An organ at risk is an entry of ``ORGANS``: its name is the key of its dosimetry in an agent
(``[agents.X.<name>]``), of its radiobiology (``[radiobiology.<name>]``) and of its error in a dosimetry method
(``<name>_cv``), and it says how patient covariates modify its uptake. Every organ gets per-cycle dose, BED and
measured dose (outputs with an ``organ`` dimension); an organ's toxicity model is a kernel module of its own
(``sim/kernels/kidney.py``, ``sim/kernels/marrow.py``). A blood line is an entry of ``BLOOD_LINES``: its kinetics
in the config, its baseline covariate, its CTCAE thresholds (from ``sim/kernels/marrow.py``) and the dose-
modification rules that read it. ``docs/extending.md`` shows how to add either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.kernels.marrow import (
    HAEMOGLOBIN_GRADE_BELOW,
    LYMPHOCYTE_GRADE_BELOW,
    NEUTROPHIL_GRADE_BELOW,
    PLATELET_GRADE_BELOW,
)


def has_kidney_risk_factor(covariates: dict[str, np.ndarray]) -> np.ndarray:
    """Hypertension or diabetes (Bodei L et al. EJNMMI 2008;35:1847), as 0/1 floats."""
    return ((covariates["hypertension"] > 0) | (covariates["diabetes"] > 0)).astype(np.float64)


# An uptake function reads the organ's dosimetry table and the translation context ``c`` (sim.kernel_inputs.Context:
# the covariates ``c.cov``, and ``c.partition`` for microspheres).


def _kidney_uptake(dosimetry, c) -> np.ndarray:  # noqa: ANN001 - KidneyDosimetry, Context
    """Kidney risk factors (Guerriero F et al., Biomed Res Int 2013;935351) and renal function (Svensson J et al.,
    EJNMMI 2015;42:947): ``risk_multiplier^[hypertension or diabetes] x (eGFR / 90)^-egfr_exponent``."""
    risk = np.where(has_kidney_risk_factor(c.cov) > 0, dosimetry.risk_factor_multiplier, 1.0)
    return risk * (c.cov["egfr_ml_min"] / 90.0) ** -dosimetry.egfr_exponent


def _marrow_uptake(dosimetry, c) -> np.ndarray:  # noqa: ANN001 - MarrowDosimetry, Context
    """Bone metastases raise the marrow dose (Hagmarker L et al., J Nucl Med 2019;60:1406)."""
    return np.where(c.cov["bone_metastases"] > 0, dosimetry.bone_metastases_multiplier, 1.0)


def _liver_uptake(dosimetry, c) -> np.ndarray | float:  # noqa: ANN001, ARG001 - OrganDosimetry, Context
    """Microspheres: the normal perfused liver's share of the activity per kg (partition model, sim/partition.py)."""
    return 1.0 if c.partition is None else c.partition.liver_per_kg


def _lung_uptake(dosimetry, c) -> np.ndarray | float:  # noqa: ANN001, ARG001 - OrganDosimetry, Context
    """Microspheres: the lung shunt fraction per kg of lung (partition model, sim/partition.py)."""
    return 1.0 if c.partition is None else c.partition.lung_per_kg


@dataclass(frozen=True)
class Organ:
    """An organ at risk. ``uptake(dosimetry, context)`` multiplies its Gy/GBq (besides the inter-patient
    log-normal effect and the agent's tumour sink, which apply to every organ)."""

    name: str
    label: str
    required: bool  # every agent must give its dosimetry, and it is on every scenario's organ axis
    uptake: Callable[..., np.ndarray] | None = None


ORGANS: tuple[Organ, ...] = (
    Organ("kidney", "Kidneys", True, _kidney_uptake),
    Organ("marrow", "Red marrow", True, _marrow_uptake),
    Organ("salivary", "Salivary glands", False),  # parotid and submandibular: 177Lu-PSMA's most exposed organ
    Organ("lacrimal", "Lacrimal glands", False),  # dry eye after 177Lu-PSMA
    Organ("liver", "Normal perfused liver", False, _liver_uptake),  # 90Y SIRT: liver decompensation
    Organ("lung", "Lungs", False, _lung_uptake),  # 90Y SIRT: radiation pneumonitis
)


@dataclass(frozen=True)
class BloodLine:
    """A blood line of the marrow model. ``kinetics(marrow_config)`` gives its ``(mtt_days, lifespan_days,
    feedback_gamma, alpha_ratio)``, or None when the scenario does not model it; ``withhold_rule`` and
    ``reduce_rule`` are the ``dose_modification`` fields that read its current and worst grade (None: no rule)."""

    name: str
    adverse_event: str  # CTCAE term of its decrease; the summary's grade3plus_<adverse_event>_rate
    units: str  # of its count, baseline covariate and thresholds
    baseline_covariate: str
    grade_below: tuple[float, float, float, float]
    kinetics: Callable[..., tuple[float, float, float, float] | None]
    withhold_rule: str | None
    reduce_rule: str | None


def _kinetics(table) -> tuple[float, float, float, float, float] | None:  # noqa: ANN001 - BloodLineKinetics
    """A line's ``(mtt_days, lifespan_days, feedback_gamma, alpha_ratio, reserve_ratio)`` from its config table."""
    if table is None:
        return None
    return table.mtt_days, table.lifespan_days, table.feedback_gamma, table.alpha_ratio, table.reserve_ratio


BLOOD_LINES: tuple[BloodLine, ...] = (
    BloodLine("platelets", "thrombocytopenia", "1e9/L", "platelets_1e9_per_l", PLATELET_GRADE_BELOW,
              lambda m: (m.mtt_days, m.platelet_lifespan_days, m.feedback_gamma, 1.0, 1.0),
              "withhold_platelet_grade", "reduce_after_platelet_grade"),
    BloodLine("neutrophils", "neutropenia", "1e9/L", "neutrophils_1e9_per_l", NEUTROPHIL_GRADE_BELOW,
              lambda m: _kinetics(m.neutrophils),
              "withhold_neutrophil_grade", "reduce_after_neutrophil_grade"),
    # optional (docs/model.md 4.7); no dose-modification rules: the Lutathera and Pluvicto labels name none for it
    BloodLine("lymphocytes", "lymphopenia", "1e9/L", "lymphocytes_1e9_per_l", LYMPHOCYTE_GRADE_BELOW,
              lambda m: _kinetics(m.lymphocytes),
              None, None),
    # optional (docs/model.md 4.8): red cells as haemoglobin; no rule (the labels withhold for none)
    BloodLine("haemoglobin", "anaemia", "g/dL", "haemoglobin_g_dl", HAEMOGLOBIN_GRADE_BELOW,
              lambda m: _kinetics(m.haemoglobin),
              None, None),
)
FATAL_LINE = "platelets"  # a fatal grade-4 nadir is tied to thrombocytopenia (docs/model.md 4.1)
