#!/usr/bin/env python3
"""Where direct factorisations stop paying: MUMPS against Krylov + smoothed-aggregation AMG on
the default particle and refinements of it, with cohesive cracks off and on, side by side — the
measurement behind ``solver.direct_max_unknowns``, the size up to which ``solver.linear: auto``
factorises.

Each case is a fresh process (``physics_benchmark.py``'s case runner) taking ``--steps`` steps of
``--dt`` s of the default 1C charge: with the defaults (12 x 60 s) the grain boundaries start to
crack near the end, so the cracked runs exercise the cracking iteration's reused factorisations
(or AMG hierarchies). Printed per size: unknowns, wall time of the steps and peak memory of both
paths, and their ratios. Run: ``python benchmarks/solver_benchmark.py [--ranks 2] [--sizes 1.0
0.6 0.45] [--cracks 0 1]`` (``make bench`` runs every benchmark with the defaults).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (1.0, 0.6, 0.45)  # factors on the default element sizes
PATHS = ("direct", "iterative")


def case(factor: float, cracks: int, linear: str, ranks: int, steps: int, dt: float) -> dict:
    """One size, crack setting and linear-algebra path in a fresh process; its result row."""
    launcher = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] \
        if ranks > 1 else []
    proc = subprocess.run([*launcher, sys.executable, str(HERE / "physics_benchmark.py"),
                           "--case", str(factor), "--cracks", str(cracks), "--linear", linear,
                           "--steps", str(steps), "--dt", str(dt)],
                          capture_output=True, text=True, cwd=HERE.parent)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"size {factor}, cracks {cracks}, {linear} failed:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(line[0][7:])


def main() -> int:
    """Run both paths for every size and crack setting and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--sizes", type=float, nargs="+", default=list(SIZES))
    parser.add_argument("--cracks", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--dt", type=float, default=60.0, help="step length (s)")
    args = parser.parse_args()
    print(f"{args.steps} steps of {args.dt:g} s of the default 1C charge, {args.ranks} rank(s)")
    print("size | cracks | displacement unknowns | direct: steps [s], memory [MiB] | "
          "iterative: steps [s], memory [MiB] | iterative / direct time | Krylov its per step "
          "(direct / iterative)")
    failed = False
    for factor in args.sizes:
        for cracks in args.cracks:
            rows = {}
            for linear in PATHS:
                try:
                    rows[linear] = case(factor, cracks, linear, args.ranks, args.steps, args.dt)
                except RuntimeError as exc:
                    print(exc, flush=True)
                    failed = True
            if len(rows) < len(PATHS):
                continue
            d, i = rows["direct"], rows["iterative"]
            time_d, time_i = d["time_steps [s]"], i["time_steps [s]"]
            print(f"{factor:g} | {'on' if cracks else 'off'} | {d['elasticity']} | "
                  f"{time_d:.1f}, {d['peak_memory_all_ranks [MiB]']:.0f} | "
                  f"{time_i:.1f}, {i['peak_memory_all_ranks [MiB]']:.0f} | "
                  f"{time_i / time_d:.2f} | {d['ksp_its_elasticity_mean']:.1f} / "
                  f"{i['ksp_its_elasticity_mean']:.1f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
