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
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration problem, phrased for the user: file, field path, value, allowed range."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


# --------------------------------------------------------------------------------------------------
# Trial


class ImagingPhase(Strict):
    """Tumour imaging every ``every_weeks`` until ``until_week`` (open-ended when omitted)."""

    every_weeks: PositiveFloat
    until_week: PositiveFloat | None = None


class Trial(Strict):
    name: str = Field(min_length=1, description="Scenario name shown in summaries and file attributes.")
    patients: int = Field(ge=1, le=100_000_000, description="Virtual patients; every arm treats the same ones.")
    seed: int = Field(ge=0, le=2**63 - 1, description="Seed of all random streams.")
    accrual_months: NonNegFloat = Field(description="Uniform accrual period; entry time ~ U(0, accrual).")
    follow_up_months: PositiveFloat = Field(description="Follow-up after the last patient enters (data cut-off).")
    dropout_per_year: NonNegFloat = Field(0.0, description="Exponential loss-to-follow-up rate (censoring).")
    imaging: list[ImagingPhase] = Field(min_length=1, description="Tumour assessment schedule from day 0.")
    reference_arm: str | None = Field(None, description="Comparator of the summary's hazard ratios (default: the "
                                      "first control arm, else the last arm).")
    rmst_horizon_months: PositiveFloat = Field(24.0, description="Horizon of restricted mean survival time.")
    randomised_patients: int | None = Field(None, ge=2, le=2_000_000, description="Patients randomised in the "
                                            "published trial, both arms: the default size of rptsim trial.")
    allocation: tuple[Annotated[int, Field(ge=1, le=100)], Annotated[int, Field(ge=1, le=100)]] = Field(
        (1, 1), description="Randomisation ratio experimental:reference of the published trial (rptsim trial's "
        "default); 1:1 unless the trial says otherwise.")

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


# --------------------------------------------------------------------------------------------------
# Cohort


class Bounded(Strict):
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Bounded:
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low = {self.low} must be < high = {self.high}")
        return self


class Normal(Bounded):
    """Normal marginal, truncated to [low, high] by inverse-CDF sampling."""

    dist: Literal["normal"]
    mean: float
    sd: NonNegFloat


class LogNormal(Bounded):
    """Log-normal marginal: median and sigma of log, truncated to [low, high]."""

    dist: Literal["lognormal"]
    median: PositiveFloat
    sigma_ln: NonNegFloat


class Bernoulli(Strict):
    dist: Literal["bernoulli"]
    p: Probability


class Beta(Strict):
    """Beta marginal given by mean and sd (method of moments)."""

    dist: Literal["beta"]
    mean: Annotated[float, Field(gt=0, lt=1)]
    sd: PositiveFloat

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
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"low = {self.low} must be < high = {self.high}")
        return self


Prior = Annotated[Normal | LogNormal | Beta | Uniform, Field(discriminator="dist")]


class UncertainParameter(Strict):
    """A config number whose value is uncertain: its prior and where the prior comes from."""

    path: str = Field(min_length=1, description="Dotted config path of a number (arms by name).")
    name: str | None = Field(None, description="Short name in outputs (default: the path's last two parts).")
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
    neutrophils_1e9_per_l: Marginal  # last: adding a covariate at the end keeps every earlier draw


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

    gy_per_gbq_median: PositiveFloat
    inter_patient_sigma_ln: NonNegFloat
    intra_patient_cv: NonNegFloat = Field(description="Cycle-to-cycle variation of Gy/GBq (CV).")
    effective_half_life_h_median: PositiveFloat
    effective_half_life_sigma_ln: NonNegFloat = 0.0


class KidneyDosimetry(OrganDosimetry):
    risk_factor_multiplier: Annotated[float, Field(ge=1)] = Field(
        description="Gy/GBq multiplier with hypertension or diabetes.")
    egfr_exponent: NonNegFloat = Field(description="Gy/GBq x (eGFR/90)^-exponent: lower function, higher dose.")


class MarrowDosimetry(OrganDosimetry):
    bone_metastases_multiplier: Annotated[float, Field(ge=1)]


class TumourDosimetry(OrganDosimetry):
    dose_decline_per_cycle: Annotated[float, Field(ge=0, lt=1)] = Field(
        description="Fractional fall of tumour Gy/GBq per cycle as the lesion responds.")


class Agent(Strict):
    """Dosimetry of one radiopharmaceutical."""

    label: str
    kidney: KidneyDosimetry
    marrow: MarrowDosimetry
    tumour: TumourDosimetry
    salivary: OrganDosimetry | None = Field(None, description="Salivary glands (parotid and submandibular).")
    sink_exponent: NonNegFloat = Field(description="Organ Gy/GBq x (tumour volume / reference)^-exponent.")
    sink_reference_volume_ml: PositiveFloat

    def organ_dosimetry(self) -> dict[str, OrganDosimetry]:
        """The organs at risk this agent gives dosimetry for: every organ table but the tumour's."""
        return {name: value for name, value in self if isinstance(value, OrganDosimetry) and name != "tumour"}


class DosimetryMethod(Strict):
    """A dosimetry protocol: its error per organ and what it costs per measured cycle."""

    label: str
    kidney_cv: NonNegFloat = Field(description="CV of the measured kidney dose (true x lognormal).")
    marrow_cv: NonNegFloat
    tumour_cv: NonNegFloat
    salivary_cv: NonNegFloat | None = Field(None, description="Needed when an arm measures an agent's salivary dose.")
    sessions_per_cycle: int = Field(ge=0, le=20, description="SPECT/CT (or planar) acquisitions per cycle.")
    physicist_hours_per_cycle: NonNegFloat
    extra_visits_per_cycle: int = Field(ge=0, le=20, description="Imaging visits besides the treatment day.")


class Costs(Strict):
    """Unit costs for the resource-use summary."""

    currency: str = "EUR"
    per_gbq: NonNegFloat
    per_administration: NonNegFloat
    per_imaging_session: NonNegFloat
    per_physicist_hour: NonNegFloat


class Tissue(Strict):
    alpha_beta_gy: PositiveFloat
    repair_half_time_h: PositiveFloat


class Radiobiology(Strict):
    kidney: Tissue
    marrow: Tissue
    tumour: Tissue
    salivary: Tissue | None = None  # needed when an agent gives salivary dosimetry


class Tumour(Strict):
    """Tumour kinetics not carried by covariates."""

    dead_cell_clearance_half_life_days: PositiveFloat
    new_lesion_burden_exponent: NonNegFloat = Field(
        description="New-lesion hazard x (viable burden / baseline)^exponent; 0 = independent of burden.")
    response_confirmation: bool = Field(
        False, description="CR/PR must be confirmed at the next scan (RECIST 1.1, Eisenhauer 2009).")


class NaturalHistory(Strict):
    background_hazard_at_65_per_year: PositiveFloat = Field(
        description="Gompertz background mortality at age 65.")
    background_hazard_log_slope_per_year: NonNegFloat = Field(
        description="Gompertz slope: hazard x exp(slope x (age - 65)).")
    pre_progression_death_per_month: NonNegFloat
    post_progression_death_per_month: PositiveFloat = Field(
        description="Median patient's hazard of death after progression.")
    post_progression_growth_exponent: NonNegFloat = Field(
        description="Post-progression hazard x (growth rate / cohort median growth rate)^exponent.")


class Neutrophils(Strict):
    """The same marrow model for neutrophils (docs/model.md 4.7)."""

    mtt_days: PositiveFloat
    lifespan_days: PositiveFloat = Field(description="Mean residence time of the circulating compartment.")
    feedback_gamma: Annotated[float, Field(ge=0, le=1)]
    alpha_ratio: NonNegFloat = Field(description="Progenitor radiosensitivity relative to the platelet line.")


class Marrow(Strict):
    """Platelet model (Friberg 2002 form, ``sim/kernels/marrow.py``) and marrow radiosensitivity."""

    mtt_days: PositiveFloat = Field(description="Mean transit time, proliferating to circulating.")
    platelet_lifespan_days: PositiveFloat = Field(description="Mean residence time of circulating platelets.")
    feedback_gamma: Annotated[float, Field(ge=0, le=1)]
    alpha_per_gy: NonNegFloat = Field(description="Progenitor kill per Gy (median patient).")
    alpha_sigma_ln: NonNegFloat
    prior_chemotherapy_multiplier: PositiveFloat
    bone_metastases_multiplier: PositiveFloat
    age_log_slope_per_year: float = Field(description="alpha x exp(slope x (age - 65)).")
    reserve_loss_per_gy: NonNegFloat = Field(description="Permanent set-point loss: x exp(-value x dose).")
    max_step_days: Annotated[float, Field(gt=0, le=2)] = Field(
        0.5, description="First trial step of each interval of the adaptive RK4 (docs/model.md 4.1).")
    window_after_last_cycle_days: PositiveFloat = Field(description="Follow-up of the last cycle's nadir.")
    fatal_grade4_probability: Probability = Field(description="Death at a cycle's grade-4 nadir.")
    neutrophils: Neutrophils


class Kidney(Strict):
    """Nephropathy NTCP (LKB on cumulative BED) and the eGFR trajectory."""

    bed50_gy: PositiveFloat
    lkb_m: PositiveFloat
    risk_factor_bed50_shift_gy: NonNegFloat
    nephropathy_latency_months_median: PositiveFloat
    nephropathy_latency_sigma_ln: NonNegFloat
    nephropathy_egfr_loss_fraction: Probability
    age_decline_ml_min_per_year: NonNegFloat
    radiation_decline_per_gy_per_year: NonNegFloat = Field(
        description="Fraction of baseline eGFR lost per year per Gy of kidney BED (after the latency).")
    risk_factor_decline_multiplier: Annotated[float, Field(ge=1)]
    subclinical_latency_months: NonNegFloat

    @model_validator(mode="after")
    def _shift_below_bed50(self) -> Kidney:
        if self.risk_factor_bed50_shift_gy >= self.bed50_gy:
            raise ValueError(f"risk_factor_bed50_shift_gy = {self.risk_factor_bed50_shift_gy} must be < bed50_gy "
                             f"= {self.bed50_gy}")
        return self


class LateEffects(Strict):
    mds_aml_risk_per_gy: NonNegFloat = Field(description="Probability 1 - exp(-value x marrow dose).")
    mds_aml_prior_chemotherapy_multiplier: PositiveFloat
    mds_aml_latency_months_median: PositiveFloat
    mds_aml_latency_sigma_ln: NonNegFloat
    mds_aml_death_per_month: PositiveFloat


# --------------------------------------------------------------------------------------------------
# Arms


class ArmBase(Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)
    label: str = ""


class DoseModification(Strict):
    """Protocol rules applied at each cycle's due day (docs/model.md 4.5); omitted rules never trigger."""

    withhold_platelet_grade: int | None = Field(None, ge=1, le=4, description="Withhold while grade >= this.")
    withhold_neutrophil_grade: int | None = Field(None, ge=1, le=4)
    withhold_egfr_below_ml_min: PositiveFloat | None = None
    withhold_egfr_drop_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    reduce_after_platelet_grade: int | None = Field(
        None, ge=1, le=4, description="Reduce when the worst grade since the last cycle reached this.")
    reduce_after_neutrophil_grade: int | None = Field(None, ge=1, le=4)
    reduce_after_withholding: bool = Field(False, description="A withheld cycle resumes at reduced activity.")
    reduction_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    restore_after_tolerated: bool = False
    max_reductions: int = Field(1, ge=0, le=50, description="A further reduction discontinues treatment.")
    recheck_weeks: PositiveFloat = 1.0
    max_delay_weeks: NonNegFloat = Field(16.0, description="Discontinue when withheld longer than this.")


class ArmDosimetry(Strict):
    """Dosimetry performed in an arm: which method, on how many cycles, and an error knob."""

    method: str
    measured_cycles: int | None = Field(None, ge=1, le=50, description="First N cycles measured (all if omitted).")
    error_scale: NonNegFloat = Field(1.0, description="Multiplies the method's CVs (0 = exact dosimetry).")


class FixedArm(ArmBase):
    """Fixed activity per cycle at a fixed interval; stops at progression."""

    regimen: Literal["fixed"]
    agent: str
    activity_gbq: PositiveFloat | list[PositiveFloat]
    cycles: int = Field(ge=1, le=50)
    interval_weeks: PositiveFloat
    continue_after_cycle: int | None = Field(
        None, ge=1, description="Cycles after this one are given only while the tumour is smaller than at "
        "baseline (VISION: 4 cycles, then 2 more with evidence of response).")
    dose_modification: DoseModification = Field(default_factory=DoseModification)
    dosimetry: ArmDosimetry | None = None

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
    activity_gbq: PositiveFloat = Field(description="Activity per cycle (first cycle for activity_to_kidney_target).")
    cycles: int = Field(ge=1, le=50, description="Maximum (or, for activity_to_kidney_target, induction) cycles.")
    interval_weeks: PositiveFloat
    kidney_bed_limit_gy: PositiveFloat | None = None
    kidney_bed_limit_risk_factor_gy: PositiveFloat | None = Field(
        None, description="Limit with hypertension or diabetes (defaults to kidney_bed_limit_gy).")
    marrow_limit_gy: PositiveFloat = Field(description="Cumulative measured marrow absorbed dose limit.")
    target_gy: PositiveFloat | None = Field(None, description="Kidney target (activity_to_kidney_target) or tumour "
                                            "absorbed-dose target (tumour_dose_target).")
    target_quantity: Literal["bed", "dose"] = "bed"
    min_activity_gbq: NonNegFloat = 0.0
    max_activity_gbq: PositiveFloat | None = None
    reduce_last_cycle_to_limit: bool = False
    continue_after_cycle: int | None = Field(None, ge=1)
    dose_modification: DoseModification = Field(default_factory=DoseModification)
    dosimetry: ArmDosimetry

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


class Config(Strict):
    trial: Trial
    cohort: Cohort
    agents: dict[str, Agent] = Field(default_factory=dict)
    radiobiology: Radiobiology
    tumour: Tumour
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
            for organ in agent.organ_dosimetry():
                if getattr(self.radiobiology, organ, None) is None:
                    raise ValueError(f"agents.{name}.{organ} needs [radiobiology.{organ}] (alpha_beta_gy, "
                                     "repair_half_time_h)")
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
        return f"{path} = {ctx['tag']!r}: must be one of {ctx['expected_tags']}"
    msg = {"extra_forbidden": "unknown key", "missing": "required field is missing"}.get(err["type"], err["msg"])
    if not err["loc"]:  # a check across fields (e.g. an arm's agent must be defined): the message says it all
        return msg.removeprefix("Value error, ")
    shown = "" if err["type"] in ("missing", "extra_forbidden") else f" = {err.get('input')!r}"
    return f"{_field_path(err['loc'], data)}{shown}: {msg}"


def validate(data: dict, source: str = "<config>") -> Config:
    """Validate a config mapping; raise ConfigError listing every problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(err, data) for err in _union_branch_errors(exc.errors())]
        raise ConfigError(f"{source}: " + "; ".join(dict.fromkeys(lines))) from None


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
        if isinstance(node, list):
            node = _list_item(node, key, ".".join(parts[: depth + 1]))
        else:
            node = node.setdefault(key, {})
    last = parts[-1]
    if isinstance(node, list):
        raise ConfigError(f"override {path}: cannot replace a whole list item")
    node[last] = value


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


def read_toml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a scenario file. ``extends = "other.toml"`` (relative to the file) starts from that scenario:
    tables are merged key by key, and anything else (numbers, lists such as ``arms``) replaces the base's."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: extends = {base!r}: must be a file name")
    base_path = (path.parent / base).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ConfigError(f"{path}: extends = {base!r}: circular")
    return _merge(read_toml(base_path, (*_seen, path.resolve())), data)


def extends_chain(path: str | Path) -> list[Path]:
    """``path`` and the files it extends (``extends = ...``, transitively), resolved, the file itself first."""
    chain: list[Path] = []
    base: Any = str(path)
    while base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{chain[-1]}: extends = {base!r}: must be a file name")
        here = (chain[-1].parent / base if chain else Path(base)).resolve()
        if here in chain:
            raise ConfigError(f"{chain[-1]}: extends = {base!r}: circular")
        if not here.is_file():
            raise ConfigError(f"{here}: config file not found")
        try:
            with here.open("rb") as fh:
                base = tomllib.load(fh).get("extends")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{here}: TOML syntax error: {exc}") from None
        chain.append(here)
    return chain


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def select_arms(data: dict, names: list[str], source: str) -> None:
    """Keep only the arms named in ``names`` (in that order)."""
    arms = {a.get("name"): a for a in data.get("arms", []) if isinstance(a, dict)}
    unknown = [n for n in names if n not in arms]
    if not names:
        raise ConfigError(f"{source}: select_arms = []: must name at least one arm (defined: {list(arms)})")
    if unknown:
        raise ConfigError(f"{source}: select_arms = {names!r}: unknown arm(s) {unknown} (defined: {list(arms)})")
    data["arms"] = [arms[n] for n in names]


def read_scenario(path: str | Path) -> dict:
    """A scenario file's mapping before validation: ``extends`` resolved, and a top-level
    ``select_arms = [...]`` applied (only those of the, possibly inherited, arms are kept)."""
    data = read_toml(path)
    selected = data.pop("select_arms", None)
    if selected is not None:
        select_arms(data, selected if isinstance(selected, list) else [selected], str(path))
    return data


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read (``read_scenario``), override (dotted paths) and validate a TOML config."""
    data = read_scenario(path)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate(data, str(path))
