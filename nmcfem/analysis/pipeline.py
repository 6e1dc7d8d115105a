"""Analysis of a run folder: simulated surface valence, forward rendering, comparison with
measured maps, cone analysis, figures and ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import ndimage

from nmcfem.analysis import cones, figures, metrics
from nmcfem.analysis.cycle_comparison import FOLDER, compare_cycles
from nmcfem.analysis.measured import ratio_map, valence_map
from nmcfem.analysis.readers import read_measured
from nmcfem.analysis.registration import align_map
from nmcfem.analysis.surface import load_snapshot, ni_valence, render, surface_valence
from nmcfem.atomic import atomic_write_json
from nmcfem.errors import AnalysisError

SNAPSHOT = "analysis_snapshot.npz"
#: pixels at the silhouette edge left out of map comparisons
RIM_PIXELS = 2


def default_settings() -> SimpleNamespace:
    """Analysis settings with the schema defaults (tests and scripts without a config)."""
    from nmcfem.config import Analysis, to_dict

    return SimpleNamespace(**to_dict(Analysis()))


def simulated_map(snap, settings) -> tuple[np.ndarray, np.ndarray]:
    """Per-point surface valence and its rendered map as the instrument sees it."""
    v = surface_valence(snap, settings.probing_depth)
    image = render(snap.surface_points, v, snap.radius, settings.view_direction,
                   settings.pixel_size, settings.field_of_view, settings.probe_fwhm)
    return v, image


def _cracking_history(run_dir: Path, out: Path) -> list[str]:
    """Figures of the cracked area and of the stresses against time, from ``series.csv``
    (only for runs with cohesive cracks)."""
    import csv

    path = run_dir / "series.csv"
    if not path.is_file():
        return []
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "cracked_area_full [m^2]" not in rows[0]:
        return []
    col = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    t = col["time [s]"]
    files = figures.profiles_plot(
        {"fully cracked": (t, col["cracked_area_full [m^2]"] * 1e12),
         "partly damaged": (t, col["cracked_area_partial [m^2]"] * 1e12)},
        out / "cracked_area", "time (s)", "interface area (um^2)")
    files += figures.profiles_plot(
        {"max principal stress in grains": (t, col["max_principal_stress_grains [Pa]"] / 1e6),
         **({"principal stress exceeded in 1 % of the grains' volume":
             (t, col["p99_principal_stress_grains [Pa]"] / 1e6)}
            if "p99_principal_stress_grains [Pa]" in col else {}),
         "max grain-boundary normal traction": (t, col["max_gb_normal_traction [Pa]"] / 1e6)},
        out / "stress_history", "time (s)", "stress (MPa)")
    return files


def analyze_run(run_dir: str | Path, settings: Any, measured: list | None = None,
                out_dir: str | Path | None = None, snapshot: str = SNAPSHOT) -> dict[str, Any]:
    """Analyse a finished run and write figures and ``metrics.json`` (returns the metrics).

    Parameters
    ----------
    run_dir: run folder holding ``analysis_snapshot.npz``.
    settings: the config's ``analysis`` section (or :func:`default_settings`).
    measured: measured files (one STXM ``.hdr``, or two images/``.xrm`` frames), or None.
    out_dir: output folder (default ``run_dir/analysis``).
    snapshot: snapshot file in ``run_dir`` (e.g. ``analysis_snapshot_cycle0046_step02.npz``
        of ``output.at_step_ends``).
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "analysis"
    if not (run_dir / snapshot).is_file():
        found = sorted(p.name for p in run_dir.glob("analysis_snapshot*.npz"))
        raise AnalysisError(f"{run_dir}: no analysis snapshot '{snapshot}' (snapshots there: "
                            f"{', '.join(found) or 'none'})")
    snap = load_snapshot(run_dir / snapshot)
    v_points, sim = simulated_map(snap, settings)
    result: dict[str, Any] = {
        "time [s]": snap.time,
        "probing_depth [m]": settings.probing_depth,
        "view_direction": list(settings.view_direction),
        "simulated_surface_valence": metrics.describe(v_points),
        "simulated_map": metrics.describe(sim),
    }
    rad_x, rad_sim = metrics.radial_profile(sim)
    result["simulated_radial_profile"] = {"r_normalised": rad_x, "valence": rad_sim}
    depth_profile = np.nanmean(ni_valence(snap.x_profile, snap.depths[None, :]
                                          < snap.rock_salt_depth[:, None]), axis=0)
    result["simulated_depth_profile"] = {"depth [m]": snap.depths, "valence": depth_profile}

    cone_sim = None
    if len(snap.facet_areas) and np.any(snap.facet_damage > 0):
        cone_sim = cones.cone_correlation_simulated(
            snap.surface_points, v_points, snap.facet_centroids, snap.facet_areas,
            snap.facet_damage, snap.radius, settings.cone_angles)
        result["cone_correlation_simulated"] = cone_sim
    else:
        result["cone_correlation_simulated"] = ("no interface damage in this run: nothing to "
                                                "correlate")

    files: list[str] = []
    maps = {"simulated": sim}
    if measured:
        frames = read_measured(measured)
        ratio = ratio_map(frames, settings.energy_a, settings.energy_b)
        pairs = settings.valence_calibration
        # align the simulated map to the measured silhouette, then calibrate and compare
        meas_valence_guess = ratio.xi
        aligned, params = align_map(sim, meas_valence_guess, np.isfinite(sim), ratio.mask)
        val, (slope, offset) = valence_map(ratio, pairs, aligned)
        result["measured"] = {
            "energies [eV]": ratio.energies, "mode": ratio.mode,
            "drift_correction_px": ratio.shift_px, "pixel_size [m]": ratio.pixel_size,
            "particle_area [m^2]": float(ratio.mask.sum() * (ratio.pixel_size or 0.0) ** 2),
            "ratio": metrics.describe(ratio.xi), "valence": metrics.describe(val),
            "calibration": {"slope": slope, "offset": offset,
                            "source": "pairs" if pairs else "fitted to the simulated map"},
            "alignment": params,
        }
        # rim pixels mix particle and background: compare the interior only
        interior = ndimage.binary_erosion(ratio.mask, iterations=RIM_PIXELS)
        result["comparison"] = metrics.compare(aligned, val, interior)
        maps = {"measured": val, "simulated (aligned)": aligned}
        if settings.figures:
            files += figures.difference_map(aligned, val, ratio.pixel_size,
                                            out / "difference_map", "simulated - measured valence")
            files += figures.histogram_plot({"measured": val, "simulated": aligned},
                                            out / "valence_histograms", "Ni valence")
            files += figures.maps_side_by_side(
                {"before drift correction": ratio.xi_unregistered,
                 "after drift correction": ratio.xi}, ratio.pixel_size, out / "ratio_registration",
                label="ratio ξ")
    if settings.figures:
        files += figures.maps_side_by_side(maps, settings.pixel_size if not measured else
                                           result["measured"]["pixel_size [m]"],
                                           out / "valence_maps")
        files += figures.profiles_plot({"simulated map": (rad_x, rad_sim)}, out / "radial_profile",
                                       "distance from centre / radius (projected)", "Ni valence")
        files += figures.profiles_plot({"mean over the surface": (snap.depths * 1e9,
                                                                  depth_profile)},
                                       out / "depth_profile", "depth below surface (nm)",
                                       "Ni valence")
        files += _cracking_history(run_dir, out)
        if cone_sim:
            files += figures.cone_correlation_plot({"simulated": cone_sim},
                                                   out / "cone_correlation",
                                                   "correlation: valence vs crack density")
    if snapshot == SNAPSHOT:  # the run's end: also its first against its last chosen cycle
        cycles = compare_cycles(run_dir, settings, out / FOLDER)
        if cycles is not None:
            files += cycles["figures"]
            result["cycle_comparison"] = cycles
    result["figures"] = files
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "simulated_valence_map.npy", sim)
    # last: its presence means the analysis finished
    atomic_write_json(out / "metrics.json", result)
    return result
