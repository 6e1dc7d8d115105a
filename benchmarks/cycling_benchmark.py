#!/usr/bin/env python3
"""Whole-run wall times of experiments: one full cycle of the default 20-grain particle without
cracks (2 ranks), five cycles of the quick-cracks particle with cracks on and off side by side
(1 rank), and the shipped 46-cycle mutual-modulation run (configs/mutual_modulation.yaml: cracks,
wetted crack faces, a growing passivation layer; 1 rank, which beats 2 on this 4-grain mesh;
target at most 30 minutes), with the
per-cycle capacities the runs report.

Each case is a complete ``run_sim.py run`` (mesh from the cache, time loop, outputs, cycles.csv;
no pictures or analysis), timed from outside. Run: ``python benchmarks/cycling_benchmark.py
[--cases default quick mutual]`` (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CYCLE = ["Charge at 1C until 4.3 V", "Hold at 4.3 V until C/50", "Rest for 30 minutes",
         "Discharge at 1C until 3.0 V", "Rest for 30 minutes"]
QUIET = ["analysis.enabled=false", "output.pictures=false", f"output.mesh_cache={REPO / 'meshes'}"]
#: wall-time target (s) of the 46-cycle mutual-modulation run on the 2-core machine (issue 15)
MUTUAL_TARGET = 1800.0


def run_case(config: str, overrides: list[str], ranks: int, folder: Path) -> dict:
    """Run one config to its end; wall time (s), steps and the per-cycle table."""
    launcher = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] if ranks > 1 \
        else []
    cmd = [*launcher, sys.executable, str(REPO / "run_sim.py"), "run", str(REPO / config),
           "--output-dir", str(folder), *[a for o in QUIET + overrides for a in ("--set", o)]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{config} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    with open(folder / "series.csv") as fh:
        steps = sum(1 for _ in csv.DictReader(fh)) - 1
    with open(folder / "cycles.csv") as fh:
        cycles = list(csv.DictReader(fh))
    return {"wall": wall, "steps": steps, "cycles": cycles}


def report(name: str, result: dict) -> None:
    """Print one case's wall time, steps and cycle table."""
    print(f"{name}: {result['wall']:.1f} s wall, {result['steps']} time steps")
    layer = "passivation_thickness_mean [m]" in (result["cycles"] or [{}])[0]
    print("  cycle  charge [pAh]  discharge [pAh]  CE        cracked [um^2]  held at 4.3 V [s]"
          + ("  layer [nm]  wetted [um^2]" if layer else ""))
    cycles = result["cycles"]
    shown = cycles if len(cycles) <= 10 else cycles[:3] + cycles[-3:]
    for c in shown:
        print(f"  {c['cycle']:>5}  {float(c['charge_capacity [mAh]']) * 1e9:12.1f}  "
              f"{float(c['discharge_capacity [mAh]']) * 1e9:15.1f}  "
              f"{float(c['coulombic_efficiency [-]']):.6f}  "
              f"{float(c['cracked_area [m^2]']) * 1e12:14.2f}  "
              f"{float(c['time_at_upper_cutoff [s]']):17.0f}"
              + (f"  {float(c['passivation_thickness_mean [m]']) * 1e9:10.2f}"
                 f"  {float(c.get('wetted_crack_area [m^2]', 0.0)) * 1e12:13.1f}" if layer else ""))


def main() -> int:
    """Run the chosen cases and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["default", "quick", "mutual"],
                        choices=["default", "quick", "mutual"])
    args = parser.parse_args()
    steps = f"experiment.steps={CYCLE!r}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "default" in args.cases:
            result = run_case("configs/default.yaml", [steps, "cohesive.enabled=false"], 2,
                              root / "default")
            report("default 20-grain particle, one full cycle, no cracks, 2 ranks", result)
        if "quick" in args.cases:
            five = [steps, "experiment.cycles=5"]
            on = run_case("configs/quick_cracks.yaml", five, 1, root / "on")
            report("quick-cracks particle, 5 cycles, cracks on, 1 rank", on)
            off = run_case("configs/quick_cracks.yaml", [*five, "cohesive.enabled=false"], 1,
                           root / "off")
            report("quick-cracks particle, 5 cycles, cracks off, 1 rank", off)
            print(f"ratio cracks on / off (whole 5-cycle runs): {on['wall'] / off['wall']:.2f} "
                  f"(steps {on['steps']} / {off['steps']})")
        if "mutual" in args.cases:
            # the shipped experiment as it stands (its own steps and 46 cycles)
            mutual = run_case("configs/mutual_modulation.yaml", [], 1, root / "mutual")
            report("mutual modulation, quick-cracks particle, 46 cycles, 1 rank", mutual)
            ok = mutual["wall"] <= MUTUAL_TARGET
            print(f"46 cycles in {mutual['wall'] / 60:.1f} min: target {MUTUAL_TARGET / 60:.0f} "
                  f"min {'met' if ok else 'MISSED'}")
            if not ok:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
