"""Command-line interface: ``nmcfem run|mesh|validate-config|analyze|plot|sweep`` (also
``run_sim.py``).

Errors end with one line ``nmcfem: error: ...`` on standard error; under ``mpiexec`` every
rank stops and only rank 0 speaks. Exit status (:mod:`nmcfem.errors`): 0 done, 1 a run or
sweep case that failed (solver, time loop), 2 bad input, 130 interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmcfem.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, NmcfemError

DESCRIPTION = """\
nmcfem: chemo-mechanics of a single NMC811 secondary particle (DOLFINx).

Subcommands:
  run CONFIG.yaml        build (or reuse) the mesh, run the simulation, then its analysis
  mesh CONFIG.yaml       build (or reuse) the particle mesh and print its statistics
  validate-config CONFIG.yaml
                         check a config and print it resolved, with units (--defaults:
                         print the schema defaults instead)
  analyze RUN_DIR        compare a finished run's surface with measured maps
  plot RUN_DIR           3D picture of the particle (--field NAME, --step N, --clip ...)
  sweep SWEEP.yaml       run a parameter sweep (resumable; --dry-run lists the cases;
                         under mpiexec, --ranks-per-case K runs N/K cases at a time)

`python run_sim.py CONFIG.yaml` is short for `run CONFIG.yaml`. Override any key with
`--set section.key=value` (repeatable; values are YAML), e.g.
  python run_sim.py configs/default.yaml --set geometry.n_grains=40 --set loading.c_rate=2
Works the same under `mpiexec -n N`.
"""


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML configuration file (e.g. configs/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key by its dotted path (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(prog="nmcfem", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a simulation and its analysis")
    _add_config_args(p)
    p.add_argument("--output-dir", help="run folder (default: output.directory/<name>)")
    p.add_argument("--restart", metavar="RUN_DIR", default=None,
                   help="continue RUN_DIR from its last checkpoint (output.checkpoint_every > 0)")

    p = sub.add_parser("mesh", help="build or reuse the particle mesh; print statistics")
    _add_config_args(p)

    p = sub.add_parser("validate-config", help="validate a config and print it resolved")
    p.add_argument("config", nargs="?", help="YAML configuration file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--defaults", action="store_true",
                   help="print the schema defaults as commented YAML (configs/default.yaml)")

    p = sub.add_parser("analyze", help="compare a run's simulated surface with measurements")
    p.add_argument("run_dir", help="folder of a finished run (holds analysis_snapshot.npz)")
    p.add_argument("--measured", nargs="+", default=None, metavar="FILE",
                   help="measured images (two-energy pair, STXM .hdr, TXM .xrm)")
    p.add_argument("--view", nargs=3, type=float, default=None, metavar=("VX", "VY", "VZ"),
                   help="view direction from the particle to the detector")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override analysis settings, e.g. --set analysis.probing_depth=1e-8")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis)")
    p.add_argument("--snapshot", default="analysis_snapshot.npz",
                   help="snapshot to analyse, e.g. analysis_snapshot_cycle0046_step02.npz "
                        "(output.at_step_ends); default the end of the run")

    p = sub.add_parser("plot", help="3D picture of a run's particle (off-screen PNG)")
    p.add_argument("run_dir", help="folder of a run (holds fields/)")
    p.add_argument("--field", default="li_fraction",
                   help="grains, li_fraction, von_mises, interface_damage, or any scalar field "
                        "of the run (c, x, hydrostatic_stress, grain_id)")
    p.add_argument("--step", type=int, default=None,
                   help="output step number (default: the last; nmcfem.load(RUN_DIR)."
                        "output_steps lists them)")
    p.add_argument("--clip", default="octant", choices=("octant", "half", "none"),
                   help="part of the sphere cut away to show the inside")
    p.add_argument("--out", default=None, help="PNG file (default RUN_DIR/pictures/"
                                                "particle_<field>[_<step>].png)")

    p = sub.add_parser("sweep", help="run a parameter sweep (resumable)")
    p.add_argument("sweep", help="sweep YAML file (base config + grid/zip/cases axes)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key in every case")
    p.add_argument("--ranks-per-case", type=int, default=None,
                   help="MPI ranks per case (default: sweep.ranks_per_case of the base config)")
    p.add_argument("--dry-run", action="store_true", help="list the cases and their status")
    p.add_argument("--retry-failed", action="store_true", help="re-run failed cases too")
    p.add_argument("--only", type=int, nargs="+", default=None, metavar="INDEX",
                   help="run only these case indices (e.g. $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--slurm", metavar="SCRIPT", default=None,
                   help="write a SLURM batch script for this sweep instead of running it")
    p.add_argument("--ntasks", type=int, default=None, help="with --slurm: MPI tasks to request")
    p.add_argument("--walltime", default="04:00:00", help="with --slurm: time limit")
    return parser


def _normalise_argv(argv: list[str]) -> list[str]:
    # `run_sim.py CONFIG.yaml ...` is shorthand for `run CONFIG.yaml ...`.
    commands = {"run", "mesh", "validate-config", "analyze", "plot", "sweep", "-h", "--help"}
    if argv and argv[0] not in commands and not argv[0].startswith("-"):
        return ["run", *argv]
    return argv


def _dispatch(args: argparse.Namespace) -> int:
    from nmcfem import config as cfgmod

    if args.command == "validate-config":
        if args.defaults:
            print(cfgmod.commented_yaml())
            return 0
        if not args.config:
            raise cfgmod.ConfigError("validate-config needs a CONFIG.yaml (or --defaults)")
        cfg = cfgmod.load_config(args.config, args.overrides)
        from nmcfem.parallel import log

        log(f"# {args.config}: valid. Resolved configuration:\n{cfgmod.commented_yaml(cfg)}")
        return 0
    if args.command == "analyze":
        from nmcfem.runner import analyze_command

        return analyze_command(args.run_dir, args.measured, args.view, args.overrides, args.out,
                               args.snapshot)

    if args.command == "plot":
        return _plot(args)
    if args.command == "sweep":
        return _sweep(args)
    cfg = cfgmod.load_config(args.config, args.overrides)
    from nmcfem import runner

    if args.command == "mesh":
        runner.mesh_command(cfg)
        return 0
    if args.restart:
        runner.check_restart(cfg, args.restart)
    status = runner.run_command(cfg, Path(args.config).stem, args.output_dir,
                                restart=args.restart)
    return 0 if status == "done" else EXIT_FAILED


def _plot(args: argparse.Namespace) -> int:
    from nmcfem.errors import ConfigError
    from nmcfem.parallel import log, run_on_root

    def work() -> str:
        from nmcfem.pictures import render
        from nmcfem.results import load

        try:
            run = load(args.run_dir)
            state = run.fields(args.step)
            interfaces = run.interfaces(state.step)
        except (FileNotFoundError, KeyError) as exc:
            raise ConfigError(f"plot: {exc.args[0]}") from None
        if args.field == "interface_damage" and interfaces is None:
            raise ConfigError(f"plot: {args.run_dir} has no cohesive interfaces (cracks off); "
                              f"pick another --field")
        suffix = "" if args.step is None else f"_{state.step}"
        out = args.out or run.path / "pictures" / f"particle_{args.field}{suffix}.png"
        try:
            return str(render(state, args.field, out, interfaces, args.clip))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"plot --field {args.field}: {exc.args[0]}") from None

    log(f"wrote {run_on_root(work)}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from nmcfem import sweep as sw
    from nmcfem.atomic import atomic_write_text
    from nmcfem.parallel import log

    sweep = sw.load_sweep(args.sweep, args.overrides)
    rpc = args.ranks_per_case or sweep.cases[0].config.sweep.ranks_per_case
    if args.dry_run:
        log(sw.dry_run(sweep))
        return 0
    if args.slurm:
        text = sw.slurm_script(sweep, args.ntasks or 2 * rpc, rpc, args.walltime, sys.executable,
                               str(Path(sys.argv[0]).resolve()), str(Path.cwd()), args.only)
        if MPI.COMM_WORLD.rank == 0:
            atomic_write_text(args.slurm, text)
            Path(args.slurm).chmod(0o755)
        log(f"wrote {args.slurm}: submit with `sbatch {args.slurm}`")
        return 0
    rows = sw.run_sweep(sweep, rpc, args.retry_failed, args.only)
    failed = MPI.COMM_WORLD.bcast(sum(r["status"] != "done" for r in rows
                                      if args.only is None or r["case"] in args.only), root=0)
    return EXIT_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nmcfem`` and ``run_sim.py``; returns the process exit status."""
    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from nmcfem.parallel import guard

    try:
        with guard():
            return _dispatch(args)
    except NmcfemError as exc:
        _report(str(exc))
        return exc.exit_status
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except KeyboardInterrupt as exc:
        _report(f"interrupted ({exc or 'Ctrl-C'})")
        return EXIT_INTERRUPTED


def _report(message: str) -> None:
    try:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.rank
    except ImportError:  # pragma: no cover - mpi4py ships with the solver wheel
        rank = 0
    if rank == 0:
        print(f"nmcfem: error: {message}", file=sys.stderr, flush=True)
