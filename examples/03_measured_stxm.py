"""Compare a simulated particle surface with a measured soft X-ray (STXM, Ni L3 edge) stack:
the measured Ni-valence ratio map against the map rendered from the simulated surface Li.

    python examples/03_measured_stxm.py [RUN_DIR] [--measured scan.hdr]

Without RUN_DIR it runs configs/quick.yaml first; the default measurement is the ALS COSMIC
stack in the project's shared data folder (``../shared/data`` beside the repository).
"""

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import nmcfem
from nmcfem.analysis.pipeline import analyze_run

REPO = Path(__file__).resolve().parents[1]
STXM = REPO.parent / "shared" / "data" / "als-cosmic-stxm-ni-l3" / "stxm-scan.hdr"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run_dir", nargs="?", help="a run folder (default: run configs/quick.yaml)")
parser.add_argument("--measured", default=str(STXM), help="STXM stack header (.hdr)")
parser.add_argument("--out", default="runs", help="parent folder of the new run")
parser.add_argument("--set", dest="overrides", action="append", default=[],
                    help="config override for the new run (section.key=value)")
args = parser.parse_args()
if not Path(args.measured).is_file():
    sys.exit(f"measured stack {args.measured} not found: pass --measured FILE.hdr (the shared "
             f"data folder sits beside the repository)")

run = (nmcfem.load(args.run_dir) if args.run_dir else
       nmcfem.run(REPO / "configs" / "quick.yaml", [*args.overrides, "output.pictures=false"],
                  output_dir=Path(args.out) / "example-03", quiet=True))

# The analysis settings of the run's own config, with figures, against the measurement.
settings = SimpleNamespace(**{**run.config["analysis"], "figures": True})
out = run.path / "analysis-stxm"
metrics = analyze_run(run.path, settings, measured=[args.measured], out_dir=out)
# how the two maps agree, pixel by pixel after registration (Pearson, Spearman, Wasserstein)
print("simulated vs measured Ni valence map:", json.dumps(metrics["comparison"], indent=1))
print(f"figures and metrics.json in {out}")
