"""The model's version of the paper's 1st versus 46th cycle: the surface state of the first and
the last experiment step ends that a run recorded (``output.at_step_ends``), side by side.

For each of the two snapshots: the rendered Ni-valence map, the distribution of the surface
valence, the mean depth profile, the grown rock-salt layer, and the cone correlation of the
surface valence with the sub-surface crack density per cone half-angle (Supplementary Figs. 2-4
of the source paper compare measured electrodes the same way).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from nmcfem.analysis import cones, figures, metrics
from nmcfem.analysis.surface import Snapshot, load_snapshot, ni_valence, render, surface_valence

#: file names of the snapshots written at experiment step ends (``output.at_step_ends``)
STEP_END_PATTERN = re.compile(r"analysis_snapshot_cycle(\d+)_step(\d+)\.npz$")
FOLDER = "cycle_comparison"


def step_end_snapshots(run_dir: Path) -> list[tuple[int, int, Path]]:
    """(cycle, step, path) of the run's step-end snapshots, in cycle and step order."""
    found = []
    for path in Path(run_dir).glob("analysis_snapshot_cycle*_step*.npz"):
        match = STEP_END_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found)


def describe_state(snap: Snapshot, settings: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of one snapshot and the arrays its figures need (valence per point, map, depth
    profile)."""
    v = surface_valence(snap, settings.probing_depth)
    image = render(snap.surface_points, v, snap.radius, settings.view_direction,
                   settings.pixel_size, settings.field_of_view, settings.probe_fwhm)
    depth = np.nanmean(ni_valence(snap.x_profile, snap.depths[None, :]
                                  < snap.rock_salt_depth[:, None]), axis=0)
    grown = snap.grown_thickness if snap.grown_thickness is not None \
        else np.zeros(len(v))
    summary: dict[str, Any] = {
        "time [s]": snap.time,
        "surface_valence": metrics.describe(v),
        "map": metrics.describe(image),
        "grown_layer_thickness [m]": metrics.describe(grown),
        "damaged_interface_area [m^2]": float(np.sum(snap.facet_areas * snap.facet_damage)),
        "depth_profile": {"depth [m]": snap.depths, "valence": depth},
    }
    if len(snap.facet_areas) and np.any(snap.facet_damage > 0):
        summary["cone_correlation"] = cones.cone_correlation_simulated(
            snap.surface_points, v, snap.facet_centroids, snap.facet_areas, snap.facet_damage,
            snap.radius, settings.cone_angles)
    else:
        summary["cone_correlation"] = "no interface damage: nothing to correlate"
    return summary, {"valence": v, "map": image, "depth": depth}


def compare_cycles(run_dir: str | Path, settings: Any, out: Path) -> dict[str, Any] | None:
    """Compare the first and last step-end snapshots of a run (None where it has fewer than
    two); write the figures into ``out`` when ``settings.figures``.

    Parameters
    ----------
    run_dir: the run folder; settings: the config's ``analysis`` section; out: figure folder.
    """
    found = step_end_snapshots(Path(run_dir))
    if len(found) < 2:
        return None
    states, arrays = {}, {}
    for cycle, step, path in (found[0], found[-1]):
        label = f"cycle {cycle} (end of step {step})"
        states[label], arrays[label] = describe_state(load_snapshot(path), settings)
    first, last = states
    result: dict[str, Any] = {"first": first, "last": last, "states": states}
    result["change of the mean surface valence"] = (
        states[last]["surface_valence"]["mean"] - states[first]["surface_valence"]["mean"])
    files: list[str] = []
    if settings.figures:
        maps = {k: a["map"] for k, a in arrays.items()}
        files += figures.maps_side_by_side(maps, settings.pixel_size, out / "valence_maps")
        files += figures.difference_map(maps[last], maps[first], settings.pixel_size,
                                        out / "valence_change", f"{last} - {first}: Ni valence")
        files += figures.histogram_plot({k: a["valence"] for k, a in arrays.items()},
                                        out / "valence_histograms", "surface Ni valence")
        files += figures.profiles_plot(
            {k: (states[k]["depth_profile"]["depth [m]"] * 1e9, a["depth"])
             for k, a in arrays.items()}, out / "depth_profiles", "depth below surface (nm)",
            "mean Ni valence")
        cone = {k: s["cone_correlation"] for k, s in states.items()
                if isinstance(s["cone_correlation"], dict)}
        if cone:
            files += figures.cone_correlation_plot(cone, out / "cone_correlation",
                                                   "correlation: valence vs crack density")
    result["figures"] = files
    return result
