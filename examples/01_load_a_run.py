"""Load a run back into Python: its time series, and the Li field inside the particle as a
radial profile.

    python examples/01_load_a_run.py                 # runs configs/quick.yaml first
    python examples/01_load_a_run.py runs/default-XXXXXXXX

Writes ``profile.png`` into the run folder.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nmcfem  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run_dir", nargs="?", help="a run folder (default: run configs/quick.yaml)")
parser.add_argument("--out", default="runs", help="parent folder of the new run")
parser.add_argument("--set", dest="overrides", action="append", default=[],
                    help="config override for the new run (section.key=value)")
args = parser.parse_args()

# 1. The run: an existing folder, or a new quick one (4 grains, no cracks, a few seconds).
if args.run_dir:
    run = nmcfem.load(args.run_dir)
else:
    run = nmcfem.run(REPO / "configs" / "quick.yaml", args.overrides,
                     output_dir=Path(args.out) / "example-01", quiet=True)
print(run)

# 2. The time series: arrays by column name, units alongside.
series = run.series
print(f"charged from x = {series['mean_x'][0]:.3f} to {series['mean_x'][-1]:.3f} in "
      f"{series['time'][-1]:.0f} {series.units['time']}; peak principal stress in the grains "
      f"{series['max_principal_stress_grains'].max() / 1e6:.0f} MPa")

# 3. The last output step: vertices (m), Li fraction per vertex, grain per cell.
state = run.fields()
radius = np.linalg.norm(state.points, axis=1)
edges = np.linspace(0.0, radius.max(), 11)
which = np.clip(np.digitize(radius, edges) - 1, 0, len(edges) - 2)
filled = [k for k in range(len(edges) - 1) if np.any(which == k)]  # coarse meshes: gaps
profile = np.array([state["x"][which == k].mean() for k in filled])
centres = 0.5 * (edges[1:] + edges[:-1])[filled]
print(f"t = {state.time:.0f} s: x = {profile[0]:.3f} near the centre, {profile[-1]:.3f} under "
      f"the surface")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
ax1.plot(centres * 1e6, profile, "o-")
ax1.set(xlabel="radius [um]", ylabel="mean Li fraction x [-]", title=f"t = {state.time:.0f} s")
ax2.plot(series["time"], series["mean_x"], label="mean")
ax2.plot(series["time"], series["surface_x_mean"], label="surface")
ax2.set(xlabel="time [s]", ylabel="Li fraction x [-]")
ax2.legend()
fig.savefig(run.path / "profile.png", dpi=120)
print(f"wrote {run.path / 'profile.png'}")
