"""The kernel's inputs, declared once by name, and the translation of a scenario into them.

Each input is an ``Input``: its name, units, dims (``patient``, ``organ``, ``lesion``, ``blood_line``, ``cycle``),
where it comes from in the config, and its transform (``build``, a function of the translation context). The
inputs form eight groups; each group is a named tuple whose fields are the group's inputs, in the order declared,
and the kernel reads them by name (``patients.age_years[i]``, ``organs.alpha_beta_gy[o]``):

``Patients``  per-patient values (rows: patients)        ``Organs``  per-organ radiobiology and dosimetry error
``Lesions``   tumour radiobiology and kinetics           ``Blood``   blood-line kinetics and the marrow model
``Kidney``    nephropathy and eGFR                       ``Events``  competing deaths, dropout, MDS/AML
``Regimen``   the arm's policy: schedule, dose modification, dosimetry-guided rule

``translate(cfg, arm, cohort)`` is the only place where config values become kernel numbers
(``docs/extending.md`` shows how to add an input).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from sim import partition, rng
from sim.cohort import Cohort, median_growth_per_day
from sim.config import Agent, Config, ControlArm, DoseModification, DosimetryMethod, FixedArm, GuidedArm
from sim.kernels import policy
from sim.kernels.tumour import ROLE_ABSENT, ROLE_MEANINGS, ROLE_NON_TARGET, ROLE_TARGET
from sim.organs import BLOOD_LINES, FATAL_LINE, ORGANS, BloodLine, Organ, has_kidney_risk_factor
from sim.units import DAYS_PER_MONTH, DAYS_PER_WEEK, DAYS_PER_YEAR


def field_or(table: Any, field: str, default: Any) -> Any:  # noqa: ANN401 - config tables and values
    """``table.field``, or ``default`` where the optional table is absent or the field unset (None)."""
    value = getattr(table, field, None) if table is not None else None
    return default if value is None else value


@dataclass(frozen=True)
class Input:
    """One kernel input: ``build(context)`` gives its value (array over ``dims``, or a scalar)."""

    name: str
    units: str
    dims: tuple[str, ...]
    source: str
    build: Callable[[Context], Any]
    dtype: type = np.float64


@dataclass(frozen=True)
class Axes:
    """The scenario's axes: organs at risk, blood lines, lesions per patient, and cycles (the most any arm gives)."""

    organs: tuple[Organ, ...]
    blood_lines: tuple[BloodLine, ...]
    lesions: int
    cycles: int

    def organ(self, name: str) -> int:
        return [o.name for o in self.organs].index(name)

    def sizes(self, n_patients: int) -> dict[str, int]:
        """The size of every output dim for ``n_patients`` patients (``kernel_outputs.allocate``)."""
        return {"patient": n_patients, "cycle": self.cycles, "organ": len(self.organs), "lesion": self.lesions,
                "blood_line": len(self.blood_lines)}


def arm_cycles(arm: FixedArm | GuidedArm | ControlArm) -> int:
    return 0 if isinstance(arm, ControlArm) else arm.cycles


def arm_cycle_slots(arm: FixedArm | GuidedArm | ControlArm) -> int:
    """The most cycles an arm can give: its course and, if it has one, the re-treatment course."""
    retreatment = getattr(arm, "retreatment", None)
    return arm_cycles(arm) + (retreatment.cycles if retreatment is not None else 0)


def axes_of(cfg: Config) -> Axes:
    """Organs: the required ones and any that an agent of the scenario gives dosimetry for (registry order);
    blood lines: those the marrow config models; lesions: ``lesions.max_lesions``."""
    agents = cfg.agents.values()
    organs = tuple(o for o in ORGANS if o.required or any(getattr(a, o.name, None) is not None for a in agents))
    lines = tuple(b for b in BLOOD_LINES if b.kinetics(cfg.marrow) is not None)
    return Axes(organs, lines, cfg.lesions.max_lesions, max(1, *(arm_cycle_slots(a) for a in cfg.arms)))


@dataclass
class PatientDraws:
    """Patients of a scenario (a cohort or any chunk of it) and what every arm draws for them alike (common random
    numbers): the random effects of ``effect_streams`` and the lesion layout, each drawn on first use. The arms of a
    chunk share one (``engine.run``), so these are drawn once per chunk, not once per arm."""

    cfg: Config
    axes: Axes
    cohort: Cohort

    def __len__(self) -> int:
        return len(self.cohort)

    @property
    def cov(self) -> dict[str, np.ndarray]:
        return self.cohort.covariates

    @functools.cached_property
    def _effects(self) -> dict[tuple[str, int], np.ndarray]:
        streams = effect_streams(self.axes)
        z = rng.first_normals(self.cfg.trial.seed, self.cohort.patient_ids, streams)
        return {stream: z[:, j] for j, stream in enumerate(streams)}

    @functools.cached_property
    def layout(self) -> LesionLayout:
        return lesion_layout(self)

    def normal(self, stream: str, index: int = 0) -> np.ndarray:
        """The patients' random effect from the stream ``(stream, index)`` (counter 0), one of ``effect_streams``
        (all drawn in one pass)."""
        return self._effects[(stream, index)]


@dataclass
class Context:
    """What a transform may read: one arm (its agent and dosimetry method) and the patients' ``draws`` (the
    scenario, the axes, the cohort, and the random effects and lesion layout that every arm shares)."""

    arm: FixedArm | GuidedArm | ControlArm
    draws: PatientDraws

    @property
    def cfg(self) -> Config:
        return self.draws.cfg

    @property
    def axes(self) -> Axes:
        return self.draws.axes

    @property
    def cohort(self) -> Cohort:
        return self.draws.cohort

    @property
    def cov(self) -> dict[str, np.ndarray]:
        return self.draws.cov

    @property
    def layout(self) -> LesionLayout:
        return self.draws.layout

    def normal(self, stream: str, index: int = 0) -> np.ndarray:
        return self.draws.normal(stream, index)

    @property
    def agent(self) -> Agent | None:
        return None if isinstance(self.arm, ControlArm) else self.cfg.agents[self.arm.agent]

    @functools.cached_property
    def partition(self) -> partition.Shares | None:
        """The partition model's shares of the arm's agent (microspheres; None for any other agent)."""
        if self.agent is None or self.agent.partition is None:
            return None
        p = self.agent.partition
        return partition.shares(self.cov["lung_shunt_fraction"], self.cov["perfused_liver_ml"], self.layout.volume_ml,
                                lesion_uptake(self), p.lung_mass_kg, p.tissue_density_g_ml)

    def dose_modification(self) -> DoseModification:
        return getattr(self.arm, "dose_modification", None) or DoseModification()

    def guided(self, field: str, default: Any) -> Any:  # noqa: ANN401 - a config value
        """A field of a guided arm (``default`` for other arms, or when unset)."""
        return field_or(self.arm if isinstance(self.arm, GuidedArm) else None, field, default)

    @property
    def method(self) -> DosimetryMethod | None:
        """The arm's dosimetry method (None without dosimetry)."""
        dosimetry = getattr(self.arm, "dosimetry", None)
        return None if dosimetry is None else self.cfg.dosimetry_methods[dosimetry.method]

    def measurement_sigma(self, what: str, part: str = "cycle") -> float:
        """Log-sd of the arm's measured / true dose for ``what`` (an organ, or ``tumour``): its per-cycle part, or
        with ``part="systematic"`` the part repeated in every cycle of a patient (a share ``systematic_fraction`` of
        the log-variance); 0 without dosimetry."""
        if self.method is None:
            return 0.0
        total = sigma_ln(self.arm.dosimetry.error_scale * getattr(self.method, f"{what}_cv")) ** 2
        share = self.method.systematic_fraction if part == "systematic" else 1.0 - self.method.systematic_fraction
        return math.sqrt(share * total)


EFFECTS = ("inter-patient", "half-life")  # per-patient random effects of an organ's Gy/GBq and T_eff
# Per lesion j: its Gy/GBq around the patient's (whose effect is item 0 of "dosimetry/lesion/inter-patient"), its
# T_eff, volume weight, growth, receptor status and site; per patient: whether the disease is discordant.
LESION_EFFECTS = ("dosimetry/lesion/within-patient", "dosimetry/lesion/half-life", "lesion/volume", "lesion/growth",
                  "lesion/receptor-negative", "lesion/bone", "lesion/radiosensitivity", "dosimetry/lesion/systematic")
# Per patient: the background eGFR decline and the first acute renal event (docs/model.md 4.2).
KIDNEY_EFFECTS = ("kidney/background-decline", "kidney/acute-event")
# Per patient and organ: the systematic error of the arm's dosimetry and the error of its measured half-life.
MEASUREMENT_EFFECTS = ("systematic", "half-life-measurement")


def effect_streams(axes: Axes) -> list[tuple[str, int]]:
    """The streams ``(name, index)`` of the per-patient random effects the transforms below draw (``lesion_layout``
    draws the lesions' own)."""
    return ([(f"dosimetry/{o.name}/{e}", 0) for o in axes.organs for e in (*EFFECTS, *MEASUREMENT_EFFECTS)]
            + [("dosimetry/lesion/inter-patient", 0), ("lesion/discordant", 0)]
            + [("marrow/alpha", 0), *((e, 0) for e in KIDNEY_EFFECTS)]
            + [(f"blood/{b.name}/background", 0) for b in axes.blood_lines])


def sigma_ln(cv: float) -> float:
    """Sigma of log of a log-normal with coefficient of variation ``cv``."""
    return math.sqrt(math.log1p(cv * cv))


# --------------------------------------------------------------------------------------------------------------
# Patients


def _organ_values(c: Context, organ: Organ, which: str) -> np.ndarray:
    """Gy/GBq (``which = "dose"``) or effective half-life (h) of one organ for the arm's agent; 0 without one.

    Gy/GBq = median x exp(sigma z) x organ covariate modifier x tumour sink ``(V / V_ref)^-exponent`` (Beauregard JM
    et al., EJNMMI 2012;39:50); T_eff = median x exp(sigma z'), z and z' from the organ's own streams."""
    n = len(c.cohort)
    dosimetry = getattr(c.agent, organ.name, None) if c.agent is not None else None
    if dosimetry is None:
        return np.zeros(n)
    if which == "half-life":
        return dosimetry.effective_half_life_h_median * np.exp(
            dosimetry.effective_half_life_sigma_ln * c.normal(f"dosimetry/{organ.name}/half-life"))
    sink = (c.cov["tumour_volume_ml"] / c.agent.sink_reference_volume_ml) ** -c.agent.sink_exponent
    modifier = organ.uptake(dosimetry, c) if organ.uptake is not None else 1.0
    return (dosimetry.gy_per_gbq_median * np.exp(dosimetry.inter_patient_sigma_ln
                                                 * c.normal(f"dosimetry/{organ.name}/inter-patient"))
            * modifier * sink)


def _per_organ(which: str) -> Callable[[Context], np.ndarray]:
    return lambda c: np.stack([_organ_values(c, o, which) for o in c.axes.organs], axis=1)


def _measurement_bias(c: Context) -> np.ndarray:
    """Per patient and organ, the systematic factor of the arm's dosimetry, ``exp(sigma_s z)``: the same in every
    measured cycle (Gear JI et al. EJNMMI 2018;45:2456, EANM guidance on uncertainty in dosimetry); 1 without."""
    return np.stack([np.exp(c.measurement_sigma(o.name, "systematic") * c.normal(f"dosimetry/{o.name}/systematic"))
                     for o in c.axes.organs], axis=1)


def _known_teff(c: Context) -> np.ndarray:
    """Per patient and organ, the effective half-life (h) behind the known BEDs of a guided rule: measured, true x
    ``exp(sigma z)`` (``half_life_cv``); the population median with ``population_half_life`` (single time point,
    Hanscheid H et al. J Nucl Med 2018;59:75); the true one without dosimetry (where nothing reads it)."""
    teff, m = _per_organ("half-life")(c), c.method
    if m is None:
        return teff
    scale = c.arm.dosimetry.error_scale
    columns = []
    for j, o in enumerate(c.axes.organs):
        dosimetry = getattr(c.agent, o.name, None)
        if m.population_half_life and dosimetry is not None:
            columns.append(np.full(len(c.cohort), dosimetry.effective_half_life_h_median))
        else:
            columns.append(teff[:, j] * np.exp(sigma_ln(scale * m.half_life_cv)
                                               * c.normal(f"dosimetry/{o.name}/half-life-measurement")))
    return np.stack(columns, axis=1)


@dataclass(frozen=True)
class LesionLayout:
    """A patient's lesions (rows: patients, columns: lesions), ordered: receptor-positive lesions by decreasing
    volume (lesion 0, the largest, is the index lesion of a tumour-guided rule), then receptor-negative ones, then
    the absent columns (volume 0)."""

    count: np.ndarray  # lesions modelled per patient
    volume_ml: np.ndarray
    negative: np.ndarray  # receptor-negative lesion
    role: np.ndarray  # ROLE_* (RECIST 1.1 baseline selection)
    uptake: np.ndarray  # within-patient Gy/GBq factor (x negative_lesion_uptake_ratio for a negative lesion)
    half_life_z: np.ndarray  # the lesion's T_eff effect
    growth: np.ndarray  # growth-rate factor
    radiosensitivity: np.ndarray  # factor of the patient's tumour alpha
    systematic_z: np.ndarray  # the lesion's normal score of its systematic dosimetry error


def diameter_mm(volume_ml: np.ndarray | float) -> np.ndarray | float:
    """Diameter of a sphere of ``volume_ml`` (1 mL = 1 cm^3): ``10 (6 V / pi)^(1/3)`` mm."""
    return 10.0 * np.cbrt(6.0 * np.asarray(volume_ml) / math.pi)


def lesion_layout(c: PatientDraws) -> LesionLayout:
    """Draw each patient's lesions (docs/model.md 3.1): the count (covariate ``lesion_count``, rounded, 1 to
    ``max_lesions``), volume shares ``w_j / sum w`` with ``w_j = exp(volume_sigma_ln z_j)`` of the tumour volume,
    receptor-negative lesions in discordant patients, bone lesions in patients with bone metastases, the lesions'
    uptake, growth and radiosensitivity factors; then the RECIST 1.1 target lesions: the largest measurable (not
    bone, diameter >= ``measurable_diameter_mm``), at most ``target_lesions``; every other lesion is non-target."""
    les, n, m = c.cfg.lesions, len(c.cohort), c.axes.lesions
    # [patient, lesion j] from the streams (effect, j): one array per effect, so that the gathers below are fast
    z = {e: rng.first_normals(c.cfg.trial.seed, c.cohort.patient_ids, [(e, j) for j in range(m)])
         for e in LESION_EFFECTS}
    count = np.clip(np.rint(c.cov["lesion_count"]), 1, m).astype(np.int64)
    present = np.arange(m)[None, :] < count[:, None]
    weight = np.where(present, np.exp(les.volume_sigma_ln * z["lesion/volume"]), 0.0)
    volume = c.cov["tumour_volume_ml"][:, None] * weight / weight.sum(axis=1, keepdims=True)
    discordant = c.normal("lesion/discordant") < special.ndtri(les.discordant_patient_fraction)
    negative = present & discordant[:, None] & (z["lesion/receptor-negative"]
                                                < special.ndtri(les.discordant_lesion_fraction))
    bone = present & (c.cov["bone_metastases"] > 0.5)[:, None] & (z["lesion/bone"]
                                                                   < special.ndtri(les.bone_lesion_fraction))
    uptake = (np.exp(les.uptake_sigma_ln * z["dosimetry/lesion/within-patient"])
              * np.where(negative, les.negative_lesion_uptake_ratio, 1.0))
    growth = np.exp(les.growth_sigma_ln * z["lesion/growth"])
    radiosensitivity = np.exp(les.radiosensitivity_sigma_ln * z["lesion/radiosensitivity"])
    order = np.lexsort((-volume, negative, ~present), axis=1)  # last key first: present, positive, largest
    flat = (order + m * np.arange(n)[:, None]).ravel()  # as positions in the flattened rows: np.take is the fastest

    def sort(a: np.ndarray) -> np.ndarray:
        return np.take(a, flat).reshape(n, m)

    volume, negative, bone = sort(volume), sort(negative), sort(bone)  # present lesions stay in the first columns
    measurable = present & ~bone & (diameter_mm(volume) >= les.measurable_diameter_mm)
    by_size = np.argsort(np.where(measurable, -volume, np.inf), axis=1, kind="stable")
    rank = np.empty_like(by_size)
    np.put_along_axis(rank, by_size, np.arange(m)[None, :].repeat(n, axis=0), axis=1)
    target = measurable & (rank < les.target_lesions)
    role = np.where(target, ROLE_TARGET, np.where(present, ROLE_NON_TARGET, ROLE_ABSENT))
    return LesionLayout(count, volume, negative, role, sort(uptake), sort(z["dosimetry/lesion/half-life"]),
                        sort(growth), sort(radiosensitivity), sort(z["dosimetry/lesion/systematic"]))


def lesion_uptake(c: Context, scale: float = 1.0) -> np.ndarray:
    """Per lesion, ``scale x`` its uptake relative to the agent's median: ``exp(sigma z_patient) x
    receptor_expression x`` the lesion's factor (for microspheres: its tumour-to-normal ratio T/N); 0 for an absent
    lesion."""
    lay = c.layout
    patient = scale * np.exp(c.agent.tumour.inter_patient_sigma_ln * c.normal("dosimetry/lesion/inter-patient"))
    return np.where(lay.role != ROLE_ABSENT, (patient * c.cov["receptor_expression"])[:, None] * lay.uptake, 0.0)


def _lesion_values(c: Context, which: str) -> np.ndarray:
    """Per lesion: Gy/GBq = agent tumour median x ``lesion_uptake`` (x the normal liver's share per kg for
    microspheres, ``sim.partition``), or T_eff (h) = median x exp(sigma z_lesion); 0 without an agent or for an absent
    lesion."""
    n, m = len(c.cohort), c.axes.lesions
    if c.agent is None:
        return np.zeros((n, m))
    t, lay = c.agent.tumour, c.layout
    if which == "half-life":
        return np.where(lay.role != ROLE_ABSENT, t.effective_half_life_h_median * np.exp(
            t.effective_half_life_sigma_ln * lay.half_life_z), 0.0)
    if c.partition is None:
        return lesion_uptake(c, t.gy_per_gbq_median)
    return t.gy_per_gbq_median * lesion_uptake(c) * c.partition.liver_per_kg[:, None]


def _per_lesion(covariate: str) -> Callable[[Context], np.ndarray]:
    """A patient covariate, the same for each of the patient's lesions."""
    return lambda c: np.repeat(c.cov[covariate][:, None], c.axes.lesions, axis=1)


def _negative_fraction(c: Context) -> np.ndarray:
    """Receptor-negative share of a lesion's viable cells: the patient's covariate, 1 in a receptor-negative lesion."""
    return np.where(c.layout.negative, 1.0, c.cov["receptor_negative_fraction"][:, None])


def _negative_dose_ratio(c: Context) -> np.ndarray:
    """Dose of a lesion's receptor-negative cells / the lesion's dose: the cross-fire fraction in a receptor-positive
    lesion; 1 in a receptor-negative lesion, whose (non-specific) uptake all its cells share."""
    return np.where(c.layout.negative, 1.0, c.cfg.lesions.crossfire_fraction)


def _growth(c: Context) -> np.ndarray:
    return math.log(2.0) / (c.cov["doubling_time_months"] * DAYS_PER_MONTH)


def _post_progression(c: Context) -> np.ndarray:
    nh = c.cfg.natural_history
    return (nh.post_progression_death_per_month / DAYS_PER_MONTH) * (
        _growth(c) / median_growth_per_day(c.cfg)) ** nh.post_progression_growth_exponent


def _marrow_alpha(c: Context) -> np.ndarray:
    """Progenitor radiosensitivity (1/Gy): lower marrow reserve after chemotherapy, with bone metastases and with
    age (Bergsma H et al. EJNMMI 2016;43:453; Groener D et al. 2021), times a log-normal effect."""
    m, cov = c.cfg.marrow, c.cov
    return (m.alpha_per_gy * np.exp(m.alpha_sigma_ln * c.normal("marrow/alpha"))
            * m.prior_chemotherapy_multiplier ** cov["prior_chemotherapy"]
            * m.bone_metastases_multiplier ** cov["bone_metastases"]
            * np.exp(m.age_log_slope_per_year * (cov["age_years"] - 65.0)))


def _background_decline(c: Context) -> np.ndarray:
    """Background eGFR loss (mL/min/year): ageing plus hypertension and diabetes, a normal between-patient spread,
    floored at 0 (docs/model.md 4.2)."""
    k, cov = c.cfg.kidney, c.cov
    mean = (k.background_decline_ml_min_per_year + k.hypertension_decline_ml_min_per_year * cov["hypertension"]
            + k.diabetes_decline_ml_min_per_year * cov["diabetes"])
    return np.maximum(mean + k.background_decline_sd_ml_min_per_year * c.normal("kidney/background-decline"), 0.0)


def _acute_renal_day(c: Context) -> np.ndarray:
    """Day of the first acute renal event of another cause: exponential with hazard ``h0 m^(hypertension +
    diabetes)``, from the standard exponential ``-log Phi(-z)`` of the patient's normal; ``inf`` when h0 = 0."""
    k, cov = c.cfg.kidney, c.cov
    rate = (k.acute_renal_event_per_year / DAYS_PER_YEAR
            * k.acute_renal_risk_factor_multiplier ** (cov["hypertension"] + cov["diabetes"]))
    e = -special.log_ndtr(-c.normal("kidney/acute-event"))
    with np.errstate(divide="ignore"):
        return np.where(rate > 0.0, e / rate, math.inf)


def _blood_background_rate(c: Context) -> np.ndarray:
    """Per blood line, the patient's hazard (per day) of a grade >= 3 decrease of other causes before progression:
    ``marrow.background_grade3_per_year`` times the bone-metastasis multiplier where the patient has them."""
    m = c.cfg.marrow
    bone = m.background_bone_metastases_multiplier ** c.cov["bone_metastases"]
    return np.stack([m.background_grade3_per_year.get(b.name, 0.0) / DAYS_PER_YEAR * bone
                     for b in c.axes.blood_lines], axis=1)


PATIENT_INPUTS = (
    Input("patient_id", "1", ("patient",), "global patient id (key of the patient's random streams)",
          lambda c: c.cohort.patient_ids, np.int64),
    Input("age_years", "year", ("patient",), "cohort.covariates.age_years", lambda c: c.cov["age_years"]),
    Input("admin_censor_day", "day", ("patient",), "trial.accrual_months - entry + trial.follow_up_months",
          lambda c: c.cohort.admin_censor_day),
    Input("new_lesion_per_day", "1/day", ("patient",), "cohort.covariates.new_lesion_rate_per_month",
          lambda c: c.cov["new_lesion_rate_per_month"] / DAYS_PER_MONTH),
    Input("post_progression_death_per_day", "1/day", ("patient",),
          "natural_history.post_progression_death_per_month x (growth / median growth)^"
          "post_progression_growth_exponent", _post_progression),
    Input("psa0_ng_ml", "ng/mL", ("patient",), "cohort.covariates.psa_ng_ml", lambda c: c.cov["psa_ng_ml"]),
    Input("egfr_baseline_ml_min", "mL/min/1.73m2", ("patient",), "cohort.covariates.egfr_ml_min",
          lambda c: c.cov["egfr_ml_min"]),
    Input("kidney_risk_factor", "1", ("patient",), "cohort.covariates.hypertension or diabetes",
          lambda c: has_kidney_risk_factor(c.cov)),
    Input("egfr_decline_ml_min_per_year", "mL/min/year", ("patient",),
          "kidney.background_decline_ml_min_per_year + hypertension/diabetes declines + "
          "background_decline_sd_ml_min_per_year z, floored at 0", _background_decline),
    Input("acute_renal_day", "day", ("patient",),
          "exponential(kidney.acute_renal_event_per_year x acute_renal_risk_factor_multiplier^(hypertension + "
          "diabetes))", _acute_renal_day),
    Input("prior_chemotherapy", "1", ("patient",), "cohort.covariates.prior_chemotherapy",
          lambda c: c.cov["prior_chemotherapy"]),
    Input("marrow_alpha_per_gy", "1/Gy", ("patient",),
          "marrow.alpha_per_gy x exp(alpha_sigma_ln z) x multipliers^(prior chemotherapy, bone metastases) x age",
          _marrow_alpha),
    Input("blood_baseline", "line units", ("patient", "blood_line"), "cohort.covariates.<line baseline covariate>",
          lambda c: np.stack([c.cov[b.baseline_covariate] for b in c.axes.blood_lines], axis=1)),
    Input("blood_background_per_day", "1/day", ("patient", "blood_line"),
          "marrow.background_grade3_per_year.<line> x background_bone_metastases_multiplier^bone_metastases",
          _blood_background_rate),
    Input("blood_background_e", "1", ("patient", "blood_line"),
          "standard exponential -log Phi(-z), z from stream 'blood/<line>/background'",
          lambda c: np.stack([-special.log_ndtr(-c.normal(f"blood/{b.name}/background")) for b in c.axes.blood_lines],
                             axis=1)),
    Input("gy_per_gbq", "Gy/GBq", ("patient", "organ"),
          "agents.<agent>.<organ>.gy_per_gbq_median x exp(inter_patient_sigma_ln z) x uptake modifier x sink",
          _per_organ("dose")),
    Input("teff_h", "h", ("patient", "organ"),
          "agents.<agent>.<organ>.effective_half_life_h_median x exp(effective_half_life_sigma_ln z)",
          _per_organ("half-life")),
    Input("measurement_bias", "1", ("patient", "organ"),
          "exp(sqrt(systematic_fraction) x sigma_ln(error_scale x <organ>_cv) z) of the arm's dosimetry method",
          _measurement_bias),
    Input("known_teff_h", "h", ("patient", "organ"),
          "measured T_eff (teff_h x exp(sigma_ln(error_scale x half_life_cv) z)) or the population median",
          _known_teff),
    Input("lesion_count", "1", ("patient",), "cohort.covariates.lesion_count, rounded, 1 to lesions.max_lesions",
          lambda c: c.layout.count, np.int64),
    Input("lesion_volume_ml", "mL", ("patient", "lesion"),
          "cohort.covariates.tumour_volume_ml x share (lesions.volume_sigma_ln); 0: absent",
          lambda c: c.layout.volume_ml),
    Input("lesion_role", "1", ("patient", "lesion"), f"RECIST 1.1 baseline selection ({ROLE_MEANINGS})",
          lambda c: c.layout.role, np.int8),
    Input("lesion_receptor_negative", "1", ("patient", "lesion"),
          "lesions.discordant_patient_fraction, discordant_lesion_fraction", lambda c: c.layout.negative, np.int8),
    Input("lesion_stroma_fraction", "1", ("patient", "lesion"), "cohort.covariates.stroma_fraction",
          _per_lesion("stroma_fraction")),
    Input("lesion_negative_fraction", "1", ("patient", "lesion"),
          "cohort.covariates.receptor_negative_fraction (1: receptor-negative lesion)", _negative_fraction),
    Input("lesion_negative_dose_ratio", "1", ("patient", "lesion"),
          "lesions.crossfire_fraction (1: receptor-negative lesion)", _negative_dose_ratio),
    Input("lesion_growth_per_day", "1/day", ("patient", "lesion"),
          "ln 2 / cohort.covariates.doubling_time_months x exp(lesions.growth_sigma_ln z_j)",
          lambda c: _growth(c)[:, None] * c.layout.growth),
    Input("lesion_alpha_per_gy", "1/Gy", ("patient", "lesion"),
          "cohort.covariates.tumour_alpha_per_gy x exp(lesions.radiosensitivity_sigma_ln z_j)",
          lambda c: c.cov["tumour_alpha_per_gy"][:, None] * c.layout.radiosensitivity),
    Input("lesion_gy_per_gbq", "Gy/GBq", ("patient", "lesion"),
          "agents.<agent>.tumour.gy_per_gbq_median x exp(inter_patient_sigma_ln z) x receptor_expression x "
          "exp(lesions.uptake_sigma_ln z_j) (x lesions.negative_lesion_uptake_ratio)",
          lambda c: _lesion_values(c, "dose")),
    Input("lesion_measurement_bias", "1", ("patient", "lesion"),
          "exp(sqrt(systematic_fraction) x sigma_ln(error_scale x tumour_cv) z_j) of the arm's dosimetry method",
          lambda c: np.exp(c.measurement_sigma("tumour", "systematic") * c.layout.systematic_z)),
    Input("lesion_teff_h", "h", ("patient", "lesion"),
          "agents.<agent>.tumour.effective_half_life_h_median x exp(effective_half_life_sigma_ln z_j)",
          lambda c: _lesion_values(c, "half-life")),
    Input("pre_progression_death_multiplier", "1", ("patient",),
          "natural_history.child_pugh_b_death_multiplier with cohort.covariates.child_pugh_b, else 1",
          lambda c: np.where(c.cov["child_pugh_b"] > 0.5, c.cfg.natural_history.child_pugh_b_death_multiplier, 1.0)),
    Input("planned_activity_gbq", "GBq", ("patient",),
          "arms.planning: the first cycle's activity from the predicted doses, at most arms.activity_gbq "
          "(NaN: not planned)", lambda c: _planned_activity(c)),
)


def _planned_activity(c: Context) -> np.ndarray:
    """The first cycle's activity planned from predictive dosimetry (``sim.partition.planned_activity``,
    docs/model.md 5.6): each predicted Gy/GBq is the patient's true one x ``exp(sigma_ln(cv) z)``, with the planning
    method's CV and the patient's stream ``planning/<organ>`` (``planning/lesion``, item j); NaN without planning."""
    plan = getattr(c.arm, "planning", None)
    if plan is None:
        return np.full(len(c.cohort), np.nan)
    method, lay = c.cfg.dosimetry_methods[plan.method], c.layout
    organs = [o for o in c.axes.organs if o.name in {"liver", *plan.limits_gy}]
    streams = [(f"planning/{o.name}", 0) for o in organs] + [("planning/lesion", j) for j in range(c.axes.lesions)]
    z = rng.first_normals(c.cfg.trial.seed, c.cohort.patient_ids, streams)
    predicted = {o.name: _organ_values(c, o, "dose") * np.exp(sigma_ln(getattr(method, f"{o.name}_cv")) * z[:, k])
                 for k, o in enumerate(organs)}
    lesions = _lesion_values(c, "dose") * np.exp(sigma_ln(method.tumour_cv) * z[:, len(organs):])
    perfused = (lay.role != ROLE_ABSENT) & ~lay.negative  # the lesions the microspheres reach
    if plan.target == "index_lesion":  # lesion 0: the largest perfused one, where there is one
        target = np.where(perfused[:, 0], lesions[:, 0], 0.0)
    else:  # the mean over the perfused volume: normal liver and perfused tumour
        tumour_ml, liver_ml = np.where(perfused, lay.volume_ml, 0.0), c.cov["perfused_liver_ml"]
        target = ((predicted["liver"] * liver_ml + (lesions * tumour_ml).sum(axis=1))
                  / (liver_ml + tumour_ml.sum(axis=1)))
    limits = [(limit, predicted[organ]) for organ, limit in plan.limits_gy.items()]
    return partition.planned_activity(target, plan.target_gy, limits, c.arm.activities()[0])


# --------------------------------------------------------------------------------------------------------------
# Organs, lesions, blood lines, kidney, events


def _organ_cfg(c: Context, organ: Organ, section: str, field: str) -> float:
    table = getattr(c.cfg.radiobiology, organ.name) if section == "radiobiology" else getattr(c.agent, organ.name)
    return getattr(table, field)


def _intra_sigma(c: Context, organ: Organ) -> float:
    dosimetry = getattr(c.agent, organ.name, None) if c.agent is not None else None
    return sigma_ln(dosimetry.intra_patient_cv) if dosimetry is not None else 0.0


ORGAN_INPUTS = (
    Input("alpha_beta_gy", "Gy", ("organ",), "radiobiology.<organ>.alpha_beta_gy",
          lambda c: [_organ_cfg(c, o, "radiobiology", "alpha_beta_gy") for o in c.axes.organs]),
    Input("repair_h", "h", ("organ",), "radiobiology.<organ>.repair_half_time_h",
          lambda c: [_organ_cfg(c, o, "radiobiology", "repair_half_time_h") for o in c.axes.organs]),
    Input("intra_sigma", "1", ("organ",), "sigma_ln(agents.<agent>.<organ>.intra_patient_cv)",
          lambda c: [_intra_sigma(c, o) for o in c.axes.organs]),
    Input("measurement_sigma", "1", ("organ",),
          "per-cycle part: sqrt(1 - systematic_fraction) x sigma_ln(arms.dosimetry.error_scale x "
          "dosimetry_methods.<method>.<organ>_cv); 0 without dosimetry",
          lambda c: [c.measurement_sigma(o.name) for o in c.axes.organs]),
    Input("intra_stream", "1", ("organ",), "stream 'dosimetry/<organ>/intra-patient' (counter: cycle)",
          lambda c: [rng.stream_id(f"dosimetry/{o.name}/intra-patient") for o in c.axes.organs], np.uint64),
    Input("measurement_stream", "1", ("organ",), "stream 'dosimetry/<organ>/measurement' (counter: cycle)",
          lambda c: [rng.stream_id(f"dosimetry/{o.name}/measurement") for o in c.axes.organs], np.uint64),
    Input("toxicity_bed50_gy", "Gy", ("organ",), "organ_toxicity.<organ>.bed50_gy (inf: no such model)",
          lambda c: [_toxicity(c, o, "bed50_gy", math.inf) for o in c.axes.organs]),
    Input("toxicity_m", "1", ("organ",), "organ_toxicity.<organ>.lkb_m",
          lambda c: [_toxicity(c, o, "lkb_m", 1.0) for o in c.axes.organs]),
    Input("toxicity_grade2_ratio", "1", ("organ",), "organ_toxicity.<organ>.grade2_bed50_ratio",
          lambda c: [_toxicity(c, o, "grade2_bed50_ratio", 1.0) for o in c.axes.organs]),
    Input("toxicity_other_cause", "1", ("organ",), "organ_toxicity.<organ>.other_cause_probability",
          lambda c: [_toxicity(c, o, "other_cause_probability", 0.0) for o in c.axes.organs]),
    Input("toxicity_stream", "1", ("organ",), "stream '<organ>/toxicity'",
          lambda c: [rng.stream_id(f"{o.name}/toxicity") for o in c.axes.organs], np.uint64),
)


def _toxicity(c: Context, organ: Organ, field: str, none: float) -> float:
    return field_or(c.cfg.organ_toxicity.get(organ.name), field, none)

LESION_INPUTS = (
    Input("alpha_beta_gy", "Gy", (), "radiobiology.tumour.alpha_beta_gy",
          lambda c: c.cfg.radiobiology.tumour.alpha_beta_gy),
    Input("repair_h", "h", (), "radiobiology.tumour.repair_half_time_h",
          lambda c: c.cfg.radiobiology.tumour.repair_half_time_h),
    Input("intra_sigma", "1", (), "sigma_ln(agents.<agent>.tumour.intra_patient_cv)",
          lambda c: sigma_ln(c.agent.tumour.intra_patient_cv) if c.agent is not None else 0.0),
    Input("measurement_sigma", "1", (), "per-cycle part of sigma_ln(arms.dosimetry.error_scale x "
          "dosimetry_methods.<method>.tumour_cv)",
          lambda c: c.measurement_sigma("tumour")),
    Input("dose_decline", "1", (), "agents.<agent>.tumour.dose_decline_per_cycle",
          lambda c: c.agent.tumour.dose_decline_per_cycle if c.agent is not None else 0.0),
    Input("dead_clearance_per_day", "1/day", (), "ln 2 / tumour.dead_cell_clearance_half_life_days",
          lambda c: math.log(2.0) / c.cfg.tumour.dead_cell_clearance_half_life_days),
    Input("new_lesion_exponent", "1", (), "tumour.new_lesion_burden_exponent",
          lambda c: c.cfg.tumour.new_lesion_burden_exponent),
    Input("stroma_relax_per_day", "1/day", (), "ln 2 / lesions.stroma_half_life_days (0: constant stroma)",
          lambda c: 0.0 if c.cfg.lesions.stroma_half_life_days is None
          else math.log(2.0) / c.cfg.lesions.stroma_half_life_days),
    Input("psa_modelled", "1", (), "a [psa] section is given", lambda c: c.cfg.psa is not None, np.bool_),
    Input("psa_clearance_per_day", "1/day", (), "ln 2 / psa.half_life_days (0: no PSA)",
          lambda c: math.log(2.0) / c.cfg.psa.half_life_days if c.cfg.psa is not None else 0.0),
    Input("psa_negative_ratio", "1", (), "psa.negative_secretion_ratio",
          lambda c: c.cfg.psa.negative_secretion_ratio if c.cfg.psa is not None else 1.0),
    Input("psa_dead_ratio", "1", (), "psa.dead_secretion_ratio",
          lambda c: c.cfg.psa.dead_secretion_ratio if c.cfg.psa is not None else 0.0),
    Input("disappeared_ml", "mL", (), "volume of a sphere of lesions.disappeared_diameter_mm",
          lambda c: math.pi / 6.0 * (c.cfg.lesions.disappeared_diameter_mm / 10.0) ** 3),
    Input("progression_absolute_mm", "mm", (), "lesions.progression_absolute_mm",
          lambda c: c.cfg.lesions.progression_absolute_mm),
    Input("non_target_progression_ratio", "1", (), "lesions.non_target_progression_ratio",
          lambda c: c.cfg.lesions.non_target_progression_ratio),
    Input("resection_probability", "1", (), "resection.probability (0: no resection)",
          lambda c: field_or(c.cfg.resection, "probability", 0.0)),
    Input("resection_viable_ratio", "1", (), "resection.viable_ratio",
          lambda c: field_or(c.cfg.resection, "viable_ratio", 0.0)),
    Input("resection_residual_ml", "mL", (), "resection.residual_ml",
          lambda c: field_or(c.cfg.resection, "residual_ml", 0.0)),
    Input("resection_window_days", "day", (), "resection.window_months",
          lambda c: field_or(c.cfg.resection, "window_months", 0.0) * DAYS_PER_MONTH),
    Input("confirm_response", "1", (), "tumour.response_confirmation",
          lambda c: c.cfg.tumour.response_confirmation, np.bool_),
)


def _kinetics(column: int) -> Callable[[Context], list[float]]:
    return lambda c: [b.kinetics(c.cfg.marrow)[column] for b in c.axes.blood_lines]


BLOOD_INPUTS = (
    Input("organ", "1", (), "index of the marrow on the organ axis", lambda c: c.axes.organ("marrow"), np.int64),
    Input("background_after_progression", "1", (), "marrow.background_after_progression_multiplier",
          lambda c: c.cfg.marrow.background_after_progression_multiplier),
    Input("mtt_days", "day", ("blood_line",), "marrow.mtt_days; marrow.<line>.mtt_days", _kinetics(0)),
    Input("lifespan_days", "day", ("blood_line",), "marrow.platelet_lifespan_days; marrow.<line>.lifespan_days",
          _kinetics(1)),
    Input("gamma", "1", ("blood_line",), "marrow.feedback_gamma; marrow.<line>.feedback_gamma", _kinetics(2)),
    Input("alpha_ratio", "1", ("blood_line",), "1 for platelets; marrow.<line>.alpha_ratio", _kinetics(3)),
    Input("reserve_ratio", "1", ("blood_line",), "1 for platelets; marrow.<line>.reserve_ratio", _kinetics(4)),
    Input("grade_below", "line units", ("blood_line", "grade"), "CTCAE v5.0 thresholds (sim/kernels/marrow.py)",
          lambda c: [b.grade_below for b in c.axes.blood_lines]),
    Input("reserve_per_gy", "1/Gy", (), "marrow.reserve_loss_per_gy", lambda c: c.cfg.marrow.reserve_loss_per_gy),
    Input("first_step_days", "day", (), "marrow.max_step_days", lambda c: c.cfg.marrow.max_step_days),
    Input("window_days", "day", (), "marrow.window_after_last_cycle_days",
          lambda c: c.cfg.marrow.window_after_last_cycle_days),
    Input("fatal_grade4_probability", "1", (), "marrow.fatal_grade4_probability",
          lambda c: c.cfg.marrow.fatal_grade4_probability),
    Input("fatal_line", "1", (), f"index of {FATAL_LINE} on the blood_line axis",
          lambda c: [b.name for b in c.axes.blood_lines].index(FATAL_LINE), np.int64),
)

KIDNEY_INPUTS = (
    Input("organ", "1", (), "index of the kidney on the organ axis", lambda c: c.axes.organ("kidney"), np.int64),
    Input("bed50_gy", "Gy", (), "kidney.bed50_gy", lambda c: c.cfg.kidney.bed50_gy),
    Input("lkb_m", "1", (), "kidney.lkb_m", lambda c: c.cfg.kidney.lkb_m),
    Input("risk_factor_bed50_ratio", "1", (), "kidney.risk_factor_bed50_ratio",
          lambda c: c.cfg.kidney.risk_factor_bed50_ratio),
    Input("nephropathy_latency_days", "day", (), "kidney.nephropathy_latency_months_median",
          lambda c: c.cfg.kidney.nephropathy_latency_months_median * DAYS_PER_MONTH),
    Input("nephropathy_latency_sigma", "1", (), "kidney.nephropathy_latency_sigma_ln",
          lambda c: c.cfg.kidney.nephropathy_latency_sigma_ln),
    Input("nephropathy_egfr_loss", "1", (), "kidney.nephropathy_egfr_loss_fraction",
          lambda c: c.cfg.kidney.nephropathy_egfr_loss_fraction),
    Input("radiation_decline_per_gy_year", "1/(Gy year)", (), "kidney.radiation_decline_per_gy_per_year",
          lambda c: c.cfg.kidney.radiation_decline_per_gy_per_year),
    Input("risk_factor_decline_multiplier", "1", (), "kidney.risk_factor_decline_multiplier",
          lambda c: c.cfg.kidney.risk_factor_decline_multiplier),
    Input("subclinical_latency_days", "day", (), "kidney.subclinical_latency_months",
          lambda c: c.cfg.kidney.subclinical_latency_months * DAYS_PER_MONTH),
)

EVENT_INPUTS = (
    Input("background_hazard_65_per_year", "1/year", (), "natural_history.background_hazard_at_65_per_year",
          lambda c: c.cfg.natural_history.background_hazard_at_65_per_year),
    Input("background_slope_per_year", "1/year", (), "natural_history.background_hazard_log_slope_per_year",
          lambda c: c.cfg.natural_history.background_hazard_log_slope_per_year),
    Input("pre_progression_death_per_day", "1/day", (), "natural_history.pre_progression_death_per_month",
          lambda c: c.cfg.natural_history.pre_progression_death_per_month / DAYS_PER_MONTH),
    Input("dropout_per_day", "1/day", (), "trial.dropout_per_year",
          lambda c: c.cfg.trial.dropout_per_year / DAYS_PER_YEAR),
    Input("mds_risk_per_gy", "1/Gy", (), "late_effects.mds_aml_risk_per_gy",
          lambda c: c.cfg.late_effects.mds_aml_risk_per_gy),
    Input("mds_chemo_multiplier", "1", (), "late_effects.mds_aml_prior_chemotherapy_multiplier",
          lambda c: c.cfg.late_effects.mds_aml_prior_chemotherapy_multiplier),
    Input("mds_latency_days", "day", (), "late_effects.mds_aml_latency_months_median",
          lambda c: c.cfg.late_effects.mds_aml_latency_months_median * DAYS_PER_MONTH),
    Input("mds_latency_sigma", "1", (), "late_effects.mds_aml_latency_sigma_ln",
          lambda c: c.cfg.late_effects.mds_aml_latency_sigma_ln),
    Input("mds_death_per_day", "1/day", (), "late_effects.mds_aml_death_per_month",
          lambda c: c.cfg.late_effects.mds_aml_death_per_month / DAYS_PER_MONTH),
)


# --------------------------------------------------------------------------------------------------------------
# Regimen (policy)


def _activities(c: Context) -> np.ndarray:
    """Nominal GBq per cycle (at least one entry, so the kernel's types are the same for a control arm)."""
    if isinstance(c.arm, FixedArm):
        return np.asarray(c.arm.activities(), dtype=np.float64)
    if isinstance(c.arm, GuidedArm):
        return np.full(c.arm.cycles, c.arm.activity_gbq)
    return np.zeros(1)


def _line_rule(c: Context, which: str) -> list[float]:
    """Per blood line, the grade that triggers the rule (never, when the line has no such rule or the arm does not
    set it)."""
    dm = c.dose_modification()
    fields = [getattr(b, which) for b in c.axes.blood_lines]
    values = [getattr(dm, f) if f is not None else None for f in fields]
    return [policy.NEVER_GRADE if v is None else float(v) for v in values]


def _measured_cycles(c: Context) -> int:
    dosimetry = getattr(c.arm, "dosimetry", None)
    if dosimetry is None:
        return 0
    return c.arm.cycles if dosimetry.measured_cycles is None else min(dosimetry.measured_cycles, c.arm.cycles)


def _retreatment(c: Context, field: str, none: float) -> float:
    return field_or(getattr(c.arm, "retreatment", None), field, none)


def _kidney_limits(c: Context) -> tuple[float, float]:
    return c.arm.kidney_limits() if isinstance(c.arm, GuidedArm) else (math.inf, math.inf)


REGIMEN_INPUTS = (
    Input("n_cycles", "1", (), "arms.cycles (0: control)", lambda c: arm_cycles(c.arm), np.int64),
    Input("interval_days", "day", (), "arms.interval_weeks",
          lambda c: getattr(c.arm, "interval_weeks", 1.0 / DAYS_PER_WEEK) * DAYS_PER_WEEK),
    Input("continue_after", "1", (), "arms.continue_after_cycle (0: none)",
          lambda c: getattr(c.arm, "continue_after_cycle", None) or 0, np.int64),
    Input("activities_gbq", "GBq", ("cycle",), "arms.activity_gbq (per cycle)", _activities),
    Input("rule", "1", (), "arms.rule (sim/kernels/policy.py RULE_*)",
          lambda c: policy.RULES[c.arm.rule] if isinstance(c.arm, GuidedArm) else policy.RULE_FIXED, np.int64),
    Input("guided_activity_gbq", "GBq", (), "arms.activity_gbq (guided)", lambda c: c.guided("activity_gbq", 0.0)),
    Input("kidney_limit_gy", "Gy", (), "arms.kidney_bed_limit_gy", lambda c: _kidney_limits(c)[0]),
    Input("kidney_limit_risk_factor_gy", "Gy", (), "arms.kidney_bed_limit_risk_factor_gy (default: the limit)",
          lambda c: _kidney_limits(c)[1]),
    Input("marrow_limit_gy", "Gy", (), "arms.marrow_limit_gy", lambda c: c.guided("marrow_limit_gy", 0.0)),
    Input("target_gy", "Gy", (), "arms.target_gy", lambda c: c.guided("target_gy", math.inf)),
    Input("target_is_bed", "1", (), "arms.target_quantity == 'bed'",
          lambda c: c.guided("target_quantity", "bed") == "bed", np.bool_),
    Input("min_activity_gbq", "GBq", (), "arms.min_activity_gbq", lambda c: c.guided("min_activity_gbq", 0.0)),
    Input("max_activity_gbq", "GBq", (), "arms.max_activity_gbq", lambda c: c.guided("max_activity_gbq", math.inf)),
    Input("reduce_last_cycle", "1", (), "arms.reduce_last_cycle_to_limit",
          lambda c: c.guided("reduce_last_cycle_to_limit", False), np.bool_),
    Input("measured_cycles", "1", (), "arms.dosimetry.measured_cycles (all cycles if unset; 0 without dosimetry)",
          _measured_cycles, np.int64),
    Input("stop_at_psa_progression", "1", (), "arms.stop_at_psa_progression",
          lambda c: getattr(c.arm, "stop_at_psa_progression", False), np.bool_),
    Input("pause_after", "1", (), "arms.psa_pause.after_cycle (0: no pause)",
          lambda c: field_or(getattr(c.arm, "psa_pause", None), "after_cycle", 0), np.int64),
    Input("pause_psa_ratio", "1", (), "arms.psa_pause.psa_ratio",
          lambda c: field_or(getattr(c.arm, "psa_pause", None), "psa_ratio", 0.0)),
    Input("retreat_cycles", "1", (), "arms.retreatment.cycles (0: no re-treatment)",
          lambda c: _retreatment(c, "cycles", 0), np.int64),
    Input("retreat_only_after_pause", "1", (), "arms.retreatment.only_after_pause",
          lambda c: _retreatment(c, "only_after_pause", False), np.bool_),
    Input("retreat_min_day", "day", (), "arms.retreatment.min_pfs_months",
          lambda c: _retreatment(c, "min_pfs_months", math.inf) * DAYS_PER_MONTH),
    Input("retreat_activity_gbq", "GBq", (), "arms.retreatment.activity_gbq",
          lambda c: _retreatment(c, "activity_gbq", 0.0)),
    Input("retreat_interval_days", "day", (), "arms.retreatment.interval_weeks",
          lambda c: _retreatment(c, "interval_weeks", 1.0) * DAYS_PER_WEEK),
    Input("retreat_kidney_limit_gy", "Gy", (), "arms.retreatment.kidney_bed_limit_gy (inf: none)",
          lambda c: _retreatment(c, "kidney_bed_limit_gy", math.inf)),
    Input("withhold_grade", "1", ("blood_line",), "arms.dose_modification.withhold_<line>_grade",
          lambda c: _line_rule(c, "withhold_rule")),
    Input("reduce_grade", "1", ("blood_line",), "arms.dose_modification.reduce_after_<line>_grade",
          lambda c: _line_rule(c, "reduce_rule")),
    Input("withhold_egfr_below_ml_min", "mL/min", (), "arms.dose_modification.withhold_egfr_below_ml_min (0: never)",
          lambda c: c.dose_modification().withhold_egfr_below_ml_min or 0.0),
    Input("withhold_egfr_drop", "1", (), "arms.dose_modification.withhold_egfr_drop_fraction (1: never)",
          lambda c: c.dose_modification().withhold_egfr_drop_fraction or 1.0),
    Input("reduction_fraction", "1", (), "arms.dose_modification.reduction_fraction",
          lambda c: c.dose_modification().reduction_fraction),
    Input("restore_after_tolerated", "1", (), "arms.dose_modification.restore_after_tolerated",
          lambda c: c.dose_modification().restore_after_tolerated, np.bool_),
    Input("max_reductions", "1", (), "arms.dose_modification.max_reductions",
          lambda c: c.dose_modification().max_reductions, np.int64),
    Input("recheck_days", "day", (), "arms.dose_modification.recheck_weeks",
          lambda c: c.dose_modification().recheck_weeks * DAYS_PER_WEEK),
    Input("max_delay_days", "day", (), "arms.dose_modification.max_delay_weeks",
          lambda c: c.dose_modification().max_delay_weeks * DAYS_PER_WEEK),
    Input("reduce_if_withheld", "1", (), "arms.dose_modification.reduce_after_withholding",
          lambda c: c.dose_modification().reduce_after_withholding, np.bool_),
)

GROUPS = {"Patients": PATIENT_INPUTS, "Organs": ORGAN_INPUTS, "Lesions": LESION_INPUTS, "Blood": BLOOD_INPUTS,
          "Kidney": KIDNEY_INPUTS, "Events": EVENT_INPUTS, "Regimen": REGIMEN_INPUTS}
Patients = namedtuple("Patients", [q.name for q in PATIENT_INPUTS])
Organs = namedtuple("Organs", [q.name for q in ORGAN_INPUTS])
Lesions = namedtuple("Lesions", [q.name for q in LESION_INPUTS])
Blood = namedtuple("Blood", [q.name for q in BLOOD_INPUTS])
Kidney = namedtuple("Kidney", [q.name for q in KIDNEY_INPUTS])
Events = namedtuple("Events", [q.name for q in EVENT_INPUTS])
Regimen = namedtuple("Regimen", [q.name for q in REGIMEN_INPUTS])
TYPES = {"Patients": Patients, "Organs": Organs, "Lesions": Lesions, "Blood": Blood, "Kidney": Kidney,
         "Events": Events, "Regimen": Regimen}


def _cast(q: Input, value: Any) -> Any:  # noqa: ANN401 - a scalar or an array
    """``value`` in ``q``'s declared dtype: a C-contiguous array when ``q`` has dims, else a NumPy scalar."""
    return np.ascontiguousarray(value, dtype=q.dtype) if q.dims else q.dtype(value)


def build(group: str, c: Context) -> tuple:
    """The named tuple of one group, every field built by its declared transform."""
    return TYPES[group](*(_cast(q, q.build(c)) for q in GROUPS[group]))


def make(group: str, **values: Any) -> tuple:  # noqa: ANN401
    """A group's named tuple from explicit values (tests, benchmarks), each cast to its declared dtype."""
    fields = {q.name: q for q in GROUPS[group]}
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"{group} has no inputs {sorted(unknown)}")
    missing = set(fields) - set(values)
    if missing:
        raise KeyError(f"{group} inputs required: {sorted(missing)}")
    return TYPES[group](*(_cast(q, values[name]) for name, q in fields.items()))


@dataclass(frozen=True)
class KernelInputs:
    """Everything one arm's kernel call reads, in the kernel's argument order."""

    seed: int
    patients: Patients
    organs: Organs
    lesions: Lesions
    blood: Blood
    kidney: Kidney
    events: Events
    regimen: Regimen
    scans: np.ndarray

    def args(self) -> tuple:
        return (self.seed, self.patients, self.organs, self.lesions, self.blood, self.kidney, self.events,
                self.regimen, self.scans)

    def patients_at(self, rows: slice | np.ndarray) -> KernelInputs:
        """The same arm for some of its patients: every per-patient input indexed along its first axis (a slice
        gives views)."""
        return dataclasses.replace(self, patients=Patients(*(values[rows] for values in self.patients)))


def translate(cfg: Config, arm_name: str, patients: Cohort | PatientDraws) -> KernelInputs:
    """The kernel inputs of arm ``arm_name`` of ``cfg`` for ``patients`` (a cohort, any chunk, or its
    ``PatientDraws`` when several arms translate it, so that their shared draws are drawn once): every group, in
    the kernel's argument order (that of ``GROUPS``)."""
    draws = patients if isinstance(patients, PatientDraws) else PatientDraws(cfg, axes_of(cfg), patients)
    c = Context(cfg.arm(arm_name), draws)
    return KernelInputs(cfg.trial.seed, *(build(g, c) for g in GROUPS), scan_days(cfg))


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
