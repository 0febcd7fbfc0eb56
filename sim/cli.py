"""Command line: ``rptsim run CONFIG [-o OUT.h5] [--patients N] [--seed S] [--json]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sim.config import ConfigError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rptsim", description="In-silico trials of radiopharmaceutical therapy.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate every arm of a scenario on one virtual cohort")
    run.add_argument("config", help="scenario TOML (e.g. configs/netter1.toml)")
    run.add_argument("-o", "--output", help="HDF5 output (default results/<config name>.h5)")
    run.add_argument("--patients", type=int, help="override trial.patients")
    run.add_argument("--seed", type=int, help="override trial.seed")
    run.add_argument("--threads", type=int, help="numba threads (results do not depend on it)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    return p


def _check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError(f"{path}: output folder {folder} is not writable")
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise ConfigError(f"{path}: output file is not writable")


def cmd_run(args: argparse.Namespace) -> int:
    from sim import config

    overrides = {k: v for k, v in (("trial.patients", args.patients), ("trial.seed", args.seed)) if v is not None}
    cfg = config.load(args.config, overrides)
    out = Path(args.output) if args.output else Path("results") / f"{Path(args.config).stem}.h5"
    _check_writable(out)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads = {args.threads}: must be >= 1")

    import numba
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sim import analysis, engine, outcomes, report

    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    console = Console(stderr=True)
    total = cfg.trial.patients * len(cfg.arms)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"
                  " patient-arms"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"Simulating {cfg.trial.name}", total=total)
        result = engine.run(cfg, progress=lambda k: bar.advance(task, k))
        bar.update(task, description="Writing HDF5")
        ds = outcomes.to_dataset(result)
        outcomes.write(ds, out)
    summ = analysis.summary(ds)
    summ["output"] = str(out)
    summary_path = out.with_suffix(".summary.json")
    outcomes.write_json(summ, summary_path)
    if args.json:
        print(json.dumps(summ, indent=2))
    else:
        report.print_summary(summ, Console())
        console.print(f"Wrote {out} and {summary_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": cmd_run}[args.command](args)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"rptsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
