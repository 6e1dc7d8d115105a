#!/usr/bin/env python3
"""Cost of the coupled transport/mechanics step: the default particle and two refinements,
with cohesive cracks off and on side by side.

For each mesh and each crack setting: unknowns, a fixed number of steps at a fixed size (the
first minutes of the default 1C charge, in which the grain boundaries start to crack), Krylov
and Newton iterations per step (Krylov counts should stay roughly flat under refinement with
GAMG and the rigid-body near-nullspace), wall time per phase and per step, peak resident memory,
and the cost ratio cracks on / cracks off. Run: ``python benchmarks/physics_benchmark.py
[--ranks N] [--sizes 1.0 0.8]`` (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFINEMENTS = (1.0, 0.8, 0.64)  # factor on the default element sizes
STEPS, DT = 8, 20.0  # s


def one_case(factor: float, steps: int, dt: float, cracks: bool, linear: str = "auto") -> dict:
    """Run ``steps`` steps of ``dt`` s on the default particle with sizes scaled by ``factor``,
    with or without cohesive cracks, on the linear-algebra path ``linear`` (``solver.linear``:
    auto, direct or iterative)."""
    from mpi4py import MPI

    from nmcfem.config import Config, load_config
    from nmcfem.orientations import grain_rotations
    from nmcfem.problem import ChemoMechanicsProblem
    from nmcfem.runner import load_domain

    base = Config().geometry.mesh
    cfg = load_config(REPO / "configs" / "default.yaml", [
        f"geometry.mesh.boundary_size={base.boundary_size * factor}",
        f"geometry.mesh.grain_size={base.grain_size * factor}",
        f"cohesive.enabled={str(cracks).lower()}", f"solver.linear={linear}",
        f"output.mesh_cache={REPO / 'meshes'}"])
    t0 = time.perf_counter()
    domain = load_domain(cfg, MPI.COMM_WORLD, lambda _m: None)
    t_mesh = time.perf_counter() - t0
    t0 = time.perf_counter()
    problem = ChemoMechanicsProblem(domain, cfg, grain_rotations(cfg.geometry,
                                                                 domain.grain_centroids))
    t_setup = time.perf_counter() - t0
    its_c, its_u, its_n = [], [], []
    t0 = time.perf_counter()
    from nmcfem.errors import SolverError

    pending = [dt] * steps
    retries = 0
    while pending:
        h = pending.pop(0)
        try:
            info = problem.step(h)
        except SolverError:  # a crack snaps: take the interval in two halves, as the loop would
            problem.reject()
            pending[:0] = [h / 2, h / 2]
            retries += 1
            continue
        problem.accept()
        its_c.append(info["ksp_its_diffusion"])
        its_u.append(info["ksp_its_elasticity"])
        its_n.append(info.get("newton_its", 0))
    t_steps = time.perf_counter() - t0
    crack = problem.cracks.diagnostics() if problem.cracks is not None else {}
    peak = MPI.COMM_WORLD.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, op=MPI.SUM)
    steps = len(its_c)
    return {"size_factor": factor, "cracks": cracks, "linear": problem.linear,
            "ranks": MPI.COMM_WORLD.size,
            "step_retries": retries,
            **problem.unknowns(),
            "cells": domain.stats["n_cells"], "steps": steps,
            "ksp_its_diffusion_mean": sum(its_c) / steps,
            "ksp_its_elasticity_mean": sum(its_u) / steps,
            "newton_its_mean": sum(its_n) / steps,
            "cracked_area_partial [um^2]": crack.get("cracked_area_partial [m^2]", 0.0) * 1e12,
            "time_mesh [s]": t_mesh, "time_setup [s]": t_setup,
            "time_assembly [s]": problem.timings["assembly"],
            "time_solve [s]": problem.timings["solve"], "time_steps [s]": t_steps,
            "time_per_step [s]": t_steps / steps,
            "peak_memory_all_ranks [MiB]": peak / 1024.0}


def main() -> int:
    """Run every refinement in a fresh process and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--sizes", type=float, nargs="+", default=list(REFINEMENTS),
                        help="factors on the default element sizes")
    parser.add_argument("--case", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cracks", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--linear", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--dt", type=float, default=DT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        from mpi4py import MPI

        result = one_case(args.case, args.steps, args.dt, bool(args.cracks), args.linear)
        if MPI.COMM_WORLD.rank == 0:
            print("RESULT " + json.dumps(result))
        return 0
    rows = []
    launcher = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(args.ranks)] \
        if args.ranks > 1 else []
    for factor in args.sizes:
        for cracks in (0, 1):
            proc = subprocess.run([*launcher, sys.executable, __file__, "--case", str(factor),
                                   "--cracks", str(cracks)],
                                  capture_output=True, text=True, cwd=REPO)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stdout, proc.stderr)
                return 1
            rows.append(json.loads(line[0][7:]))
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    for off, on in zip(rows[::2], rows[1::2]):
        print(f"size factor {off['size_factor']}: time per step cracks on / off = "
              f"{on['time_per_step [s]']:.3g} s / {off['time_per_step [s]']:.3g} s = "
              f"{on['time_per_step [s]'] / off['time_per_step [s]']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
