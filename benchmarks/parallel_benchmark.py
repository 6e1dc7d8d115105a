#!/usr/bin/env python3
"""Parallel efficiency: the default step on 1 vs 2 ranks, and sweep throughput with two
concurrent cases (``--ranks-per-case 1`` on 2 ranks) against the same sweep run serially."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def step_time(ranks: int) -> float:
    """Seconds per coupled step of the default case on ``ranks`` ranks."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "physics_benchmark.py"), "--case", "1.0"]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
    return json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][0][7:])[
        "time_per_step [s]"]


def sweep_time(folder: Path, parallel: bool) -> float:
    """Wall time (s) of a 4-case quick sweep, serial or two cases at a time."""
    sweep = folder / ("par.yaml" if parallel else "ser.yaml")
    sweep.write_text(f"base: {REPO / 'configs' / 'quick.yaml'}\nset:\n  analysis.enabled: false\n"
                     f"grid:\n  loading.c_rate: [1.0, 1.5, 2.0, 2.5]\n"
                     f"directory: {folder / sweep.stem}\n")
    cmd = [sys.executable, str(REPO / "run_sim.py"), "sweep", str(sweep)]
    if parallel:
        cmd = [MPIEXEC, "-n", "2", *cmd, "--ranks-per-case", "1"]
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, cwd=folder, check=True)
    return time.perf_counter() - t0


def main() -> int:
    """Print the speed-up of the default step and the sweep throughput ratio."""
    t1, t2 = step_time(1), step_time(2)
    print(f"default step: {t1:.2f} s on 1 rank, {t2:.2f} s on 2 ranks: speed-up {t1 / t2:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sweep_time(folder, False)  # warm the mesh cache and the form compiler cache
        serial = sweep_time(folder / "s", False) if (folder / "s").mkdir() is None else 0.0
        par = sweep_time(folder / "p", True) if (folder / "p").mkdir() is None else 0.0
    print(f"4-case quick sweep: {serial:.1f} s serial, {par:.1f} s with 2 concurrent cases: "
          f"throughput x{serial / par:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
