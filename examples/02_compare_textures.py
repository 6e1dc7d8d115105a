"""Compare two textures of the same particle: random grain orientations against a radial
texture (every grain's c axis along the radius), which changes how Li leaves the surface and
how much stress the grains build.

    python examples/02_compare_textures.py [--set loading.x_end=0.7]

Writes ``textures.png`` into ``runs/example-02/``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import nmcfem  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs", help="parent folder of the runs")
parser.add_argument("--set", dest="overrides", action="append", default=[],
                    help="config override for both runs (section.key=value)")
args = parser.parse_args()
folder = Path(args.out) / "example-02"

runs = {}
for texture in ("random", "radial"):
    runs[texture] = nmcfem.run(REPO / "configs" / "quick.yaml",
                               [*args.overrides, f"geometry.texture={texture}",
                                "output.pictures=false"],
                               output_dir=folder / texture, quiet=True)

print(f"{'texture':8s} {'end time [s]':>12s} {'surface x (end)':>16s} "
      f"{'surface x spread':>17s} {'peak stress grains [MPa]':>25s}")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
for texture, run in runs.items():
    s = run.series
    spread = s["surface_x_max"][-1] - s["surface_x_min"][-1]
    print(f"{texture:8s} {s['time'][-1]:12.0f} {s['surface_x_mean'][-1]:16.3f} {spread:17.3f} "
          f"{s['max_principal_stress_grains'].max() / 1e6:25.0f}")
    ax1.plot(s["mean_x"], s["surface_x_mean"], label=texture)
    ax2.plot(s["mean_x"], s["max_principal_stress_grains"] / 1e6, label=texture)
ax1.set(xlabel="mean Li fraction x [-]", ylabel="surface x [-]")
ax2.set(xlabel="mean Li fraction x [-]", ylabel="max principal stress in grains [MPa]")
for ax in (ax1, ax2):
    ax.invert_xaxis()
    ax.legend()
fig.savefig(folder / "textures.png", dpi=120)
print(f"wrote {folder / 'textures.png'}")
