"""``rptsim compare``: dosimetry-guided arms against their scenario's standard arm, side by side across files."""

from __future__ import annotations

import json
import math

import pytest

from sim import cli, compare, outcomes


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Small runs of a PRRT scenario (three guided arms vs fixed), a PSMA one (one guided arm, and SOC, vs VISION's
    fixed regimen) and SIRT's (personalised vs standard planning)."""
    folder = tmp_path_factory.mktemp("compare")
    paths = {}
    for name in ("guided_vs_fixed", "lu_psma_guided", "dosisphere01"):
        paths[name] = folder / f"{name}.h5"
        assert cli.main(["run", name, "--patients", "300", "-o", str(paths[name]), "--json"]) == 0
    return paths


def test_one_column_per_guided_arm_with_the_summary_effects(results, capsys, tmp_path):
    capsys.readouterr()
    page = tmp_path / "page.md"
    argv = ["compare", str(results["guided_vs_fixed"]), str(results["lu_psma_guided"]),
            str(results["dosisphere01"]), "--json", "-o", str(page)]
    assert cli.main(argv) == 0
    cols = json.loads(capsys.readouterr().out)
    assert [(c["scenario"].split(" (")[0], c["arm"]) for c in cols] == [
        ("Guided vs fixed", "iluminet"), ("Guided vs fixed", "p_prrt"), ("Guided vs fixed", "tumour_guided"),
        ("Tumour-dose-guided vs fixed 177Lu-PSMA-617", "tumour_guided"), ("DOSISPHERE-01", "personalised")]
    for c in cols:
        summary = outcomes.read_summary(outcomes.summary_path(c["file"]))
        effect = summary["comparisons"][f"{c['arm']} vs {c['reference_arm']}"]
        standard, guided = summary["arms"][c["reference_arm"]], summary["arms"][c["arm"]]
        low, high = effect["pfs_hr_robust_ci"]
        assert c["cells"]["PFS HR (95 % CI)"] == f"{effect['pfs_hr']:.2f} ({low:.2f}-{high:.2f})"
        assert c["cells"]["Standard arm"] == standard["label"]
        # Schoenfeld by hand: 4 (z_0.975 + z_0.8)^2 / ln(HR)^2 events over the mean event fraction of the two arms
        events = 4 * (1.959964 + 0.841621) ** 2 / math.log(effect["pfs_hr"]) ** 2
        fraction = (standard["pfs_event_fraction"] + guided["pfs_event_fraction"]) / 2
        assert c["patients_for_80_percent_power"] == pytest.approx(events / fraction, rel=1e-5, abs=1.0)
    text = page.read_text()
    assert text.startswith("# Personalised against standard treatment") and text.count("\n| ") == len(compare.ROWS) + 1
    assert "rPFS HR (95 % CI)" not in text  # the first column's trial (NETTER-1 population) names PFS as PFS


def test_all_adds_the_other_compared_arms(results, capsys):
    capsys.readouterr()
    assert cli.main(["compare", str(results["lu_psma_guided"]), "--all", "--json"]) == 0
    assert [c["arm"] for c in json.loads(capsys.readouterr().out)] == ["tumour_guided", "soc"]


def test_a_file_without_a_guided_arm_is_one_line(results, capsys, tmp_path):
    plain = tmp_path / "n1.h5"
    assert cli.main(["run", "netter1", "--patients", "50", "-o", str(plain), "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(plain)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no personalised arm" in err and str(plain) in err
