"""Command line: ``rptsim run`` (one scenario, every arm on one cohort), ``rptsim trial`` (replicated trials),
``rptsim sweep`` (parameter sweeps on Dask) and ``rptsim report`` (figures and a Markdown page from a results file)."""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from sim import __version__, _invocation
from sim.config import ConfigError

EXIT_FAILURE = 1  # the input was fine, the run could not finish (a full disk)
EXIT_USAGE = 2  # bad input: nothing was written
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
# rptsim trial's end points: sim.trials.ENDPOINT_CHOICES, named here so that parsing imports no simulator (tested)
ENDPOINT_CHOICES = ("pfs", "os", "easl", "orr", "psa50")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where the usage is, not the usage itself."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rptsim", description="In-silico trials of radiopharmaceutical therapy.")
    p.add_argument("--version", action="version", version=f"rptsim {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate every arm of a scenario on one virtual cohort")
    run.add_argument("config", help="scenario TOML, or the name of a shipped scenario (e.g. netter1)")
    run.add_argument("-o", "--output", help="HDF5 output (default results/<config name>.h5)")
    run.add_argument("--patients", type=int, help="override trial.patients")
    run.add_argument("--seed", type=int, help="override trial.seed")
    run.add_argument("--threads", type=int, help="numba threads (results do not depend on it)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    run.add_argument("--keep", choices=("cycles", "patients", "summary"), default="cycles",
                     help="what the HDF5 file holds: every per-cycle array (default); per-patient values and "
                     "cycle totals only (~100 bytes per patient and arm, for large cohorts); or no HDF5 file, "
                     "only OUT.summary.json (same summary in every case)")
    run.add_argument("--chunk-size", type=int, help="patients simulated at a time (default 100000; memory)")

    trial = sub.add_parser("trial", help="replicate randomised trials: hazard ratios, log-rank power, sample size",
                           description="Replicate independent randomised trials of two arms of CONFIG (fresh "
                           "patients in every trial): power in a trial of this size, with its Monte Carlo error.")
    trial.add_argument("config", help="scenario TOML, or the name of a shipped scenario (e.g. vision)")
    trial.add_argument("--arms", nargs=2, metavar=("EXPERIMENTAL", "REFERENCE"),
                       help="arms to compare (default: the config's reference arm and its only other arm)")
    size = trial.add_mutually_exclusive_group()
    size.add_argument("--patients", type=int, dest="randomised_patients", metavar="N",
                      help="patients randomised, both arms, split by --allocation (the experimental arm gets N a/(a+b) "
                      "rounded half up) (default: trial.randomised_patients)")
    size.add_argument("--patients-per-arm", type=int, metavar="N", help="N patients in each arm (1:1 allocation)")
    trial.add_argument("--allocation", metavar="A:B", help="randomisation ratio experimental:reference, e.g. 2:1 "
                       "(default: trial.allocation, else 1:1)")
    timing = trial.add_mutually_exclusive_group()
    timing.add_argument("--events", type=int, metavar="N", help="analyse at the N-th event of both arms together "
                        "(default: analyse at the end of the config's follow-up)")
    timing.add_argument("--analysis-months", type=float, metavar="M",
                        help="analyse M months after the first randomisation (default: the end of follow-up)")
    trial.add_argument("--interim", type=float, metavar="FRACTION", help="one interim analysis at this fraction of "
                       "--events, Lan-DeMets O'Brien-Fleming-type boundaries (default: none)")
    trial.add_argument("--replicates", type=int, default=400, help="virtual trials (default: %(default)s)")
    trial.add_argument("--alpha", type=float, default=0.05,
                       help="two-sided significance level of the test (default: %(default)s)")
    trial.add_argument("--endpoint", choices=ENDPOINT_CHOICES, default="pfs",
                       help="a time to event (log-rank), or a response analysed at the end of follow-up (two-"
                       "proportion score test): EASL response of the index lesion at the first scan, RECIST "
                       "objective response, PSA50 (default: %(default)s)")
    trial.add_argument("--target-power", type=float, help="also search the smallest trial reaching this power and "
                       "fit a power curve (default: no search)")
    trial.add_argument("--max-patients-per-arm", type=int, default=20_000,
                       help="largest arm the search evaluates; beyond it the search stops (default: %(default)s)")
    trial.add_argument("--figure", metavar="PNG", help="draw the power curve (needs --target-power) (default: none)")
    trial.add_argument("-o", "--output", metavar="OUT.h5", help="per-replicate z, p, HR and events of every "
                       "evaluated size (HDF5) (default: none)")
    trial.add_argument("--seed", type=int, help="override trial.seed (default: the config's)")
    trial.add_argument("--threads", type=int, help="numba threads; results do not depend on it (default: all)")
    trial.add_argument("--json", action="store_true", help="print JSON instead of text")

    val = sub.add_parser("validate", help="compare the shipped scenarios with published trial endpoints")
    val.add_argument("--config", nargs="+", help="only these scenarios: shipped names (netter1, netter1.toml) or "
                                                 "paths to configs, judged on the targets of the trial they extend")
    val.add_argument("--patients", type=int, help="override trial.patients")
    val.add_argument("--seed", type=int, help="override trial.seed")
    val.add_argument("--json", action="store_true", help="print the rows as JSON")
    val.add_argument("--figure", help="also draw the simulated KM curves over the published medians and landmarks "
                     "(PNG path, e.g. results/validation.png)")

    _add_calibrate_parser(sub)

    sw = sub.add_parser("sweep", help="run a parameter sweep (grid, zipped axes, samples, replicates) on Dask")
    sw.add_argument("sweep", help="sweep TOML (e.g. configs/sweeps/kidney_target.toml)")
    sw.add_argument("-o", "--output", help="HDF5 output (default results/<sweep name>.h5)")
    sw.add_argument("--workers", type=int, help="local Dask worker processes (default: one per core; none on 2 cores "
                    "or fewer); 0 runs the scenarios one after another in this process")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler (tcp://host:8786)")
    where.add_argument("--cluster", choices=("slurm", "pbs"), help="submit Dask workers as batch jobs, as set in "
                       "the sweep's [cluster] section (dask-jobqueue)")
    sw.add_argument("--print-job-script", action="store_true", help="with --cluster: print the batch script and "
                    "exit without submitting anything")
    sw.add_argument("--resume", action="store_true", help="complete an interrupted sweep: run only the scenarios "
                    "missing from OUT.h5.parts")
    sw.add_argument("--patients", type=int, help="override trial.patients in every scenario")
    sw.add_argument("--seed", type=int, help="override trial.seed in every scenario")
    sw.add_argument("--json", action="store_true", help="print the counts and the scenario table as JSON")

    _add_uncertainty_parsers(sub)

    show = sub.add_parser("show", help="a scenario as resolved: its files, axes and arms (names for --arms)")
    show.add_argument("config", help="scenario TOML, or the name of a shipped scenario")
    show.add_argument("--json", action="store_true", help="print the whole resolved config (extends and defaults "
                      "applied) as JSON")

    rep = sub.add_parser("report", help="figures (PNG) and a Markdown page from a results file")
    rep.add_argument("results", help="HDF5 file written by rptsim run or rptsim sweep")
    rep.add_argument("-o", "--output", help="output folder (default: RESULTS without .h5, plus _report)")
    rep.add_argument("--json", action="store_true", help="print the page and figures written as JSON")
    _add_compare_parser(sub)
    for command in sub.choices.values():  # --debug after the subcommand too; SUPPRESS keeps an absent one from
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,  # resetting one before it
                             help="show Python tracebacks")
    return p


def _add_compare_parser(sub) -> None:  # noqa: ANN001 - argparse's subparsers action
    """``rptsim compare``: personalised against standard treatment across run files (``sim.compare``)."""
    cmp_ = sub.add_parser("compare", help="personalised (dosimetry-guided or -planned) against standard treatment, "
                          "side by side across results files: dose, response, survival, toxicity, resources, "
                          "trial size")
    cmp_.add_argument("results", nargs="+", help="HDF5 files written by rptsim run")
    cmp_.add_argument("--all", action="store_true", help="every compared arm, not only the personalised ones")
    cmp_.add_argument("-o", "--output", help="also write the table as a Markdown page")
    cmp_.add_argument("--json", action="store_true", help="print the comparisons as JSON")


def _add_uncertainty_parsers(sub) -> None:  # noqa: ANN001 - argparse's subparsers action
    """``rptsim uncertainty`` and ``rptsim sensitivity``: many scenarios over the declared uncertain parameters."""
    unc = sub.add_parser("uncertainty", help="propagate parameter uncertainty: the scenario once per prior or "
                         "posterior draw, effects with intervals and their parameter / Monte Carlo split",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    unc.add_argument("config", help="scenario TOML with [[uncertainty.parameters]]")
    unc.add_argument("--draws", type=int, default=100, help="parameter draws (scenarios)")
    unc.add_argument("--posterior", help="posterior file of rptsim calibrate --posterior (default: the priors)")
    unc.add_argument("-o", "--output", help="HDF5 output (default results/<config name>_uncertainty.h5)")
    _add_parallel_flags(unc)
    sen = sub.add_parser("sensitivity", help="global sensitivity (Sobol or Morris, SALib) of paired effects to the "
                         "uncertain parameters", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sen.add_argument("config", help="scenario TOML with [[uncertainty.parameters]]")
    sen.add_argument("--method", choices=("sobol", "morris"), default="morris")
    sen.add_argument("--n", type=int, help="base samples (Sobol: N, runs N (2D + 2); Morris: trajectories, runs "
                     "r (D + 1)); default 64 for Sobol, 10 for Morris")
    sen.add_argument("--arm", help="compared arm (default: the first arm other than the reference)")
    sen.add_argument("--outputs", nargs="+", default=["rmst_pfs_difference_months", "grade3plus_renal_rate_difference"],
                     help="paired effects of the arm against the reference (sweep statistics names)")
    sen.add_argument("--sample-seed", type=int, default=0, help="seed of the parameter sample")
    sen.add_argument("-o", "--output", help="HDF5 of the evaluated points (default results/<config "
                     "name>_sensitivity_<method>.h5); the indices go to OUT.json and the figure to OUT.png")
    _add_parallel_flags(sen)


def _add_calibrate_parser(sub) -> None:  # noqa: ANN001 - argparse's subparsers action
    """``rptsim calibrate``: the point fit and, with ``--posterior``, the posterior (docs/calibration.md)."""
    cal = sub.add_parser("calibrate", help="fit config parameters to published endpoints (common random numbers): "
                         "a point fit, or with --posterior the posterior of the declared uncertain parameters",
                         description="Point fit (default): Brent (one parameter) or Nelder-Mead (several) on the "
                         "log of --params, writes a config extending CONFIG. "
                         "--posterior: MCMC (emcee) on a synthetic likelihood of the published endpoints for the "
                         "config's [[uncertainty.parameters]], writes OUT.h5 (draws), OUT.toml (posterior-median "
                         "config), OUT.png (prior vs posterior) and OUT.json. See docs/calibration.md.")
    cal.add_argument("config")
    cal.add_argument("--params", nargs="+", help="dotted config paths, e.g. cohort.covariates.doubling_time_months."
                     "median (point fit: required; --posterior: only these declared parameters, default all)")
    cal.add_argument("--targets", nargs="+", help="only targets whose endpoint contains one of these words")
    cal.add_argument("--targets-file", help="TOML of targets (default sim/data/trial_targets.toml)")
    cal.add_argument("--patients", type=int, help="override trial.patients during the fit (default: the config's; "
                     "--posterior: 2000)")
    cal.add_argument("--seed", type=int, help="override trial.seed (the cohort of every evaluation); --posterior: it "
                     "also seeds the walkers (default: the config's)")
    cal.add_argument("--max-evals", type=int, help="point fit: simulator evaluations (default 60)")
    cal.add_argument("--posterior", action="store_true", help="sample the posterior of the declared uncertain "
                     "parameters (MCMC) instead of a point fit")
    cal.add_argument("--walkers", type=int, help="--posterior: emcee walkers (default: twice the parameters)")
    cal.add_argument("--steps", type=int, help="--posterior: steps of every walker (default 500)")
    cal.add_argument("--burn", type=int, help="--posterior: first steps discarded (default: half of --steps)")
    cal.add_argument("--thin", type=int, help="--posterior: keep every THIN-th step (default 1)")
    cal.add_argument("--json", action="store_true", help="--posterior: print OUT.json instead of a table")
    cal.add_argument("-o", "--output", help="point fit: calibrated config to write (extends CONFIG), required; "
                     "--posterior: posterior HDF5 (default results/<config name>_posterior.h5)")


def _add_parallel_flags(p: argparse.ArgumentParser) -> None:
    """Cohort size and the sweep machinery's parallel, resumable execution, for commands that run many scenarios."""
    p.add_argument("--patients", type=int, help="override trial.patients in every scenario")
    p.add_argument("--seed", type=int, help="override trial.seed (the cohort's)")
    p.add_argument("--workers", type=int, help="local Dask worker processes (default: one per core; none on 2 cores "
                   "or fewer); 0 runs the scenarios one after another in this process")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler (tcp://host:8786)")
    where.add_argument("--cluster", choices=("slurm", "pbs"), help="submit Dask workers as batch jobs, as set in "
                       "the --cluster-spec file (dask-jobqueue)")
    p.add_argument("--cluster-spec", metavar="TOML", help="a file with a [cluster] table, as in sweep files")
    p.add_argument("--resume", action="store_true", help="complete an interrupted run: evaluate only the missing "
                   "scenarios")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")


def _overrides(args: argparse.Namespace) -> dict:
    """The config overrides given as flags (``--patients``, ``--seed``) where a command has them."""
    flags = (("trial.patients", getattr(args, "patients", None)), ("trial.seed", getattr(args, "seed", None)))
    return {key: value for key, value in flags if value is not None}


def _check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError(f"{path}: output folder {folder} is not writable")
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise ConfigError(f"{path}: output file is not writable")


def _check_outputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Each output writable and none of them an input file (``-o`` naming the config would overwrite it)."""
    read = {p.resolve() for p in inputs}
    for path in outputs:
        _check_writable(path)
        if path.resolve() in read:
            raise ConfigError(f"{path}: is an input file of this run; choose another output")


def cmd_run(args: argparse.Namespace) -> int:
    from sim import config

    cfg = config.load(args.config, _overrides(args))
    out = Path(args.output) if args.output else Path("results") / f"{Path(args.config).stem}.h5"
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError(f"--chunk-size = {args.chunk_size}: must be >= 1")
    from sim import outcomes

    summary_path = outcomes.summary_path(out)
    _check_outputs([out, summary_path], config.extends_chain(args.config))
    _set_threads(args.threads)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sim import analysis, engine, report

    console = Console(stderr=True)
    total = cfg.trial.patients * len(cfg.arms)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"
                  " patient-arms"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"Simulating {cfg.trial.name}", total=total)
        ds = engine.run(cfg, args.chunk_size or engine.DEFAULT_CHUNK, lambda k: bar.advance(task, k), args.keep)
        bar.update(task, description="Writing")
        summ = analysis.summary(ds)
        summ["output"] = str(out) if args.keep != "summary" else None
        outcomes.write_with_summary(ds if args.keep != "summary" else None, out, summ)
    if args.json:
        print(json.dumps(summ, indent=2))
    else:
        report.print_summary(summ, Console())
        console.print(f"Wrote {out} and {summary_path}" if args.keep != "summary" else f"Wrote {summary_path}")
    return 0


def _set_threads(threads: int | None) -> None:
    import numba

    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads = {threads}: must be >= 1")
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def cmd_trial(args: argparse.Namespace) -> int:
    from sim import config, trials

    cfg = config.load(args.config, _overrides(args))
    design = trials.design_from_flags(cfg, args)
    design.check(cfg)
    if args.target_power is not None and not 0 < args.target_power < 1:
        raise ConfigError(f"--target-power = {args.target_power}: must be in (0, 1)")
    largest = max(design.allocation)
    if not largest <= args.max_patients_per_arm < trials.STRIDE:
        raise ConfigError(f"--max-patients-per-arm = {args.max_patients_per_arm}: must be in [{largest}, "
                          f"{trials.STRIDE - 1}]")
    if args.figure is not None and args.target_power is None:
        raise ConfigError(f"--figure {args.figure}: needs --target-power (it draws the power curve of the search)")
    for path in (args.output, args.figure):
        if path is not None:
            _check_writable(Path(path))
    _set_threads(args.threads)

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.completed:,} trials"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"{design.experimental} vs {design.reference}", total=None)
        tick = lambda k: bar.advance(task, k)  # noqa: E731
        result = trials.simulate_trials(cfg, design, progress=tick)
        out = trials.summarise(result, trials.same_regimen(cfg, design.experimental, design.reference))
        out["scenario"], out["seed"] = cfg.trial.name, cfg.trial.seed
        out["endpoint_name"] = trials.endpoint_name(cfg, design.endpoint)  # rPFS where radiographic
        evaluated = {design.patients: result}
        if args.target_power is not None:
            bar.update(task, description="Searching the sample size")
            needed, evaluated = trials.required_patients(cfg, design, args.target_power, args.max_patients_per_arm,
                                                         tick, evaluated)
            out.update(trials.search_summary(design, args.target_power, args.max_patients_per_arm, needed,
                                             evaluated))
    if args.output is not None:
        from sim import outcomes

        flags = {k: v for k, v in vars(args).items() if k not in ("json", "threads", "debug", "command")}
        outcomes.write(trials.dataset(cfg, design, evaluated, flags), args.output)
        out["output"] = args.output
    if args.figure is not None:
        from sim.figures import save_power_curve_figure

        save_power_curve_figure(out, args.figure)
        out["figure"] = args.figure
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print_trial(out)
    return 0


def report_folder(results: Path) -> Path:
    """Default ``rptsim report`` folder: the results path without ``.h5``, plus ``_report``."""
    stem = results.name[:-3] if results.name.lower().endswith(".h5") else results.name
    return results.with_name(f"{stem}_report")


def cmd_compare(args: argparse.Namespace) -> int:
    from sim import compare

    if args.output is not None:
        _check_writable(Path(args.output))
    cols = [c for path in args.results for c in compare.columns(path, every_arm=args.all)]
    if not cols:
        raise ConfigError(f"{', '.join(args.results)}: no personalised arm compared with a reference arm "
                          "(--all compares every arm)")
    if args.output is not None:
        from sim.outcomes import write_atomic

        text = compare.markdown(cols)
        write_atomic(args.output, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    if args.json:
        print(json.dumps(cols, indent=2))
    else:
        compare.print_table(cols)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """The resolved scenario: the files of its extends chain, its axes, and each arm's name and schedule."""
    import numpy as np
    from rich.markup import escape  # names and labels come from the config: never rich markup
    from rich.table import Table

    from sim import config
    from sim.kernel_inputs import arm_cycles, axes_of
    from sim.report import output_console

    cfg = config.load(args.config)
    if args.json:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
        return 0
    axes = axes_of(cfg)
    out = output_console(120)
    out.print(f"[bold]{escape(cfg.trial.name)}[/bold]: {cfg.trial.patients:,} patients, seed {cfg.trial.seed}; "
              f"reference arm {cfg.reference_arm()}")
    out.print("files: " + " <- ".join(escape(p.name) for p in config.extends_chain(args.config)))
    out.print(f"organs: {', '.join(o.name for o in axes.organs)}; blood lines: "
              f"{', '.join(b.name for b in axes.blood_lines)}; lesions per patient: up to {axes.lesions}")
    table = Table(title="Arms", title_justify="left")
    for col in ("name (--arms)", "label", "regimen", "agent", "cycles", "GBq", "every (weeks)"):
        table.add_column(col)
    for arm in cfg.arms:
        activity = getattr(arm, "activity_gbq", None)
        rule = f" ({arm.rule})" if hasattr(arm, "rule") else ""
        table.add_row(escape(arm.name), escape(arm.label), arm.regimen + rule,
                      escape(getattr(arm, "agent", None) or "-"), str(arm_cycles(arm)),
                      "-" if activity is None else " / ".join(f"{a:g}" for a in np.atleast_1d(activity)),
                      f"{getattr(arm, 'interval_weeks', 0):g}" if arm_cycles(arm) else "-")
    out.print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.results)
    out = Path(args.output) if args.output else report_folder(path)
    _check_writable(out / "index.md")
    existed = out.exists()
    try:
        written = _write_report(path, out)
    except BaseException:
        if not existed:  # a failed report leaves no folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    if args.json:
        print(json.dumps({"folder": str(out), "index": str(out / "index.md"),
                          "figures": [p.name for p in written if p.suffix == ".png"]}, indent=2))
    else:
        print(f"Wrote {out / 'index.md'} and {len(written) - 1} figures in {out}")
    return 0


def _write_report(path: Path, out: Path) -> list[Path]:
    """The report of the results file ``path`` in ``out``; a file that is not ours, or is ours but damaged (a
    missing variable, an attribute that does not parse), is a ConfigError."""
    from sim import analysis, outcomes, report, sweep

    is_sweep = sweep.is_sweep_file(path)
    try:
        with sweep.read(path) if is_sweep else outcomes.read(path) as ds:
            if is_sweep:
                return report.write_sweep_report(ds, out)
            summ = analysis.summary(ds)  # before anything is written
            return report.write_report(ds, out, summ)
    except (outcomes.NotOurFileError, sweep.NotASweepError) as exc:
        raise ConfigError(str(exc)) from None
    except ConfigError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # writing the report (a full disk): exit 1
            raise
        # HDF5's own errors carry no errno: data that does not read back (a bad checksum, a filter that fails on a
        # damaged chunk) is a damaged file, as a missing variable is
        raise ConfigError(f"{path}: a damaged rptsim {'sweep' if is_sweep else 'outcomes'} file "
                          f"({type(exc).__name__}: {str(exc):.200}); rerun the simulation") from exc


def cmd_sweep(args: argparse.Namespace) -> int:
    from sim import sweep_config

    sw = sweep_config.load(args.sweep, _overrides(args))
    if args.print_job_script:
        if args.cluster is None:
            raise ConfigError("--print-job-script needs --cluster slurm|pbs")
        from sim import sweep

        print(sweep.job_script(sw, args.cluster))
        return 0
    out = Path(args.output) if args.output else Path("results") / f"{sw.name}.h5"
    from sim import config

    _check_outputs([out], [sw.path, *config.extends_chain(sw.path.parent / sw.spec.base)])

    from sim import report, sweep

    counts = run_sweep(sw, out, args, f"Sweep {sw.name}")
    if counts is None:
        return EXIT_INTERRUPTED
    with sweep.read(out) as ds:
        if args.json:
            header, rows = report.sweep_cells(ds)
            print(json.dumps({"output": str(out), **counts, "columns": report.sweep_arms_caption(ds),
                              "rows": [dict(zip(header, row, strict=True)) for row in rows]}, indent=2))
        else:
            report.print_sweep_table(ds)
    _print_counts(out, counts)
    return 0


def run_sweep(sw, out: Path, args: argparse.Namespace, title: str) -> dict | None:  # noqa: ANN001 - a Sweep
    """Run the sweep ``sw`` into ``out`` with a progress bar, on the workers, scheduler or cluster the flags name
    (``--workers``, ``--scheduler``, ``--cluster``, ``--resume``); the counts of ``sim.sweep.run``, or None when
    interrupted (finished scenarios are kept for ``--resume``). Sweeps, uncertainty and sensitivity runs use it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sim import sweep

    console = Console(stderr=True)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"
                      " scenarios"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task(title, total=len(sw.scenarios))
            return sweep.run(sw, out, workers=args.workers, scheduler=args.scheduler, cluster=args.cluster,
                             resume=args.resume, progress=lambda done, _: bar.update(task, completed=done))
    except KeyboardInterrupt:
        print(f"rptsim: interrupted; finished scenarios are kept in {sweep.parts_dir(out)}: rerun with --resume "
              "to complete the run", file=sys.stderr)
        return None


def _print_counts(out: Path, counts: dict) -> None:
    from rich.console import Console

    reused = f" ({counts['reused']} from an earlier run)" if counts["reused"] else ""
    if counts["discarded"]:
        reused += (f"; {counts['discarded']} earlier parts were not reused (another config, keep level or rptsim "
                   "version)")
    Console(stderr=True).print(f"Wrote {out}: {counts['scenarios']} scenarios{reused}")


def cluster_table(args: argparse.Namespace) -> dict | None:
    """The ``[cluster]`` table of ``--cluster-spec`` (needed with ``--cluster``), for sweeps built from points."""
    from sim import files

    if args.cluster_spec is None:
        if args.cluster is not None:
            raise ConfigError(f"--cluster {args.cluster} needs --cluster-spec FILE (a TOML file with a [cluster] "
                              "table, as in sweep files)")
        return None
    path = Path(args.cluster_spec)
    table = files.read_toml(path, "--cluster-spec file").get("cluster")
    if not isinstance(table, dict):
        raise ConfigError(f"--cluster-spec {path}: no [cluster] table")
    return table


def _effect_lines(out: dict) -> list[str]:
    """The analysis and its effect: events and hazard ratio, or response rates and their difference."""
    if "rate_difference_median" in out:
        rate_e, rate_r = out["response_rates_mean"]
        low, high = out["rate_difference_ci"] or (math.nan, math.nan)
        return [f"  analysed at the end of follow-up (month {out['analysis_months_mean']}): response {rate_e:.1%} vs "
                f"{rate_r:.1%} on average",
                f"  response-rate difference: median {100 * out['rate_difference_median']:+.1f} pp, 95 % of trials in "
                f"[{100 * low:+.1f}, {100 * high:+.1f}] pp"]
    timing = {"events": f"analysed at {out.get('target_events')} events",
              "calendar": f"analysed at {out.get('analysis_months')} months",
              "end of follow-up": "analysed at the end of follow-up"}[out["analysis"]]
    return [f"  {timing}: on average {out['events_mean']} events at month {out['analysis_months_mean']}"
            + (f"; the target was reached in {out['events_reached_fraction']:.1%} of trials" if "target_events" in out
               else ""),
            f"  hazard ratio: median {out['hr_median']}, 95 % of trials in {out['hr_ci']}"]


def _print_trial(out: dict) -> None:
    n_e, n_r = out["patients_per_arm"]
    lines = [
        f"{out['scenario']}: {out['experimental_arm']} vs {out['reference_arm']}, {out['endpoint_name']}, "
        f"{out['patients']} patients ({n_e} + {n_r}, allocation {':'.join(map(str, out['allocation']))}), "
        f"{out['replicates']} virtual trials (seed {out['seed']})",
        *_effect_lines(out),
        f"  {out['test']} power at alpha {out['alpha']}: {100 * out['power']:.1f} % ± {100 * out['power_mc_se']:.1f} % "
        "(MC SE)" + ("  (identical regimens: this is the type-I error)" if out["same_regimen"] else ""),
    ]
    if "interim_fraction" in out:
        lines.append(f"  interim at {out['interim_events']} events (|z| >= {out['boundaries_z'][0]}, final >= "
                     f"{out['boundaries_z'][1]}): stopped early in {out['interim_stop_fraction']:.1%}; expected "
                     f"{out['expected_events']} events, {out['expected_patients']} patients")
    if "required_patients" in out:
        needed, fitted = out["required_patients"], out["required_patients_fitted"]
        lines.append(f"  patients for {out['target_power']:.0%} power: "
                     + (f"{needed} ({' + '.join(map(str, out['required_patients_per_arm']))})" if needed else
                        f"not reached with {out['max_patients_per_arm']} patients per arm")
                     + (f"; fitted power curve: {fitted}" if fitted else ""))
        lines.append("  power curve: " + ", ".join(f"{p['patients']}: {p['power']:.0%}" for p in out["power_curve"]))
    for key, what in (("output", "per-replicate results"), ("figure", "power curve")):
        if key in out:
            lines.append(f"  wrote {what} to {out[key]}")
    print("\n".join(lines))


def cmd_validate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from sim import validate

    overrides = _overrides(args)
    figure = Path(args.figure) if args.figure else None
    if figure is not None:
        _check_writable(figure)
    console = Console(stderr=True)
    datasets: dict = {}
    with console.status("Validating") as status:
        rows = validate.run(args.config, overrides, progress=lambda name: status.update(f"Simulating {name}"),
                            datasets=datasets)
        if figure is not None:
            status.update("Drawing the figure")
            from sim.figures import save_validation_figure

            save_validation_figure(datasets, validate.load_targets(), figure)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        table = Table(title="Validation against published trials", title_justify="left")
        for col in ("trial", "endpoint", "published", "simulated (95 % CI)", "tolerance", ""):
            table.add_column(col)
        for r in rows:
            ci = f" ({r['low']}-{r['high']})" if r["low"] is not None else ""
            table.add_row(r["trial"], r["endpoint"], f"{r['published']:g}", f"{r['simulated']}{ci}",
                          f"{r['tolerance'][0]:g}-{r['tolerance'][1]:g}",
                          "[green]pass[/green]" if r["passed"] else "info" if r["informational"] else "[red]FAIL[/red]")
        from sim.report import output_console

        out = output_console(160)
        out.print(table)
        required = [r for r in rows if not r["informational"]]
        out.print(f"{sum(r['passed'] for r in required)}/{len(required)} endpoints within tolerance"
                  f" (+{len(rows) - len(required)} informational)" + (f"; figure: {figure}" if figure else ""))
    return 0 if validate.all_passed(rows) else 1


POSTERIOR_ONLY = ("walkers", "steps", "burn", "thin", "json")


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.posterior:
        if args.max_evals is not None:
            raise ConfigError(f"--max-evals = {args.max_evals}: only for the point fit (--posterior runs --walkers x "
                              "--steps evaluations)")
        return _calibrate_posterior(args)
    given = [f"--{flag}" for flag in POSTERIOR_ONLY if getattr(args, flag) not in (None, False)]
    if given:
        raise ConfigError(f"{' '.join(given)}: only with --posterior")
    if not args.params:
        raise ConfigError("--params: required for the point fit (dotted config paths; or use --posterior)")
    if args.output is None:
        raise ConfigError("-o/--output: required for the point fit (the calibrated config to write)")

    from rich.console import Console

    from sim import calibrate, config

    cfg = config.load(args.config, _overrides(args))
    targets = [t for t in calibrate.targets_for(args.config, Path(args.targets_file) if args.targets_file else None,
                                                args.targets) if not t.informational]
    out = Path(args.output)
    _check_writable(out)
    console = Console(stderr=True)
    with console.status("Calibrating") as status:
        result = calibrate.calibrate(args.config, args.params, targets, args.patients,
                                     60 if args.max_evals is None else args.max_evals,
                                     progress=lambda k, best: status.update(f"evaluation {k}: best loss {best:.4g}"),
                                     seed=args.seed)
    calibrate.write_calibrated(out, args.config, result, cfg.trial.seed, cfg.trial.patients)
    print(f"loss {result.start_loss:.4g} -> {result.loss:.4g} after {result.evaluations} evaluations")
    for path, value in result.params.items():
        print(f"  {path} = {value:.6g}")
    print(f"wrote {out}")
    return 0


def _calibrate_posterior(args: argparse.Namespace) -> int:
    """``rptsim calibrate --posterior``: OUT.h5 (draws), OUT.toml (posterior-median config), OUT.png, OUT.json."""
    out = Path(args.output) if args.output else Path("results") / f"{Path(args.config).stem}_posterior.h5"
    files = {"posterior": out, "config": out.with_suffix(".toml"), "figure": out.with_suffix(".png"),
             "summary": out.with_suffix(".json")}
    if len(set(files.values())) < len(files):
        raise ConfigError(f"-o {out}: must end in a suffix other than .toml, .png or .json (e.g. .h5)")
    for path in files.values():
        _check_writable(path)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sim import calibrate, outcomes, posterior
    from sim.posterior_figures import save_identifiability_figure

    plan = posterior.plan(args.config, args.params, Path(args.targets_file) if args.targets_file else None,
                          args.targets, args.patients, args.seed, args.walkers, args.steps, args.burn,
                          1 if args.thin is None else args.thin)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} "
                  "evaluations"), TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"Sampling {plan.scenario.name}", total=plan.evaluations)
        ds = posterior.run(plan, progress=lambda k, best: bar.update(
            task, completed=k, description=f"Sampling {plan.scenario.name}: best log L {best:.4g}"))
    rows = posterior.summary_rows(ds)
    median = posterior.medians(ds)
    posterior.write(out, ds)
    calibrate.write_extending(files["config"], args.config, [
        f"# Posterior median of rptsim calibrate --posterior on {ds.attrs['created_utc']}: calibrated on "
        f"{ds.attrs['calibrated_on']},",
        f"# {ds.attrs['patients']} patients per arm, seed {ds.attrs['seed']}, {ds.attrs['walkers']} walkers x "
        f"{ds.attrs['steps']} steps (burn {ds.attrs['burn']}); draws in {out.name}",
    ], median)
    save_identifiability_figure(ds, files["figure"])
    taus = {r["parameter"]: float(t) if math.isfinite(t) else None  # NaN: a chain too short to estimate it
            for r, t in zip(rows, ds.attrs["autocorr_time_steps"], strict=True)}
    summary = {key: ds.attrs[key] for key in ("config", "calibrated_on", "patients", "seed", "walkers", "steps",
                                              "burn", "thin", "evaluations", "acceptance_fraction", "wall_seconds",
                                              "log_likelihood_at_median")}
    summary |= {"autocorr_time_steps": taus, "short_chain": bool(ds.attrs["short_chain"]), "parameters": rows,
                "targets": json.loads(ds.attrs["targets_json"]), "files": {k: str(v) for k, v in files.items()}}
    outcomes.write_json(summary, files["summary"])
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_posterior(summary)
    return 0


def _print_posterior(summary: dict) -> None:
    from rich.table import Table

    from sim.report import output_console

    table = Table(title=f"Posterior of {summary['config']} (calibrated on {summary['calibrated_on']})",
                  title_justify="left")
    for col in ("parameter", "prior median (95 %)", "posterior median (95 %)", "SD ratio", "τ (steps)"):
        table.add_column(col)
    for r in summary["parameters"]:
        tau = summary["autocorr_time_steps"][r["parameter"]]
        table.add_row(r["parameter"], f"{r['prior_median']:.4g} ({r['prior_95'][0]:.4g}-{r['prior_95'][1]:.4g})",
                      f"{r['posterior_median']:.4g} ({r['posterior_95'][0]:.4g}-{r['posterior_95'][1]:.4g})",
                      f"{r['sd_ratio']:.2f}", "-" if tau is None else f"{tau:.0f}")
    out = output_console(160)
    out.print(table)
    kept = summary["steps"] - summary["burn"]
    out.print(f"{summary['walkers']} walkers x {summary['steps']} steps (burn {summary['burn']}), "
              f"{summary['patients']} patients per arm, seed {summary['seed']}: acceptance fraction "
              f"{summary['acceptance_fraction']:.2f}, {summary['evaluations']:,} evaluations in "
              f"{summary['wall_seconds']:.0f} s")
    if summary["short_chain"]:
        out.print(f"[yellow]warning:[/yellow] the {kept} steps kept are fewer than 50 autocorrelation times of some "
                  "parameter: intervals are rough; run more --steps")
    out.print("Wrote " + ", ".join(summary["files"].values()))


def cmd_uncertainty(args: argparse.Namespace) -> int:
    from sim import uncertainty

    return uncertainty.main(args)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from sim import sensitivity

    return sensitivity.main(args)


def one_line(text: str) -> str:
    """``text`` on one line, control characters (line breaks, terminal escapes) shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"run": cmd_run, "trial": cmd_trial, "validate": cmd_validate, "calibrate": cmd_calibrate,
                "report": cmd_report, "sweep": cmd_sweep, "uncertainty": cmd_uncertainty,
                "sensitivity": cmd_sensitivity, "show": cmd_show, "compare": cmd_compare}
    line = one_line("rptsim " + shlex.join(sys.argv[1:] if argv is None else argv))  # the files' history
    try:
        if isinstance(getattr(args, "config", None), str):  # a scenario file, or a shipped scenario by name
            from sim import config

            args.config = str(config.find(args.config))
        with _invocation.command(line):
            return commands[args.command](args)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"rptsim: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a full disk or a file-size limit while writing: the previous files are intact
        if args.debug:
            raise
        text = str(exc) if exc.filename is not None or not exc.strerror else exc.strerror  # no "[Errno 27]"
        print(f"rptsim: error: {one_line(text)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("rptsim: interrupted; earlier results are intact", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
