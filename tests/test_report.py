"""``rptsim report``: figures and the Markdown page from a results file, and clean failures that write nothing."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from sim import analysis, cli, effect_figures, figures, outcomes, report

from .conftest import ROOT, load_small

BASE_FIGURES = {"km_pfs.png", "km_os.png", "doses.png", "waterfall.png", "lesion_dose_response.png", "toxicity.png",
                "incidence.png", "blood_course.png", "kidney_course.png",
                "swimmer.png", "effects_forest.png",
                "effects_tradeoff.png", "individual_gains.png", "benefit_by_covariate.png"}


@pytest.fixture(scope="module")
def netter1_h5(tmp_path_factory, netter1_dataset) -> Path:
    path = tmp_path_factory.mktemp("netter1") / "netter1.h5"
    outcomes.write(netter1_dataset, path)
    return path


@pytest.fixture(scope="module")
def guided_h5(tmp_path_factory) -> Path:
    from sim import engine

    path = tmp_path_factory.mktemp("guided") / "guided.h5"
    outcomes.write(engine.run(load_small("guided_vs_fixed", patients=150)), path)
    return path


@pytest.fixture(scope="module")
def netter1_report(netter1_h5) -> Path:
    rc = cli.main(["report", str(netter1_h5)])
    assert rc == 0
    return netter1_h5.with_name("netter1_report")


def _expected_sizes(path: Path) -> dict[str, tuple[int, int]]:
    """Pixel size of every figure, drawn again here from the same file."""
    plt = figures._pyplot()
    sizes = {}
    with outcomes.read(path) as ds:
        drawers = {**figures.figures(ds), **effect_figures.effect_figures(ds, analysis.summary(ds))}
        for name, draw in drawers.items():
            fig = draw()
            w, h = fig.get_size_inches() * figures.DPI
            sizes[name] = (round(w), round(h))
            plt.close(fig)
    return sizes


def test_report_writes_readable_figures(netter1_h5, netter1_report):
    files = {p.name for p in netter1_report.iterdir()}
    assert files == BASE_FIGURES | {"index.md"}
    expected = _expected_sizes(netter1_h5)
    assert set(expected) == BASE_FIGURES
    for name, size in expected.items():
        path = netter1_report / name
        assert path.stat().st_size > 10_000
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == size
            pixels = np.asarray(img.convert("L"))
        assert 900 <= size[0] <= 2000 and 600 <= size[1] <= 1600  # legible, not poster-sized
        assert np.unique(pixels).size > 20  # drawn, not blank
    import matplotlib.image

    assert matplotlib.image.imread(netter1_report / "km_pfs.png").shape[:2] == expected["km_pfs.png"][::-1]


def test_page_has_table_comparisons_and_every_figure(netter1_h5, netter1_report):
    page = (netter1_report / "index.md").read_text(encoding="utf-8")
    with outcomes.read(netter1_h5) as ds:
        summ = analysis.summary(ds)
    first = page.splitlines()[0]
    assert first.startswith("# NETTER-1") and str(summ["seed"]) in first and "400" in first
    assert f"rptsim {summ['rptsim_version']}" in first
    header, rows = report.summary_cells(summ)
    assert "|  | " + " | ".join(header) + " |" in page
    for label, cells in rows:  # the same rows as the terminal table
        assert f"| {label} | " + " | ".join(cells) + " |" in page
    # no dosimetry target, cost, PSA, EASL (planned arms), pause, resection or re-treatment in NETTER-1 (and no late
    # toxicity of an optional organ, whose rows come with the organ)
    assert len(rows) == len(report.ROWS) + len(report.EFFECT_ROWS) - 7
    assert "PFS HR" in page and "RMST PFS (months)" in page and "Newcombe's paired interval" in page
    comparison = summ["comparisons"]["lu177_dotatate vs control"]
    assert f"{comparison['pfs_hr']:.2f} (" in page
    for name in BASE_FIGURES:
        assert f"]({name})" in page
    assert "activity_vs_kidney" not in page
    assert page.count("*Figure ") == len(BASE_FIGURES)
    assert all(len(line) > 0 for line in page.splitlines() if line.startswith("*Figure "))


def test_toxicity_bars_show_summary_rates(netter1_h5):
    with outcomes.read(netter1_h5) as ds:
        summ = analysis.summary(ds)
        level = outcomes.patient_level(ds)
        bars = figures.toxicity_bars(ds)
        assert [key for _, key in bars[:2]] == ["grade3plus_thrombocytopenia_rate", "grade3plus_neutropenia_rate"]
        for arm in figures._arms(ds):
            flags = {**analysis.toxicity_flags(level.sel(arm=arm)),
                     figures.ORR_BAR[1]: analysis.objective_response(level.sel(arm=arm))}
            for _, key in [*bars, figures.ORR_BAR]:
                k, n = int(flags[key].sum()), flags[key].size
                assert n == ds.sizes["patient"] and round(k / n, 4) == summ["arms"][arm][key], (arm, key)


def test_guided_scatter_only_with_guided_arms(guided_h5, netter1_h5, netter1_report, tmp_path):
    out = tmp_path / "guided_pages"
    assert cli.main(["report", str(guided_h5), "-o", str(out)]) == 0
    files = {p.name for p in out.iterdir()}
    assert files == BASE_FIGURES | {"index.md", "activity_vs_kidney.png"}
    with Image.open(out / "activity_vs_kidney.png") as img:
        assert img.size[0] > 900 and img.size[1] > 600
    assert "](activity_vs_kidney.png)" in (out / "index.md").read_text(encoding="utf-8")
    assert not (netter1_report / "activity_vs_kidney.png").exists()
    assert cli.main(["report", str(netter1_h5), "-o", str(out)]) == 0  # same folder, no guided
    assert {p.name for p in out.iterdir()} == BASE_FIGURES | {"index.md"}  # the stale scatter is gone
    with outcomes.read(guided_h5) as ds:
        assert figures.guided_arms(ds) == ["iluminet", "p_prrt", "tumour_guided"]
        assert figures.treated_arms(ds)[0] == "fixed_netter1"
        colours = figures.arm_colours(ds)
        assert len(set(colours.values())) == len(colours)


def test_foreign_hdf5_exits_2_and_writes_nothing(tmp_path, capsys):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as fh:
        fh["x"] = np.arange(3)
    before = set(tmp_path.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning printed on stderr would break the one-line message
        rc = cli.main(["report", str(foreign)])
    err = capsys.readouterr().err
    assert rc == 2 and "not an rptsim outcomes file" in err and str(foreign) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert set(tmp_path.iterdir()) == before


def test_not_hdf5_exits_2_with_one_line(tmp_path, capsys):
    text = tmp_path / "notes.h5"
    text.write_text("not\nan\nhdf5 file\n")
    rc = cli.main(["report", str(text), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a readable HDF5/netCDF file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_file_exits_2_and_writes_nothing(tmp_path, capsys):
    rc = cli.main(["report", str(tmp_path / "absent.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "absent.h5: outcomes file not found" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_unwritable_output_exits_2(netter1_h5, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = cli.main(["report", str(netter1_h5), "-o", str(blocker / "pages")])
    assert rc == 2 and "not writable" in capsys.readouterr().err


def test_default_folder():
    assert cli.report_folder(Path("results/netter1.h5")) == Path("results/netter1_report")
    assert cli.report_folder(Path("a/b.nc")) == Path("a/b.nc_report")


def test_import_stays_light():
    code = "import sys, sim, sim.cli, sim.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_effect_figures_draw_the_summary_values(guided_h5):
    """The forest and trade-off plots show the summary's paired effects, arm by arm (read back from the axes)."""
    plt = figures._pyplot()
    with outcomes.read(guided_h5) as ds:
        summ = analysis.summary(ds)
        forest = effect_figures.forest_figure(ds, summ)
        tradeoff = effect_figures.tradeoff_figure(ds, summ)
    compared = [k.split(" vs ")[0] for k in summ["comparisons"]]
    assert len(compared) == 3
    rmst_panel = forest.axes[1]
    points = [np.asarray(line.get_xdata(), float) for line in rmst_panel.lines if line.get_marker() == "o"]
    for arm, xs in zip(compared, points, strict=True):
        c = summ["comparisons"][f"{arm} vs fixed_netter1"]
        np.testing.assert_allclose(xs, [c["rmst_pfs_difference_months"], c["rmst_os_difference_months"]])
    renal_panel = tradeoff.axes[0]
    dots = [(line.get_xdata()[0], line.get_ydata()[0]) for line in renal_panel.lines if len(line.get_xdata()) == 1
            and line.get_marker() == "o"]
    for arm, (x, y) in zip(compared, dots, strict=True):
        c = summ["comparisons"][f"{arm} vs fixed_netter1"]
        assert x == pytest.approx(100 * c["toxicity_rate_differences"]["grade3plus_renal_rate"])
        assert y == pytest.approx(c["rmst_pfs_difference_months"])
    plt.close(forest)
    plt.close(tradeoff)


def test_summary_rows_name_the_trials_end_point_and_skip_empty_rows(netter1_run):
    """VISION's progression end point is radiographic (rPFS) in every row label; rows that say "-" for every arm
    (no guided arm: no dosimetry target; no [costs]: no cost) are left out, those that mean something are kept."""
    summary = analysis.summary(netter1_run)
    labels = [label for label, _ in report.summary_cells(summary)[1]]
    assert "Median PFS (months)" in labels and "PFS HR vs reference (95 % CI)" in labels
    assert "Reached dosimetry target" not in labels and "Cost per patient, mean" not in labels
    assert "Kidney BED spread (CV)" in labels  # "-" for the control arm only
    radiographic = report.summary_cells({**summary, "pfs_name": "rPFS"})[1]
    assert [label for label, _ in radiographic] == [label.replace("PFS", "rPFS") for label in labels]


def test_rows_of_an_organ_no_arm_irradiates_are_left_out(netter1_run):
    """As with 90Y microspheres: no arm gives the kidneys or the marrow a dose. Their dose rows go; their toxicity
    rows go where every arm shows 0, and stay where one shows a background rate; a control arm's zero dose beside a
    treated arm keeps its rows."""
    summary = analysis.summary(netter1_run)
    labels = [label for label, _ in report.summary_cells(summary)[1]]
    assert {"Kidney dose / BED, median (Gy)", "Marrow dose, median (Gy)", "MDS/AML"} <= set(labels)
    arms = {}
    for name, arm in summary["arms"].items():
        arms[name] = {**arm, "kidney_dose_gy_median": 0.0, "kidney_bed_gy_median": 0.0, "marrow_dose_gy_median": 0.0,
                      "grade3plus_thrombocytopenia_rate": 0.0, "mds_aml_rate": 0.0,
                      "grade3plus_haematological_rate": 0.05 if name == "control" else 0.0}
    rows = dict(report.summary_cells({**summary, "arms": arms})[1])
    for gone in ("Kidney dose / BED, median (Gy)", "Marrow dose, median (Gy)", "Grade >=3 thrombocytopenia",
                 "MDS/AML"):
        assert gone not in rows
    assert rows["Grade >=3 haematological (any line)"] == ["0.0%", "5.0%"]  # a background rate: kept
    assert "Renal grade >=3 (any cause)" in rows  # background renal events whatever the dose


def test_incidence_figure_draws_the_summary_incidences(netter1_run):
    """Each arm's curve in incidence.png is the summary's cumulative incidence at the 24- and 60-month horizons."""
    import matplotlib.pyplot as plt

    summary = analysis.summary(netter1_run)
    fig = figures.incidence_figure(netter1_run, figures.arm_colours(netter1_run))
    for ax, key in zip(fig.axes, ("renal_grade3plus_incidence", "mds_aml_incidence"), strict=True):
        curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
        assert len(curves) == 2
        for line, arm in zip(curves, netter1_run.arm.values, strict=True):
            x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            for months, expected in summary["arms"][str(arm)][key].items():
                if expected is not None:
                    assert y[np.searchsorted(x, float(months), side="right") - 1] == pytest.approx(expected, abs=1e-4)
    assert max(line.get_ydata().max() for line in fig.axes[0].lines if len(line.get_xdata()) > 2) > 0
    plt.close(fig)


def test_psa_waterfall_only_where_psa_is_modelled(netter1_run):
    """VISION models PSA: its report draws one bar per patient with a PSA value after baseline; NETTER-1 has none."""
    import matplotlib.pyplot as plt

    from sim import engine
    from sim.lesion_figures import psa_waterfall_figure

    from .conftest import load_small

    assert "psa_waterfall.png" not in figures.figures(netter1_run)
    ds = engine.run(load_small("vision", patients=150))
    assert "psa_waterfall.png" in figures.figures(ds)
    fig = psa_waterfall_figure(ds)
    bars = sum(len(c.patches) for c in fig.axes[0].containers)
    assert bars == int(np.isfinite(ds.psa_best_change.sel(arm="lu177_psma617").values).sum()) > 100
    plt.close(fig)


def test_summary_splits_into_tables_that_fit_a_narrow_terminal():
    """Four arms in a 100-column terminal: tables of the reference arm and one more arm each, no line wider than
    the terminal, every arm shown once beside the reference."""
    import io

    from rich.console import Console

    from sim import engine

    from .conftest import load_small

    summary = analysis.summary(engine.run(load_small("guided_vs_fixed", patients=150)))
    out = io.StringIO()
    report.print_summary(summary, Console(file=out, width=100, force_terminal=True, color_system=None))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.count("virtual patients per arm") == 3  # 3 compared arms, one table each with the reference
    for arm in summary["arms"].values():
        assert arm["label"][:12] in text


def test_swimmer_shows_the_same_patients_in_every_treated_arm():
    """One panel per treated arm, the same patient ids in each (common random numbers), within a legible size."""
    import matplotlib.pyplot as plt

    from sim import engine

    from .conftest import load_small

    ds = engine.run(load_small("guided_vs_fixed", patients=200))
    fig = figures.swimmer_figure(ds, figures.arm_colours(ds))
    panels = [ax for ax in fig.axes if ax.get_yticklabels()]
    assert len(panels) == len(figures.treated_arms(ds)) == 4
    ids = [[t.get_text() for t in ax.get_yticklabels()] for ax in panels]
    assert all(i == ids[0] for i in ids) and len(ids[0]) == max(figures.SWIMMER_MIN_PATIENTS,
                                                                  figures.SWIMMER_PATIENTS // 4)
    width, height = fig.get_size_inches() * fig.dpi
    assert height <= 1600
    plt.close(fig)


def test_km_legend_carries_the_hazard_ratio_of_each_compared_arm(netter1_run):
    import matplotlib.pyplot as plt

    summary = analysis.summary(netter1_run)
    c = summary["comparisons"]["lu177_dotatate vs control"]
    fig = figures.figures(netter1_run, summary)["km_pfs.png"]()
    texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    expected = f"HR {c['pfs_hr']:.2f} ({c['pfs_hr_robust_ci'][0]:.2f}-{c['pfs_hr_robust_ci'][1]:.2f})"
    assert sum(expected in t.replace("\n", " ") for t in texts) == 1  # the compared arm; the reference has none
    plt.close(fig)
    bare = figures.figures(netter1_run)["km_pfs.png"]()
    assert not any("HR" in t.get_text() for ax in bare.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    plt.close(bare)


@pytest.mark.parametrize(("name", "label"), [("kidney_bed_limit_gy", "Kidney BED limit (Gy)"),
                                             ("new_lesion_rate_per_month", "New lesion rate (per month)"),
                                             ("egfr_ml_min", "eGFR (mL/min)"),
                                             ("egfr_loss_30pct_4y_rate", "eGFR loss 30 % at 4 years rate"),
                                             ("dosimetry_error_scale",
                                                                                 "Dosimetry error scale")])
def test_sweep_parameters_read_as_words_with_units(name, label):
    assert figures.readable(name) == label


def test_blood_course_draws_each_line_through_the_recorded_nadirs(netter1_run):
    """One panel per blood line; each patient's line passes through the baseline and every cycle's recorded nadir."""
    import matplotlib.pyplot as plt

    fig = figures.blood_course_figure(netter1_run, figures.arm_colours(netter1_run))
    panels = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in panels] == [str(b).capitalize() for b in netter1_run.blood_line.values]
    a = netter1_run.sel(arm=figures.treated_arms(netter1_run)[0])
    line = panels[0].lines[0]  # platelets, the first patient shown
    patient = int(line.get_label().split()[-1])
    p = int(np.flatnonzero(a.patient.values == patient)[0])
    y = np.asarray(line.get_ydata())
    given = np.isfinite(a.cycle_time_days.values[p])
    assert y[0] == float(netter1_run.platelets_1e9_per_l.values[p])
    np.testing.assert_array_equal(y[1::2], a.blood_nadir.sel(blood_line="platelets").values[p][given])
    plt.close(fig)


def test_kidney_course_reads_the_recorded_egfr_and_bins_the_dose_response(netter1_run):
    """Each example patient's eGFR runs from the baseline covariate to the recorded end-of-follow-up value (through
    the 4-year value when alive then); the dose-response medians are those of the patients alive at 4 years per
    8 Gy bin of cumulative kidney BED, recomputed here with a mask instead of ``np.digitize``."""
    import matplotlib.pyplot as plt

    fig = figures.kidney_course_figure(netter1_run, figures.arm_colours(netter1_run))
    left, right = fig.axes[:2]
    arm = figures.treated_arms(netter1_run)[0]
    a = netter1_run.sel(arm=arm)
    for line in right.lines[:-1]:  # the last line is the grade 3 threshold
        p = int(np.flatnonzero(a.patient.values == int(line.get_label().split()[-1]))[0])
        y = np.asarray(line.get_ydata())
        assert y[0] == float(netter1_run.egfr_ml_min.values[p]) and y[-1] == float(a.egfr_end_ml_min.values[p])
        assert len(y) == (3 if np.isfinite(a.egfr_change_48_months.values[p]) else 2)
    treated = a.cycles_given.values > 0
    bed = outcomes.patient_level(netter1_run).sel(arm=arm).bed_gy_total.sel(organ="kidney").values[treated]
    change = 100.0 * a.egfr_change_48_months.values[treated]
    bed, change = bed[np.isfinite(change)], change[np.isfinite(change)]
    expected = [np.median(change[(bed >= lo) & (bed < lo + 8.0)]) for lo in np.arange(0.0, 200.0, 8.0)
                if ((bed >= lo) & (bed < lo + 8.0)).sum() >= 20]
    medians = next(line for line in left.lines if line.get_label().startswith(str(a.arm_label.values)))
    np.testing.assert_allclose(medians.get_ydata(), expected)
    plt.close(fig)
