"""Scenario configuration: pydantic models, TOML loading, dotted-path overrides and clear errors.

Units are in the field names (``_gbq``, ``_gy``, ``_h``, ``_days``, ``_weeks``, ``_months``). Every
model forbids unknown keys and non-finite numbers. The numbers themselves, with their sources, live
in ``configs/*.toml``; the defaults here are only the ones that are conventions (RECIST thresholds,
month length) or that a scenario rarely changes, and they cite their source in ``description``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim import files
from sim.files import ConfigError
from sim.units import DAYS_PER_MONTH, DAYS_PER_WEEK

MAX_TEXT = 200  # characters of a name or label: a title, not a document
MAX_SCANS = 2000  # tumour assessments per patient: weekly imaging for 38 years
MAX_RECHECKS = 1000  # re-checks of one withheld cycle (max_delay_weeks / recheck_weeks)


def printable(value: str) -> str:
    """``value`` unchanged, or a ValueError when it holds a control character (NUL, a terminal escape, a line
    break): names and labels end up in HDF5 attributes, terminals and Markdown, where those break or deceive."""
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad):04X}; use printable text")
    return value


class Strict(BaseModel):
    """Every config table: unknown keys refused, numbers finite, no coercion (``"300"``, ``true``, ``4.0`` are not
    integers; ``"7.4"`` and ``true`` are not numbers), and text printable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    @field_validator("*")
    @classmethod
    def _printable_text(cls, value: Any) -> Any:
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                printable(item)
            elif isinstance(item, dict):
                stack += [*item.keys(), *item.values()]
            elif isinstance(item, list | tuple):
                stack += list(item)
        return value


Text = Annotated[str, Field(max_length=MAX_TEXT)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]

# Upper (and some lower) bounds of every number. A value beyond them is a typo, not a scenario: each is a generous
# physical, physiological or clinical limit, named beside it, and together they keep every derived quantity (doses,
# hazards, times, scan and event counts) finite and the run's memory and time bounded.
Months = Annotated[float, Field(gt=0, le=600)]  # 50 years: longer than any trial's accrual, follow-up or latency
NonNegMonths = Annotated[float, Field(ge=0, le=600)]
Weeks = Annotated[float, Field(gt=0, le=2600)]  # 50 years
Days = Annotated[float, Field(gt=0, le=3650)]  # 10 years: any blood-cell transit time, lifespan or clearance
ScanInterval = Annotated[float, Field(ge=0.1, le=520)]  # weeks (0.1: 17 h): at most daily scans, at least a decade
IntervalWeeks = Annotated[float, Field(ge=0.1, le=520)]  # weeks between cycles: at most one a day
RecheckWeeks = Annotated[float, Field(ge=0.1, le=52)]  # blood counts re-checked at most daily, at least yearly
DelayWeeks = Annotated[float, Field(ge=0, le=104)]  # a cycle withheld for two years is not resumed
RatePerYear = Annotated[float, Field(ge=0, le=120)]  # 120/year: median time 3 days, beyond any trial's
PositiveRatePerYear = Annotated[float, Field(gt=0, le=120)]
RatePerMonth = Annotated[float, Field(ge=0, le=10)]  # 10/month: median survival 2 days
PositiveRatePerMonth = Annotated[float, Field(gt=0, le=10)]
LogSlopePerYear = Annotated[float, Field(ge=0, le=1)]  # Gompertz slope; human mortality's is ~0.09/year
SignedLogSlopePerYear = Annotated[float, Field(ge=-0.1, le=0.1)]  # radiosensitivity by age: 33-fold over 35 years
ActivityGBq = Annotated[float, Field(gt=0, le=100)]  # the largest therapeutic administrations are ~30 GBq
NonNegActivityGBq = Annotated[float, Field(ge=0, le=100)]
GyPerGBq = Annotated[float, Field(gt=0, le=1e4)]  # alpha emitters reach ~1e3 Gy/GBq in small organs
NonNegGyPerGBq = Annotated[float, Field(ge=0, le=1e4)]  # 0: the agent does not reach the organ (microspheres)
DoseGy = Annotated[float, Field(gt=0, le=1e4)]  # limits and targets; tumour doses reach a few hundred Gy
NonNegDoseGy = Annotated[float, Field(ge=0, le=1e4)]
AlphaBetaGy = Annotated[float, Field(gt=0, le=1000)]  # measured alpha/beta are 1-20 Gy; 1000 = no sparing
HalfLifeH = Annotated[float, Field(gt=0, le=2000)]  # longest-lived therapeutic nuclide: 125I, 1430 h
RepairHalfTimeH = Annotated[float, Field(gt=0, le=1000)]  # sublethal repair takes hours, not months
PerGy = Annotated[float, Field(ge=0, le=100)]  # per Gy: 100 kills all but e^-100 at 1 Gy
SigmaLn = Annotated[float, Field(ge=0, le=5)]  # sd of a log: 5 is a 150-fold spread
CV = Annotated[float, Field(ge=0, le=5)]  # coefficient of variation: 500 %
Multiplier = Annotated[float, Field(ge=1, le=100)]  # one factor changing a dose or risk 100-fold is beyond data
PositiveMultiplier = Annotated[float, Field(gt=0, le=100)]
PositiveMultiplierOrZero = Annotated[float, Field(ge=0, le=100)]
Exponent = Annotated[float, Field(ge=0, le=10)]  # power laws of volume, eGFR, growth, burden
VolumeMl = Annotated[float, Field(gt=0, le=1e5)]  # mL: more than a whole body
EgfrMlMin = Annotated[float, Field(gt=0, le=300)]  # mL/min: hyperfiltration peaks near 180
EgfrRate = Annotated[float, Field(ge=0, le=300)]  # mL/min lost per year: all of it in one year
Hours = Annotated[float, Field(ge=0, le=1000)]  # staff hours per cycle
Money = Annotated[float, Field(ge=0, le=1e9)]  # a unit cost of a billion is beyond any price
Covariate = Annotated[float, Field(ge=-1e6, le=1e6)]  # a covariate in its unit (age, mL, 1e9/L): |value| <= 1e6
CovariateScale = Annotated[float, Field(ge=0, le=1e6)]
PositiveCovariate = Annotated[float, Field(gt=0, le=1e6)]


# --------------------------------------------------------------------------------------------------
# Trial


class ImagingPhase(Strict):
    """Tumour imaging every ``every_weeks`` until ``until_week`` (open-ended when omitted)."""

    every_weeks: ScanInterval
    until_week: Weeks | None = None


class Trial(Strict):
    name: Text = Field(min_length=1, description="Scenario name shown in summaries and file attributes.")
    patients: int = Field(ge=1, le=100_000_000, description="Virtual patients; every arm treats the same ones.")
    seed: int = Field(ge=0, le=2**63 - 1, description="Seed of all random streams.")
    accrual_months: NonNegMonths = Field(description="Uniform accrual period; entry time ~ U(0, accrual).")
    follow_up_months: Months = Field(description="Follow-up after the last patient enters (data cut-off).")
    dropout_per_year: RatePerYear = Field(0.0, description="Exponential loss-to-follow-up rate (censoring).")
    imaging: list[ImagingPhase] = Field(min_length=1, description="Tumour assessment schedule from day 0.")
    reference_arm: str | None = Field(None, description="Comparator of the summary's hazard ratios (default: the "
                                      "first control arm, else the last arm).")
    rmst_horizon_months: Months = Field(24.0, description="Horizon of restricted mean survival time.")
    pfs_name: Literal["PFS", "rPFS"] = Field(
        "PFS", description="The trial's name for its progression end point in tables and figures (rPFS: "
        "radiographic, as VISION).")
    randomised_patients: int | None = Field(None, ge=2, le=2_000_000, description="Patients randomised in the "
                                            "published trial, both arms: the default size of rptsim trial.")
    allocation: tuple[Annotated[int, Field(ge=1, le=100)], Annotated[int, Field(ge=1, le=100)]] = Field(
        (1, 1), strict=False, description="Randomisation ratio experimental:reference of the published trial "
        "(rptsim trial's default); 1:1 unless the trial says otherwise.")  # not strict: TOML arrays are lists

    @field_validator("imaging")
    @classmethod
    def _phases_ordered(cls, phases: list[ImagingPhase]) -> list[ImagingPhase]:
        ends = [p.until_week for p in phases]
        if any(e is None for e in ends[:-1]):
            raise ValueError("only the last imaging phase may omit until_week")
        finite = [e for e in ends if e is not None]
        if finite != sorted(finite) or len(set(finite)) != len(finite):
            raise ValueError(f"imaging until_week values must increase, got {finite}")
        return phases

    @model_validator(mode="after")
    def _scans_bounded(self) -> Trial:
        weeks = (self.accrual_months + self.follow_up_months) * DAYS_PER_MONTH / DAYS_PER_WEEK
        scans, start = 0.0, 0.0
        for phase in self.imaging:
            end = min(weeks, phase.until_week) if phase.until_week is not None else weeks
            scans += max(0.0, end - start) / phase.every_weeks
            start = max(start, end)
        if scans > MAX_SCANS:
            raise ValueError(f"imaging: {scans:.3g} tumour assessments per patient over accrual_months + "
                             f"follow_up_months: at most {MAX_SCANS}; image less often or follow up for less time")
        return self


# --------------------------------------------------------------------------------------------------
# Cohort


class Bounded(Strict):
    low: Covariate | None = None
    high: Covariate | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Bounded:
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low = {self.low} must be < high = {self.high}")
        return self


class Normal(Bounded):
    """Normal marginal, truncated to [low, high] by inverse-CDF sampling."""

    dist: Literal["normal"]
    mean: Covariate
    sd: CovariateScale


class LogNormal(Bounded):
    """Log-normal marginal: median and sigma of log, truncated to [low, high]."""

    dist: Literal["lognormal"]
    median: PositiveCovariate
    sigma_ln: SigmaLn


class Bernoulli(Strict):
    dist: Literal["bernoulli"]
    p: Probability


class Beta(Strict):
    """Beta marginal given by mean and sd (method of moments)."""

    dist: Literal["beta"]
    mean: Annotated[float, Field(gt=0, lt=1)]
    sd: Annotated[float, Field(gt=0, le=1)]  # the check below is tighter: sd < sqrt(mean (1 - mean)) <= 0.5

    @model_validator(mode="after")
    def _feasible(self) -> Beta:
        limit = math.sqrt(self.mean * (1 - self.mean))
        if self.sd >= limit:
            raise ValueError(f"sd = {self.sd} must be < sqrt(mean*(1-mean)) = {limit:.4g}")
        return self


Marginal = Annotated[Normal | LogNormal | Bernoulli | Beta, Field(discriminator="dist")]


class Uniform(Strict):
    """Uniform on [low, high] (a prior; covariates use the marginals above)."""

    dist: Literal["uniform"]
    low: Covariate
    high: Covariate

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"low = {self.low} must be < high = {self.high}")
        return self


Prior = Annotated[Normal | LogNormal | Beta | Uniform, Field(discriminator="dist")]


class UncertainParameter(Strict):
    """A config number whose value is uncertain: its prior and where the prior comes from."""

    path: str = Field(min_length=1, description="Dotted config path of a number (arms by name).")
    name: Text | None = Field(None, description="Short name in outputs (default: the path's last two parts).")
    prior: Prior = Field(description="normal / lognormal (with optional low, high), beta (mean, sd) or uniform.")
    source: str = Field(min_length=1, description="Citation or literature range behind the prior, or Assumption.")

    @property
    def label(self) -> str:
        return self.name or ".".join(self.path.split(".")[-2:])


class Uncertainty(Strict):
    """Parameters whose uncertainty ``rptsim uncertainty``, ``sensitivity`` and ``calibrate --posterior`` explore."""

    parameters: list[UncertainParameter] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Uncertainty:
        for what, values in (("path", [p.path for p in self.parameters]),
                             ("name", [p.label for p in self.parameters])):
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"uncertain parameters with the same {what}: {dup}")
        return self


def _constant(value: float, description: str) -> Any:  # noqa: ANN401 - a pydantic FieldInfo
    """An optional covariate's field: by default the constant ``value`` (a normal with sd 0)."""
    return Field(Normal(dist="normal", mean=value, sd=0.0), description=description)


class Covariates(Strict):
    """Marginal distribution of each patient covariate (linked by a Gaussian copula)."""

    age_years: Marginal
    egfr_ml_min: Marginal
    hypertension: Marginal
    diabetes: Marginal
    platelets_1e9_per_l: Marginal
    prior_chemotherapy: Marginal
    bone_metastases: Marginal
    tumour_volume_ml: Marginal
    stroma_fraction: Marginal
    receptor_expression: Marginal
    doubling_time_months: Marginal
    new_lesion_rate_per_month: Marginal
    receptor_negative_fraction: Marginal
    tumour_alpha_per_gy: Marginal
    neutrophils_1e9_per_l: Marginal
    lesion_count: Marginal = _constant(
        1.0, "Lesions per patient (rounded, 1 to lesions.max_lesions); default: one lesion holding the tumour.")
    lymphocytes_1e9_per_l: Marginal = _constant(
        1.5, "Baseline lymphocyte count; read only when [marrow.lymphocytes] is given, which requires it.")
    haemoglobin_g_dl: Marginal = _constant(
        13.0, "Baseline haemoglobin (g/dL); read only when [marrow.haemoglobin] is given, which requires it.")
    psa_ng_ml: Marginal = _constant(
        10.0, "Baseline serum PSA (ng/mL); read only when [psa] is given, which requires it.")
    lung_shunt_fraction: Marginal = _constant(
        0.0, "Share of intra-arterial microspheres shunted to the lungs; read only by a partition-model agent.")
    perfused_liver_ml: Marginal = _constant(
        1000.0, "Normal (non-tumoural) liver volume in the perfused territory (mL); read only by a partition-model "
                "agent.")
    child_pugh_b: Marginal = _constant(
        0.0, "Child-Pugh class B (1) rather than A (0): cirrhosis with impaired liver function; read by "
             "natural_history.child_pugh_b_death_multiplier.")
    # last: adding a covariate at the end keeps every earlier draw


COVARIATE_NAMES: tuple[str, ...] = tuple(Covariates.model_fields)


class Correlation(Strict):
    """Correlation of the latent normals of two covariates (Gaussian copula)."""

    a: str
    b: str
    rho: Annotated[float, Field(gt=-1, lt=1)]

    @model_validator(mode="after")
    def _known(self) -> Correlation:
        for name in (self.a, self.b):
            if name not in COVARIATE_NAMES:
                raise ValueError(f"unknown covariate {name!r} (allowed: {', '.join(COVARIATE_NAMES)})")
        if self.a == self.b:
            raise ValueError(f"a covariate cannot be correlated with itself ({self.a!r})")
        return self


class Cohort(Strict):
    covariates: Covariates
    correlations: list[Correlation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _positive_definite(self) -> Cohort:
        seen = set()
        for c in self.correlations:
            pair = frozenset((c.a, c.b))
            if pair in seen:
                raise ValueError(f"correlation {c.a}-{c.b} given twice")
            seen.add(pair)
        if np.linalg.eigvalsh(self.correlation_matrix()).min() <= 1e-10:
            raise ValueError("the correlation matrix is not positive definite; reduce some |rho|")
        return self

    def correlation_matrix(self) -> np.ndarray:
        r = np.eye(len(COVARIATE_NAMES))
        for c in self.correlations:
            i, j = COVARIATE_NAMES.index(c.a), COVARIATE_NAMES.index(c.b)
            r[i, j] = r[j, i] = c.rho
        return r


# --------------------------------------------------------------------------------------------------
# Dosimetry (per agent) and radiobiology


class OrganDosimetry(Strict):
    """Absorbed dose per activity = median x inter-patient lognormal x cycle-to-cycle lognormal."""

    gy_per_gbq_median: NonNegGyPerGBq = Field(
        description="Median Gy/GBq (0: the agent does not reach the organ); for a partition-model agent, the energy "
                    "absorbed per mass, Gy kg/GBq, that the partition model shares (docs/model.md 5.6).")
    inter_patient_sigma_ln: SigmaLn
    intra_patient_cv: CV = Field(description="Cycle-to-cycle variation of Gy/GBq (CV).")
    effective_half_life_h_median: HalfLifeH
    effective_half_life_sigma_ln: SigmaLn = 0.0


class KidneyDosimetry(OrganDosimetry):
    risk_factor_multiplier: Multiplier = Field(
        description="Gy/GBq multiplier with hypertension or diabetes.")
    egfr_exponent: Exponent = Field(description="Gy/GBq x (eGFR/90)^-exponent: lower function, higher dose.")


class MarrowDosimetry(OrganDosimetry):
    bone_metastases_multiplier: Multiplier


class TumourDosimetry(OrganDosimetry):
    dose_decline_per_cycle: Annotated[float, Field(ge=0, lt=1)] = Field(
        description="Fractional fall of tumour Gy/GBq per cycle as the lesion responds.")


class Partition(Strict):
    """Intra-arterial microspheres (90Y SIRT), shared by the partition model (docs/model.md 5.6): the lungs take the
    lung shunt fraction, the perfused tumour and normal liver the rest in proportion to mass x tumour-to-normal
    ratio (the covariate ``receptor_expression`` is the patient's T/N)."""

    lung_mass_kg: Annotated[float, Field(gt=0, le=10)] = Field(
        1.0, description="Lung mass of the lung-dose formula (1 kg: the usual assumption, Ho S et al. EJNMMI 1997).")
    tissue_density_g_ml: Annotated[float, Field(gt=0, le=3)] = Field(
        1.03, description="Liver and tumour density turning CT volumes into masses.")


class Agent(Strict):
    """Dosimetry of one radiopharmaceutical."""

    label: Text
    kidney: KidneyDosimetry
    marrow: MarrowDosimetry
    tumour: TumourDosimetry
    salivary: OrganDosimetry | None = Field(None, description="Salivary glands (parotid and submandibular).")
    lacrimal: OrganDosimetry | None = Field(None, description="Lacrimal glands.")
    liver: OrganDosimetry | None = Field(None, description="Normal (non-tumoural) perfused liver.")
    lung: OrganDosimetry | None = Field(None, description="Lungs.")
    partition: Partition | None = Field(
        None, description="Intra-arterial microspheres: liver, lung and tumour doses from the partition model.")
    sink_exponent: Exponent = Field(description="Organ Gy/GBq x (tumour volume / reference)^-exponent.")
    sink_reference_volume_ml: VolumeMl

    def organ_dosimetry(self) -> dict[str, OrganDosimetry]:
        """The organs at risk this agent gives dosimetry for: every organ table but the tumour's."""
        return {name: value for name, value in self if isinstance(value, OrganDosimetry) and name != "tumour"}


class DosimetryMethod(Strict):
    """A dosimetry protocol: its error per organ and what it costs per measured cycle."""

    label: Text
    kidney_cv: CV = Field(description="CV of the measured kidney dose (true x lognormal).")
    marrow_cv: CV
    tumour_cv: CV
    salivary_cv: CV | None = Field(None, description="Needed when an arm measures an agent's salivary dose.")
    lacrimal_cv: CV | None = Field(None, description="Needed when an arm measures an agent's lacrimal dose.")
    liver_cv: CV | None = Field(None, description="Needed when an arm measures or plans an agent's liver dose.")
    lung_cv: CV | None = Field(None, description="Needed when an arm measures or plans an agent's lung dose.")
    systematic_fraction: Probability = Field(
        0.0, description="Share of each CV's log-variance that is systematic: the same error in every cycle of a "
                         "patient (calibration, S-values and organ mass, segmentation); the rest is per cycle.")
    half_life_cv: CV = Field(0.0, description="CV of the measured effective half-life behind the known BEDs.")
    population_half_life: bool = Field(
        False, description="Single-time-point protocol: the known BEDs use the population median half-life.")
    sessions_per_cycle: int = Field(ge=0, le=20, description="SPECT/CT (or planar) acquisitions per cycle.")
    physicist_hours_per_cycle: Hours
    extra_visits_per_cycle: int = Field(ge=0, le=20, description="Imaging visits besides the treatment day.")


class Costs(Strict):
    """Unit costs for the resource-use summary."""

    currency: str = Field("EUR", max_length=16)
    per_gbq: Money
    per_administration: Money
    per_imaging_session: Money
    per_physicist_hour: Money


class Tissue(Strict):
    alpha_beta_gy: AlphaBetaGy
    repair_half_time_h: RepairHalfTimeH


class Radiobiology(Strict):
    kidney: Tissue
    marrow: Tissue
    tumour: Tissue
    salivary: Tissue | None = None  # needed when an agent gives salivary dosimetry
    lacrimal: Tissue | None = None  # needed when an agent gives lacrimal dosimetry
    liver: Tissue | None = None  # needed when an agent gives liver dosimetry
    lung: Tissue | None = None  # needed when an agent gives lung dosimetry


class OrganToxicity(Strict):
    """A late toxicity of an organ at risk, graded 0-2 from the organ's cumulative BED by LKB (docs/model.md 4.9)."""

    adverse_event: str = Field(pattern=r"^[a-z][a-z_]*$", max_length=40,
                               description="Its name in the summary keys (grade2plus_<adverse_event>_rate).")
    bed50_gy: DoseGy = Field(description="BED with a 50 % probability of grade >= 1.")
    lkb_m: Annotated[float, Field(gt=0, le=10)]
    grade2_bed50_ratio: Annotated[float, Field(ge=1, le=10)] = Field(
        description="BED50 of grade >= 2 relative to grade >= 1's (same slope).")
    other_cause_probability: Probability = Field(
        0.0, description="Grade 1 of other causes, in every arm (e.g. the control arm's rate).")


class Tumour(Strict):
    """Tumour kinetics not carried by covariates."""

    dead_cell_clearance_half_life_days: Days
    new_lesion_burden_exponent: Exponent = Field(
        description="New-lesion hazard x (viable burden / baseline)^exponent; 0 = independent of burden.")
    response_confirmation: bool = Field(
        False, description="CR/PR must be confirmed at the next scan (RECIST 1.1, Eisenhauer 2009).")


class Psa(Strict):
    """Serum PSA secreted by the viable tumour and cleared at a first-order rate (docs/model.md 3.6); PCWG3 end
    points."""

    half_life_days: Annotated[float, Field(gt=0, le=60)] = Field(description="Serum PSA clearance half-life.")
    negative_secretion_ratio: Annotated[float, Field(ge=0, le=10)] = Field(
        description="PSA secretion of receptor-negative cells per mL relative to receptor-positive ones.")
    dead_secretion_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        description="PSA secretion of lethally irradiated cells, until they are cleared, relative to viable ones.")


class Lesions(Strict):
    """The tumour as lesions (docs/model.md 3): how a patient's tumour volume is shared among its lesions, how their
    uptake, growth and receptor status vary within the patient, cross-fire to receptor-negative cells, remodelling of
    stroma, and the RECIST 1.1 reading (Eisenhauer EA et al. Eur J Cancer 2009;45:228). Absent from a config: one
    lesion holding the whole tumour, constant stroma, no cross-fire (``SINGLE_LESION``)."""

    max_lesions: int = Field(ge=1, le=30, description="Lesions modelled per patient (the lesion axis); a patient with "
                                                      "more has the tumour volume shared among this many.")
    volume_sigma_ln: SigmaLn = Field(description="Log-sd of the lesions' volume weights (share = w_j / sum w).")
    uptake_sigma_ln: SigmaLn = Field(description="Within-patient log-sd of lesion Gy/GBq around the patient's value.")
    growth_sigma_ln: SigmaLn = Field(description="Within-patient log-sd of lesion growth rates.")
    radiosensitivity_sigma_ln: SigmaLn = Field(description="Within-patient log-sd of lesion radiosensitivity (alpha).")
    discordant_patient_fraction: Probability = Field(
        description="Patients with receptor-negative (e.g. FDG-positive/SSTR-negative) lesions.")
    discordant_lesion_fraction: Probability = Field(
        description="In such a patient, the probability that a lesion is receptor-negative.")
    negative_lesion_uptake_ratio: Probability = Field(
        description="Gy/GBq of a receptor-negative lesion relative to a positive one (non-specific uptake).")
    crossfire_fraction: Probability = Field(
        description="Absorbed dose of receptor-negative cells within a receptor-positive lesion, relative to the "
                    "lesion's mean dose (beta cross-fire).")
    stroma_half_life_days: Days | None = Field(
        description="Half-life of stroma's relaxation towards its baseline ratio to the viable volume; None: constant.")
    bone_lesion_fraction: Probability = Field(
        description="In a patient with bone metastases, the probability that a lesion is a bone lesion "
                    "(non-measurable, RECIST 1.1).")
    target_lesions: int = Field(5, ge=1, le=10, description="Most target lesions (RECIST 1.1: 5).")
    measurable_diameter_mm: Annotated[float, Field(gt=0, le=100)] = Field(
        10.0, description="Smallest measurable lesion diameter (RECIST 1.1: 10 mm on CT).")
    disappeared_diameter_mm: Annotated[float, Field(ge=0, le=100)] = Field(
        5.0, description="A lesion smaller than this is read as disappeared (RECIST 1.1: 5 mm, the CT slice).")
    progression_absolute_mm: Annotated[float, Field(ge=0, le=100)] = Field(
        5.0, description="Target-sum progression also needs this absolute increase (RECIST 1.1: 5 mm).")
    non_target_progression_ratio: Annotated[float, Field(gt=1, le=100)] = Field(
        2.0, description="Unequivocal non-target progression: non-target volume x this over its nadir (Assumption).")


SINGLE_LESION = Lesions(max_lesions=1, volume_sigma_ln=0.0, uptake_sigma_ln=0.0, growth_sigma_ln=0.0,
                        radiosensitivity_sigma_ln=0.0,
                        discordant_patient_fraction=0.0, discordant_lesion_fraction=0.0,
                        negative_lesion_uptake_ratio=1.0, crossfire_fraction=0.0, stroma_half_life_days=None,
                        bone_lesion_fraction=0.0)


class Resection(Strict):
    """Surgery after downstaging (docs/model.md 5.6), in every treated arm: at a scan without progression within
    ``window_months`` of the start of treatment, a patient whose whole disease lies in the treated territory (no
    receptor-negative lesion, no new lesion) and whose index lesion's viable volume is at most ``viable_ratio`` of
    baseline is resected with probability ``probability`` (one decision per patient). Surgery leaves at most
    ``residual_ml`` of every lesion's viable cells; a recurrence is any lesion visible again, or a new lesion."""

    probability: Probability = Field(description="Share of eligible patients who are resected (fitness, surgeons).")
    viable_ratio: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5**1.5, description="The index lesion's viable volume / baseline at or below which it counts as downstaged "
                              "(default: an EASL response).")
    residual_ml: Annotated[float, Field(gt=0, le=1)] = Field(
        description="Viable tumour surgery leaves of each lesion (microscopic residual disease, below the "
                    "lesions.disappeared_diameter_mm of a visible lesion), from which recurrence grows.")
    window_months: Months = Field(description="Resection only at scans up to this long after the start of treatment.")


class NaturalHistory(Strict):
    background_hazard_at_65_per_year: PositiveRatePerYear = Field(
        description="Gompertz background mortality at age 65.")
    background_hazard_log_slope_per_year: LogSlopePerYear = Field(
        description="Gompertz slope: hazard x exp(slope x (age - 65)).")
    pre_progression_death_per_month: RatePerMonth
    child_pugh_b_death_multiplier: Multiplier = Field(
        1.0, description="Death-before-progression hazard x this for a Child-Pugh B patient (cirrhosis mortality).")
    post_progression_death_per_month: PositiveRatePerMonth = Field(
        description="Median patient's hazard of death after progression.")
    post_progression_growth_exponent: Exponent = Field(
        description="Post-progression hazard x (growth rate / cohort median growth rate)^exponent.")


class BloodLineKinetics(Strict):
    """The marrow model of a blood line besides the platelets (neutrophils, lymphocytes, haemoglobin; docs/model.md
    4.7, 4.8)."""

    mtt_days: Days
    lifespan_days: Days = Field(description="Mean residence time of the circulating compartment.")
    feedback_gamma: Annotated[float, Field(ge=0, le=1)]
    alpha_ratio: PositiveMultiplierOrZero = Field(
        description="Progenitor radiosensitivity relative to the platelet line.")
    reserve_ratio: PositiveMultiplierOrZero = Field(
        1.0, description="Permanent set-point loss per Gy relative to marrow.reserve_loss_per_gy.")


class Marrow(Strict):
    """Platelet model (Friberg 2002 form, ``sim/kernels/marrow.py``) and marrow radiosensitivity."""

    mtt_days: Days = Field(description="Mean transit time, proliferating to circulating.")
    platelet_lifespan_days: Days = Field(description="Mean residence time of circulating platelets.")
    feedback_gamma: Annotated[float, Field(ge=0, le=1)]
    alpha_per_gy: PerGy = Field(description="Progenitor kill per Gy (median patient).")
    alpha_sigma_ln: SigmaLn
    prior_chemotherapy_multiplier: PositiveMultiplier
    bone_metastases_multiplier: PositiveMultiplier
    age_log_slope_per_year: SignedLogSlopePerYear = Field(description="alpha x exp(slope x (age - 65)).")
    reserve_loss_per_gy: PerGy = Field(description="Permanent set-point loss: x exp(-value x dose).")
    max_step_days: Annotated[float, Field(gt=0, le=2)] = Field(
        0.5, description="First trial step of each interval of the adaptive RK4 (docs/model.md 4.1).")
    window_after_last_cycle_days: Days = Field(description="Follow-up of the last cycle's nadir.")
    fatal_grade4_probability: Probability = Field(description="Death at a cycle's grade-4 nadir.")
    neutrophils: BloodLineKinetics
    lymphocytes: BloodLineKinetics | None = Field(
        None, description="Lymphocyte line (lymphopenia); omitted: not modelled (docs/model.md 4.7).")
    haemoglobin: BloodLineKinetics | None = Field(
        None, description="Red-cell line, in g/dL of haemoglobin (anaemia); omitted: not modelled (docs/model.md 4.8).")
    background_grade3_per_year: dict[str, Annotated[float, Field(ge=0, le=10)]] = Field(
        default_factory=dict, description="Per blood line (by name), the hazard of a grade >= 3 decrease of other "
        "causes (disease, bleeding, other treatment), in every arm, without bone metastases and before progression "
        "(docs/model.md 4.8).")
    background_bone_metastases_multiplier: Multiplier = Field(
        1.0, description="That hazard's multiplier with bone metastases (marrow infiltration).")
    background_after_progression_multiplier: Multiplier = Field(
        1.0, description="That hazard's multiplier after the first progression (progressive bone disease).")


class Kidney(Strict):
    """Background eGFR decline and acute renal events (every arm), radiation nephropathy (LKB on cumulative BED)
    and the radiation eGFR decline (docs/model.md 4.2)."""

    bed50_gy: DoseGy
    lkb_m: Annotated[float, Field(gt=0, le=10)]
    risk_factor_bed50_ratio: Annotated[float, Field(gt=0, le=1)] = Field(
        description="BED50 multiplier with hypertension or diabetes (1: no effect).")
    nephropathy_latency_months_median: Months
    nephropathy_latency_sigma_ln: SigmaLn
    nephropathy_egfr_loss_fraction: Probability
    background_decline_ml_min_per_year: EgfrRate = Field(
        description="Mean eGFR loss per year without hypertension or diabetes.")
    hypertension_decline_ml_min_per_year: EgfrRate = Field(description="Added mean loss with hypertension.")
    diabetes_decline_ml_min_per_year: EgfrRate = Field(description="Added mean loss with diabetes.")
    background_decline_sd_ml_min_per_year: EgfrRate = Field(
        description="Between-patient sd of the background loss (normal, floored at 0).")
    acute_renal_event_per_year: Annotated[float, Field(ge=0, le=10)] = Field(
        description="Hazard of a grade >= 3 renal event of any other cause (acute kidney injury) without risk "
                    "factors.")
    acute_renal_risk_factor_multiplier: Multiplier = Field(
        description="Acute-event hazard multiplier per risk factor (hypertension, diabetes).")
    radiation_decline_per_gy_per_year: PerGy = Field(
        description="Fraction of baseline eGFR lost per year per Gy of kidney BED (after the latency).")
    risk_factor_decline_multiplier: Multiplier
    subclinical_latency_months: NonNegMonths


class LateEffects(Strict):
    mds_aml_risk_per_gy: PerGy = Field(description="Probability 1 - exp(-value x marrow dose).")
    mds_aml_prior_chemotherapy_multiplier: PositiveMultiplier
    mds_aml_latency_months_median: Months
    mds_aml_latency_sigma_ln: SigmaLn
    mds_aml_death_per_month: PositiveRatePerMonth


# --------------------------------------------------------------------------------------------------
# Arms


class ArmBase(Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)
    label: Text = ""


class DoseModification(Strict):
    """Protocol rules applied at each cycle's due day (docs/model.md 4.5); omitted rules never trigger."""

    withhold_platelet_grade: int | None = Field(None, ge=1, le=4, description="Withhold while grade >= this.")
    withhold_neutrophil_grade: int | None = Field(None, ge=1, le=4)
    withhold_egfr_below_ml_min: EgfrMlMin | None = None
    withhold_egfr_drop_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    reduce_after_platelet_grade: int | None = Field(
        None, ge=1, le=4, description="Reduce when the worst grade since the last cycle reached this.")
    reduce_after_neutrophil_grade: int | None = Field(None, ge=1, le=4)
    reduce_after_withholding: bool = Field(False, description="A withheld cycle resumes at reduced activity.")
    reduction_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    restore_after_tolerated: bool = False
    max_reductions: int = Field(1, ge=0, le=50, description="A further reduction discontinues treatment.")
    recheck_weeks: RecheckWeeks = 1.0
    max_delay_weeks: DelayWeeks = Field(16.0, description="Discontinue when withheld longer than this.")

    @model_validator(mode="after")
    def _rechecks_bounded(self) -> DoseModification:
        if self.max_delay_weeks / self.recheck_weeks > MAX_RECHECKS:
            raise ValueError(f"max_delay_weeks / recheck_weeks = {self.max_delay_weeks / self.recheck_weeks:.3g} "
                             f"re-checks of a withheld cycle: at most {MAX_RECHECKS}")
        return self


class ArmDosimetry(Strict):
    """Dosimetry performed in an arm: which method, on how many cycles, and an error knob."""

    method: str
    measured_cycles: int | None = Field(None, ge=1, le=50, description="First N cycles measured (all if omitted).")
    error_scale: Annotated[float, Field(ge=0, le=100)] = Field(
        1.0, description="Multiplies the method's CVs (0 = exact dosimetry; 100: CVs far beyond any method's).")


class Retreatment(Strict):
    """Salvage re-treatment at progression (docs/model.md 5.4): a short second course, fixed activity, for a patient
    whose first course ended without a toxicity stop and whose first progression comes late enough."""

    min_pfs_months: Months = Field(description="Re-treat only at a first progression at least this late.")
    cycles: int = Field(ge=1, le=10)
    activity_gbq: ActivityGBq
    interval_weeks: IntervalWeeks
    kidney_bed_limit_gy: DoseGy | None = Field(
        None, description="A re-treatment cycle is given only if the known cumulative kidney BED of both courses "
        "stays within this (binds only where dosimetry measured the kidney).")
    only_after_pause: bool = Field(
        False, description="Re-challenge only a course that ended in a pause after an exceptional PSA response "
        "(arms.psa_pause), as practised: not one stopped at progression or after its last cycle.")


class PsaPause(Strict):
    """A pause after an exceptional response (docs/model.md 5.5): at a visit for a cycle, once ``after_cycle`` cycles
    were given, a PSA at or below ``psa_ratio`` of baseline ends the course; ``[arms.retreatment]`` re-challenges at
    progression."""

    after_cycle: int = Field(ge=1, le=49, description="Pause only once at least this many cycles were given.")
    psa_ratio: Annotated[float, Field(gt=0, lt=1)] = Field(
        description="Pause when the PSA at the visit is at most this fraction of the baseline PSA.")


class Planning(Strict):
    """The first administration's activity planned from predictive dosimetry before treatment (99mTc-MAA SPECT/CT
    for 90Y microspheres; docs/model.md 5.6): the activity that gives ``target_gy`` to the target by the prediction,
    lowered where a predicted organ dose would pass its limit. The prediction is the true patient Gy/GBq x the
    method's error (``<organ>_cv``, ``tumour_cv``); what the administration then delivers differs from it also by
    the agent's ``intra_patient_cv``."""

    method: str = Field(description="The dosimetry method (under [dosimetry_methods]) giving the prediction error.")
    target: Literal["perfused_volume", "index_lesion"] = Field(
        description="perfused_volume: mean dose over the perfused tumour and normal liver (single compartment, "
                    "as the standard of DOSISPHERE-01); index_lesion: the largest perfused lesion (multi-compartment, "
                    "partition model).")
    target_gy: DoseGy
    limits_gy: dict[str, DoseGy] = Field(
        default_factory=dict, description="Per organ at risk, the most predicted absorbed dose the plan may give.")


class FixedArm(ArmBase):
    """Fixed activity per cycle at a fixed interval; stops at progression. With ``planning``, the first cycle's
    activity is planned per patient (``activity_gbq`` is then the most it may be)."""

    regimen: Literal["fixed"]
    agent: str
    activity_gbq: ActivityGBq | list[ActivityGBq]
    cycles: int = Field(ge=1, le=50)
    interval_weeks: IntervalWeeks
    continue_after_cycle: int | None = Field(
        None, ge=1, description="Cycles after this one are given only while the tumour is smaller than at "
        "baseline (VISION: 4 cycles, then 2 more with evidence of response).")
    dose_modification: DoseModification = Field(default_factory=DoseModification)
    dosimetry: ArmDosimetry | None = None
    retreatment: Retreatment | None = None
    stop_at_psa_progression: bool = Field(
        False, description="No further cycle after a confirmed PCWG3 PSA progression (needs [psa]).")
    psa_pause: PsaPause | None = None
    planning: Planning | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FixedArm:
        if isinstance(self.activity_gbq, list) and len(self.activity_gbq) != self.cycles:
            raise ValueError(f"activity_gbq lists {len(self.activity_gbq)} activities but cycles = {self.cycles}")
        if self.continue_after_cycle is not None and self.continue_after_cycle >= self.cycles:
            raise ValueError(f"continue_after_cycle = {self.continue_after_cycle} must be < cycles = {self.cycles}")
        return self

    def activities(self) -> list[float]:
        a = self.activity_gbq
        return list(a) if isinstance(a, list) else [a] * self.cycles


class GuidedArm(ArmBase):
    """Dosimetry-guided regimen (docs/model.md section 5): the measured doses set the number of cycles or the
    activity of each."""

    regimen: Literal["guided"]
    agent: str
    rule: Literal["cycles_to_kidney_limit", "activity_to_kidney_target", "tumour_dose_target"]
    activity_gbq: ActivityGBq = Field(description="Activity per cycle (first cycle for activity_to_kidney_target).")
    cycles: int = Field(ge=1, le=50, description="Maximum (or, for activity_to_kidney_target, induction) cycles.")
    interval_weeks: IntervalWeeks
    kidney_bed_limit_gy: DoseGy | None = None
    kidney_bed_limit_risk_factor_gy: DoseGy | None = Field(
        None, description="Limit with hypertension or diabetes (defaults to kidney_bed_limit_gy).")
    marrow_limit_gy: DoseGy = Field(description="Cumulative measured marrow absorbed dose limit.")
    target_gy: DoseGy | None = Field(None, description="Kidney target (activity_to_kidney_target) or tumour "
                                            "absorbed-dose target (tumour_dose_target).")
    target_quantity: Literal["bed", "dose"] = "bed"
    min_activity_gbq: NonNegActivityGBq = 0.0
    max_activity_gbq: ActivityGBq | None = None
    reduce_last_cycle_to_limit: bool = False
    continue_after_cycle: int | None = Field(None, ge=1)
    dose_modification: DoseModification = Field(default_factory=DoseModification)
    dosimetry: ArmDosimetry
    retreatment: Retreatment | None = None
    stop_at_psa_progression: bool = Field(
        False, description="No further cycle after a confirmed PCWG3 PSA progression (needs [psa]).")
    psa_pause: PsaPause | None = None

    @model_validator(mode="after")
    def _rule_fields(self) -> GuidedArm:
        needs = {"cycles_to_kidney_limit": ("kidney_bed_limit_gy",), "activity_to_kidney_target": ("target_gy",),
                 "tumour_dose_target": ("target_gy", "kidney_bed_limit_gy")}[self.rule]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"rule {self.rule!r} needs {', '.join(missing)}")
        if self.max_activity_gbq is not None and self.max_activity_gbq < self.min_activity_gbq:
            raise ValueError(f"max_activity_gbq = {self.max_activity_gbq} must be >= min_activity_gbq = "
                             f"{self.min_activity_gbq}")
        if self.continue_after_cycle is not None and self.continue_after_cycle >= self.cycles:
            raise ValueError(f"continue_after_cycle = {self.continue_after_cycle} must be < cycles = {self.cycles}")
        return self

    def kidney_limits(self) -> tuple[float, float]:
        """(limit without, with kidney risk factors), infinite when the rule has none."""
        lim = self.kidney_bed_limit_gy if self.kidney_bed_limit_gy is not None else math.inf
        rf = self.kidney_bed_limit_risk_factor_gy
        return lim, (rf if rf is not None else lim)


class ControlArm(ArmBase):
    """No radiopharmaceutical (standard of care as encoded in the natural history)."""

    regimen: Literal["control"]


Arm = Annotated[FixedArm | GuidedArm | ControlArm, Field(discriminator="regimen")]


# --------------------------------------------------------------------------------------------------
# Root


# Progenitor D0 ~1 Gy (alpha ~1/Gy; Till JE, McCulloch EA. Radiat Res 1961;14:213): 25/Gy for the most sensitive
# patient leaves room for every risk multiplier and prior draw while keeping the marrow integrator's steps sane.
MAX_MARROW_ALPHA_PER_GY = 25.0


class Config(Strict):
    trial: Trial
    cohort: Cohort
    agents: dict[str, Agent] = Field(default_factory=dict)
    radiobiology: Radiobiology
    tumour: Tumour
    lesions: Lesions = SINGLE_LESION
    psa: Psa | None = None
    resection: Resection | None = Field(None, description="Surgery after downstaging (SIRT); omitted: none.")
    organ_toxicity: dict[str, OrganToxicity] = Field(
        default_factory=dict, description="Per optional organ at risk (salivary), its late toxicity.")
    natural_history: NaturalHistory
    marrow: Marrow
    kidney: Kidney
    late_effects: LateEffects
    dosimetry_methods: dict[str, DosimetryMethod] = Field(default_factory=dict)
    costs: Costs | None = None
    arms: list[Arm] = Field(min_length=1)
    uncertainty: Uncertainty | None = None

    @model_validator(mode="after")
    def _arms_consistent(self) -> Config:
        names = [a.name for a in self.arms]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"arm names must be unique, repeated: {sorted(dup)}")
        if self.trial.reference_arm is not None and self.trial.reference_arm not in names:
            raise ValueError(f"trial.reference_arm = {self.trial.reference_arm!r} is not an arm (arms: {names})")
        for arm in self.arms:
            agent = getattr(arm, "agent", None)
            if agent is not None and agent not in self.agents:
                raise ValueError(f"arm {arm.name!r} uses agent {agent!r}, not defined under [agents] "
                                 f"(defined: {sorted(self.agents) or 'none'})")
            dosimetry = getattr(arm, "dosimetry", None)
            if dosimetry is not None and dosimetry.method not in self.dosimetry_methods:
                raise ValueError(f"arm {arm.name!r} uses dosimetry method {dosimetry.method!r}, not defined under "
                                 f"[dosimetry_methods] (defined: {sorted(self.dosimetry_methods) or 'none'})")
            if dosimetry is not None:
                method = self.dosimetry_methods[dosimetry.method]
                for organ in self.agents[agent].organ_dosimetry():
                    if getattr(method, f"{organ}_cv", None) is None:
                        raise ValueError(f"arm {arm.name!r} measures {organ} doses ([agents.{agent}.{organ}]) but "
                                         f"dosimetry_methods.{dosimetry.method}.{organ}_cv is not given")
        for name, agent in self.agents.items():
            if agent.partition is not None and agent.liver is None:
                raise ValueError(f"agents.{name}.partition needs [agents.{name}.liver] (the normal perfused liver)")
        for arm in self.arms:
            self._planning_consistent(arm)
            if isinstance(arm, GuidedArm) and not min(self.agents[arm.agent].kidney.gy_per_gbq_median,
                                                      self.agents[arm.agent].marrow.gy_per_gbq_median) > 0:
                raise ValueError(f"arm {arm.name!r}: a guided rule reads the kidney and marrow doses, but agent "
                                 f"{arm.agent!r} gives 0 Gy/GBq to one of them")
        for name, agent in self.agents.items():
            for organ in agent.organ_dosimetry():
                if getattr(self.radiobiology, organ, None) is None:
                    raise ValueError(f"agents.{name}.{organ} needs [radiobiology.{organ}] (alpha_beta_gy, "
                                     "repair_half_time_h)")
        self._marrow_alpha_bounded()
        given = self.cohort.covariates.model_fields_set
        if self.marrow.lymphocytes is not None and "lymphocytes_1e9_per_l" not in given:
            raise ValueError("[marrow.lymphocytes] needs the baseline cohort.covariates.lymphocytes_1e9_per_l")
        if self.marrow.haemoglobin is not None and "haemoglobin_g_dl" not in given:
            raise ValueError("[marrow.haemoglobin] needs the baseline cohort.covariates.haemoglobin_g_dl")
        if self.psa is not None and "psa_ng_ml" not in given:
            raise ValueError("[psa] needs the baseline cohort.covariates.psa_ng_ml")
        for arm in self.arms:
            if getattr(arm, "stop_at_psa_progression", False) and self.psa is None:
                raise ValueError(f"arm {arm.name!r}: stop_at_psa_progression needs a [psa] section")
            if getattr(arm, "psa_pause", None) is not None and self.psa is None:
                raise ValueError(f"arm {arm.name!r}: psa_pause needs a [psa] section")
            again = getattr(arm, "retreatment", None)
            if again is not None and again.only_after_pause and getattr(arm, "psa_pause", None) is None:
                raise ValueError(f"arm {arm.name!r}: retreatment.only_after_pause needs arms.psa_pause")
        for organ in self.organ_toxicity:
            if organ in ("kidney", "marrow") or not any(getattr(a, organ, None) for a in self.agents.values()):
                raise ValueError(f"organ_toxicity.{organ}: not an optional organ that an agent of this scenario "
                                 "doses (the kidney and the marrow have models of their own)")
        lines = ["platelets", "neutrophils", *(n for n in ("lymphocytes", "haemoglobin")
                                               if getattr(self.marrow, n) is not None)]
        unknown = sorted(set(self.marrow.background_grade3_per_year) - set(lines))
        if unknown:
            raise ValueError(f"marrow.background_grade3_per_year names {unknown}: not a blood line of this scenario "
                             f"(lines: {lines})")
        if self.uncertainty is not None:
            data = self.model_dump(mode="json")
            for param in self.uncertainty.parameters:
                try:
                    value = get_dotted(data, param.path)
                except ConfigError:
                    raise ValueError(f"uncertainty: {param.path}: no such field in the config") from None
                if not isinstance(value, int | float) or isinstance(value, bool) or param.path.startswith(
                        ("uncertainty.", "trial.")):
                    raise ValueError(f"uncertainty: {param.path} = {value!r}: not a model number (trial settings "
                                     "and non-numbers cannot be uncertain)")
        return self

    def _planning_consistent(self, arm: FixedArm | GuidedArm | ControlArm) -> None:
        """A planned arm's method exists and gives the error of each dose the plan predicts; its limits name organs
        its agent doses; it plans with a partition-model agent (docs/model.md 5.6)."""
        plan = getattr(arm, "planning", None)
        if plan is None:
            return
        where = f"arm {arm.name!r}: planning"
        agent = self.agents[arm.agent]
        if agent.partition is None:
            raise ValueError(f"{where} needs a partition-model agent ([agents.{arm.agent}.partition])")
        if plan.method not in self.dosimetry_methods:
            raise ValueError(f"{where}.method = {plan.method!r}, not defined under [dosimetry_methods] (defined: "
                             f"{sorted(self.dosimetry_methods) or 'none'})")
        doses = agent.organ_dosimetry()
        unknown = sorted(set(plan.limits_gy) - set(doses))
        if unknown:
            raise ValueError(f"{where}.limits_gy names {unknown}: not an organ agent {arm.agent!r} doses "
                             f"(organs: {sorted(doses)})")
        method = self.dosimetry_methods[plan.method]
        for organ in sorted({"liver", *plan.limits_gy}):
            if getattr(method, f"{organ}_cv", None) is None:
                raise ValueError(f"{where} predicts the {organ} dose but dosimetry_methods.{plan.method}.{organ}_cv "
                                 "is not given")

    def _marrow_alpha_bounded(self) -> None:
        """The most radiosensitive marrow the cohort can hold (the oldest patient, with prior chemotherapy and bone
        metastases, at the median) must stay within ``MAX_MARROW_ALPHA_PER_GY``: each parameter may be in its range
        while their product is not, and the marrow integrator's steps shrink as 1 / (alpha x dose rate)."""
        m, age = self.marrow, self.cohort.covariates.age_years
        if isinstance(age, Normal):
            oldest = age.high if age.high is not None else age.mean + 5 * age.sd
        elif isinstance(age, LogNormal):
            oldest = age.high if age.high is not None else age.median * math.exp(5 * age.sigma_ln)
        else:
            oldest = 65.0
        alpha = (m.alpha_per_gy * m.prior_chemotherapy_multiplier * m.bone_metastases_multiplier
                 * math.exp(max(0.0, m.age_log_slope_per_year) * max(0.0, oldest - 65.0)))
        if not alpha <= MAX_MARROW_ALPHA_PER_GY:
            raise ValueError(f"marrow.alpha_per_gy x prior_chemotherapy_multiplier x bone_metastases_multiplier x "
                             f"exp(age_log_slope_per_year x (age - 65)) reaches {alpha:.3g}/Gy for the oldest patient "
                             f"with both risk factors: must be <= {MAX_MARROW_ALPHA_PER_GY:g}/Gy")

    def reference_arm(self) -> str:
        """The arm the others are compared with."""
        if self.trial.reference_arm is not None:
            return self.trial.reference_arm
        controls = [a.name for a in self.arms if isinstance(a, ControlArm)]
        return controls[0] if controls else self.arms[-1].name

    def arm(self, name: str) -> FixedArm | GuidedArm | ControlArm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


# --------------------------------------------------------------------------------------------------
# Loading


# Union members' tags appear in pydantic's error locations but not in the file.
_UNION_TAGS = {"fixed", "guided", "control", "normal", "lognormal", "bernoulli", "beta"}


def _field_path(loc: tuple, data: Any) -> str:
    """The dotted path of an error location in the file's terms: list items with a ``name`` are named by it
    (``arms.lu177_dotatate``) and union tags, which are not keys of the file, are dropped."""
    parts, node = [], data
    for p in loc:
        if isinstance(p, str) and p in _UNION_TAGS and not (isinstance(node, dict) and p in node):
            continue
        label = str(p)
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(p, int) and isinstance(node, dict) and isinstance(node.get("name"), str):
            label = node["name"]
        parts.append(label)
    return ".".join(parts) or "<root>"


def _describe_error(err: dict[str, Any], data: dict) -> str:
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):  # name the tag field, not the whole table
        ctx = err["ctx"]
        field = ctx["discriminator"].strip("'")
        path = f"{_field_path(err['loc'], data)}.{field}"
        if err["type"] == "union_tag_not_found":
            return f"{path}: required field is missing"
        return f"{path}{_shown(ctx['tag'])}: must be one of {ctx['expected_tags']}"
    msg = {"extra_forbidden": "unknown key", "missing": "required field is missing"}.get(err["type"], err["msg"])
    if not err["loc"]:  # a check across fields (e.g. an arm's agent must be defined): the message says it all
        return msg.removeprefix("Value error, ")
    shown = "" if err["type"] in ("missing", "extra_forbidden") else _shown(err.get("input"))
    return f"{_field_path(err['loc'], data)}{shown}: {msg}"


def _shown(value: Any, limit: int = 80) -> str:
    """`` = value`` in an error message; nothing for a table (a check across its fields says what is wrong, and the
    table itself can be kilobytes long), and long values cut to ``limit`` characters."""
    if isinstance(value, dict):
        return ""
    text = repr(value)
    return f" = {text if len(text) <= limit else text[:limit - 3] + '...'}"


def validate(data: dict, source: str = "<config>") -> Config:
    """Validate a config mapping; raise ConfigError listing every problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {problems(exc, data)}") from None


MAX_PROBLEMS = 10  # listed in one message; a file with more is usually not a scenario file at all


def problems(exc: ValidationError, data: Any) -> str:
    """The problems of a validation error, one clause each, at most :data:`MAX_PROBLEMS` of them."""
    lines = list(dict.fromkeys(_describe_error(err, data) for err in _union_branch_errors(exc.errors())))
    more = f"; and {len(lines) - MAX_PROBLEMS} more" if len(lines) > MAX_PROBLEMS else ""
    return "; ".join(lines[:MAX_PROBLEMS]) + more


def validate_quietly(data: dict, overrides: dict[str, Any]) -> str | None:
    """The problems of ``data`` with ``overrides`` set (dotted paths), or None when that config is valid;
    ``data`` is left as it was."""
    trial = copy.deepcopy(data)
    try:
        for key, value in overrides.items():
            set_dotted(trial, key, value)
        validate(trial, "")
    except ConfigError as exc:
        return str(exc).removeprefix(": ")
    return None


def _is_branch_tag(item: Any) -> bool:
    """pydantic names union members in error locations (``constrained-float``, ``list[constrained-float]``);
    config keys never contain ``-`` or ``[``."""
    return isinstance(item, str) and ("-" in item or "[" in item)


def _union_branch_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For a field that takes a number or a list (``activity_gbq``), keep only the errors of the member that
    matches the input's shape, and drop the member names from the location."""
    out = []
    for err in errors:
        loc = err["loc"]
        tags = [item for item in loc if _is_branch_tag(item)]
        if tags:
            list_branch = tags[0].startswith("list[")
            if err["type"] == "list_type" if list_branch else isinstance(err.get("input"), list):
                continue  # the input has the other member's shape
            err = {**err, "loc": tuple(item for item in loc if not _is_branch_tag(item))}
        out.append(err)
    return out


def set_dotted(data: dict, path: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts; list items (arms) are addressed by their ``name``."""
    parts = path.split(".")
    node: Any = data
    for depth, key in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        node = _list_item(node, key, where) if isinstance(node, list) else node.setdefault(key, {})
        if not isinstance(node, dict | list):
            raise ConfigError(f"override {path}: {where}{_shown(node)} is not a table")
    last = parts[-1]
    if isinstance(node, list):
        raise ConfigError(f"override {path}: cannot replace a whole list item")
    node[last] = value


def set_dotted_in(data: dict, path: str, value: Any, source: str) -> None:
    """``set_dotted``, its error naming ``source`` (the file and table the override comes from)."""
    try:
        set_dotted(data, path, value)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {str(exc).removeprefix('override ')}") from None


def flatten_dotted(value: Any, prefix: str = "") -> dict[str, Any]:
    """An ``[overrides]`` table, which may nest (``trial.patients = 100``, ``[overrides.trial]``), as dotted paths."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(flatten_dotted(v, f"{prefix}.{k}" if prefix else k))
    return out


def get_dotted(data: dict, path: str) -> Any:
    """The value at ``a.b.c`` in nested dicts; list items (arms) are addressed by their ``name``."""
    parts = path.split(".")
    node: Any = data
    for depth, key in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = _list_item(node, key, where)
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise ConfigError(f"no field {where}")
    return node


def _list_item(items: list, key: str, where: str) -> dict:
    for item in items:
        if isinstance(item, dict) and item.get("name") == key:
            return item
    names = [i.get("name") for i in items if isinstance(i, dict)]
    raise ConfigError(f"override {where}: no item named {key!r} (have: {names})")


MAX_EXTENDS = 16  # files in one extends chain; the shipped chains have two


def _base_of(path: Path, data: dict) -> tuple[Path, str] | None:
    """The file ``path`` extends (resolved) and its ``extends`` value, or None; ``extends`` is removed from ``data``.
    Errors name ``path``, the file holding the ``extends``."""
    base = data.pop("extends", None)
    if base is None:
        return None
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: extends{_shown(base)}: must be a file name")
    try:
        here = (path.parent / base).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop
        raise ConfigError(f"{path}: extends = {base!r}: cannot be resolved ({exc})") from None
    if not here.is_file():
        raise ConfigError(f"{path}: extends = {base!r}: {here} " + ("is a directory" if here.is_dir() else
                                                                   "not found"))
    return here, base


def _layers(path: str | Path) -> list[tuple[Path, dict]]:
    """``path`` and each file it extends, transitively, with their mappings (``extends`` removed), the file first."""
    path = Path(path)
    layers = [(path, files.read_toml(path, "config file"))]
    seen = {path.resolve()}
    while (found := _base_of(*layers[-1])) is not None:
        here, base = found
        holder = layers[-1][0]
        if here in seen:
            raise ConfigError(f"{holder}: extends = {base!r}: circular")
        if len(layers) >= MAX_EXTENDS:
            raise ConfigError(f"{holder}: extends = {base!r}: more than {MAX_EXTENDS} files in the extends chain")
        seen.add(here)
        layers.append((here, files.read_toml(here, "config file")))
    return layers


def read_toml(path: str | Path) -> dict:
    """Read a scenario file. ``extends = "other.toml"`` (relative to the file) starts from that scenario:
    tables are merged key by key, and anything else (numbers, lists such as ``arms``) replaces the base's. An arm
    with ``like = "NAME"`` starts from the arm NAME (an earlier arm of its file, else the base's) and changes what it
    sets."""
    layers = _layers(path)
    data = _arms_like(layers[-1][1], {}, layers[-1][0])
    for holder, layer in reversed(layers[:-1]):
        data = _merge(data, _arms_like(layer, data, holder))
    return data


def _arms_like(layer: dict, base: dict, holder: Path) -> dict:
    """``layer`` with each ``like = "NAME"`` arm resolved: a copy of arm NAME merged with the arm's own keys."""
    arms = layer.get("arms")
    if not isinstance(arms, list) or not any(isinstance(a, dict) and "like" in a for a in arms):
        return layer
    known = {a["name"]: a for a in base.get("arms", []) if isinstance(a, dict) and isinstance(a.get("name"), str)}
    resolved = []
    for arm in arms:
        if isinstance(arm, dict) and "like" in arm:
            name = arm["like"]
            if not isinstance(name, str) or name not in known:
                raise ConfigError(f"{holder}: arms: like{_shown(name)}: no such arm (known: {list(known)})")
            arm = _merge(copy.deepcopy(known[name]), {k: v for k, v in arm.items() if k != "like"})
        resolved.append(arm)
        if isinstance(arm, dict) and isinstance(arm.get("name"), str):
            known[arm["name"]] = arm
    return {**layer, "arms": resolved}


def extends_chain(path: str | Path) -> list[Path]:
    """``path`` and the files it extends (``extends = ...``, transitively), resolved, the file itself first."""
    return [p.resolve() for p, _ in _layers(path)]


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def select_arms(data: dict, names: list[str], source: str) -> None:
    """Keep only the arms named in ``names`` (in that order)."""
    items = data.get("arms") if isinstance(data.get("arms"), list) else []
    arms = {a["name"]: a for a in items if isinstance(a, dict) and isinstance(a.get("name"), str)}
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{source}: select_arms{_shown(names)}: must name at least one arm, by name (defined: "
                          f"{list(arms)})")
    unknown = [n for n in names if n not in arms]
    if unknown:
        raise ConfigError(f"{source}: select_arms = {names!r}: unknown arm(s) {unknown} (defined: {list(arms)})")
    data["arms"] = [arms[n] for n in names]


def read_scenario(path: str | Path) -> dict:
    """A scenario file's mapping before validation: ``extends`` resolved, a top-level ``select_arms = [...]``
    applied (only those of the, possibly inherited, arms are kept), then its ``[overrides]`` (dotted paths, as on
    the command line and in sweep files: ``"arms.NAME.field" = value``)."""
    data = read_toml(path)
    selected = data.pop("select_arms", None)
    if selected is not None:
        select_arms(data, selected if isinstance(selected, list) else [selected], str(path))
    overrides = data.pop("overrides", None)
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: overrides{_shown(overrides)}: must be a table of dotted paths")
        for key, value in flatten_dotted(overrides).items():
            set_dotted_in(data, key, value, f"{path}: overrides")
    return data


def shipped_folder() -> Path:
    """The shipped scenarios: in an installed wheel ``sim/configs`` (pyproject's force-include), in the repository
    (an editable install) its ``configs/``."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


def find(name: str | Path) -> Path:
    """The scenario file ``name``: the file itself when it exists or ``name`` has a folder, else the shipped scenario
    of that name (``netter1`` or ``netter1.toml``), so ``rptsim run netter1`` works wherever rptsim is installed."""
    path = Path(name)
    if path.exists() or "/" in str(name) or os.sep in str(name) or not path.name:
        return path
    shipped = shipped_folder()
    for candidate in (shipped / path.name, shipped / f"{path.name}.toml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in shipped.glob("*.toml"))
    raise ConfigError(f"{printable(str(name))}: config file not found, nor a shipped scenario (shipped: "
                      f"{', '.join(known) or 'none'})")


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read (``read_scenario``), override (dotted paths) and validate a TOML config."""
    data = read_scenario(path)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate(data, str(path))
