"""Analysis module: round trip, real STXM and TXM data, cone analysis, bad input, pipeline."""

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

from nmcfem.analysis import cones, metrics, pipeline, readers, surface, synthetic
from nmcfem.analysis.measured import ratio_map
from nmcfem.analysis.ratio import calibrate, particle_mask, tey_ratio_uncertainty
from nmcfem.atomic import atomic_save_npz
from nmcfem.errors import AnalysisError

PACKAGE = Path(__file__).resolve().parents[2] / "nmcfem" / "analysis"
PIXEL = 60e-9
FOV = 200


def test_analysis_never_imports_the_solver_stack():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("dolfinx", "petsc4py", "ufl", "basix"), \
                    f"{path.name} imports {name}"


def test_round_trip_recovers_drift_and_valence(tmp_path):
    snap = synthetic.make_snapshot(n_points=8000)
    truth = synthetic.rendered_truth(snap, PIXEL, FOV)
    drift = (2.37, -1.61)
    calib = (0.2, -0.2)
    i_a, i_b = synthetic.tey_pair(truth, drift=drift, calibration=calib, counts=1e5)
    frames = [readers.Frame(i_a, 854.0, PIXEL, "a.npy"), readers.Frame(i_b, 856.2, PIXEL, "b.npy")]
    ratio = ratio_map(frames, 854.0, 856.2, mode="tey")
    found = -ratio.shift_px  # the shift that undoes the planted drift
    print("planted drift", drift, "found", found)
    assert np.allclose(found, drift, atol=0.2)
    pairs = [[calib[0] * 2.5 + calib[1], 2.5], [calib[0] * 3.5 + calib[1], 3.5]]
    valence, _ = calibrate(ratio.xi, pairs)
    # rim pixels mix particle and background in both energies: compare the interior
    from scipy import ndimage

    interior = ndimage.binary_erosion(ratio.mask, iterations=3)
    cmp = metrics.compare(valence, truth, interior)
    print("recovered valence vs truth:", cmp)
    assert cmp["pearson"] > 0.95
    # counting statistics: the per-pixel uncertainty follows sqrt(I_A I_B / S^3)
    unc = tey_ratio_uncertainty(np.array([900.0]), np.array([1100.0]))
    assert unc[0] == pytest.approx(np.sqrt(900 * 1100 / 2000 ** 3))


def test_real_stxm_stack(shared_data, tmp_path):
    frames = readers.read_stxm(shared_data / "als-cosmic-stxm-ni-l3" / "stxm-scan.hdr")
    assert [f.image.shape for f in frames] == [(120, 120), (120, 120)]
    assert [f.energy for f in frames] == [853.0, 857.75]
    assert frames[0].pixel_size == pytest.approx(27.2e-9, rel=0.01)
    ratio = ratio_map(frames, 853.0, 857.75)
    assert ratio.mode == "transmission"
    area_um2 = ratio.mask.sum() * frames[0].pixel_size ** 2 * 1e12
    stats = metrics.describe(ratio.xi)
    print(f"STXM drift {ratio.shift_px} px, particle area {area_um2:.3f} um^2, ratio {stats}")
    assert np.linalg.norm(ratio.shift_px) > 1.0  # the sample drifted between energies
    # after correction the two OD images agree far better inside the particle
    before = np.nanstd((ratio.signal_a - ratio.signal_b_raw)[ratio.mask])
    after = np.nanstd((ratio.signal_a - ratio.signal_b)[ratio.mask])
    assert after < 0.7 * before
    assert 0.1 < area_um2 < 10.0 and 0.2 < stats["median"] < 0.9
    hist, edges = np.histogram(ratio.xi[np.isfinite(ratio.xi)], bins=20)
    print("ratio histogram:", dict(zip(np.round(edges[:-1], 3), hist)))
    # registration narrows the ratio distribution (misaligned edges no longer add spread)
    assert stats["std"] < np.nanstd(ratio.xi_unregistered)
    from nmcfem.analysis import figures

    files = figures.maps_side_by_side({"before": ratio.xi_unregistered, "after": ratio.xi},
                                      ratio.pixel_size, tmp_path / "stxm_registration", "ratio")
    assert all(Path(f).is_file() for f in files)


def test_real_txm_frames(shared_data):
    folder = shared_data / "ssrl-6-2c-txm-ni-k"
    files = sorted(folder.glob("*.xrm"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = {f.name: readers.read_xrm(f) for f in files}
    assert any("file name" in str(w.message) for w in caught)
    below = frames["rep01_20161456_ssrl-test-data_08324.0_eV_001of003.xrm"]
    above = frames["rep01_20161456_ssrl-test-data_08354.0_eV_001of003.xrm"]
    ref_below = frames["rep01_000051_ref_20161456_ssrl-test-data_08324.0_eV_001of010.xrm"]
    ref_above = frames["rep01_000351_ref_20161456_ssrl-test-data_08354.0_eV_001of010.xrm"]
    assert (below.energy, above.energy) == (8324.0, 8354.0)
    assert below.meta["energy_source"] == "filename"
    assert below.image.shape == (1024, 1024)
    assert below.pixel_size == pytest.approx(31.2e-9, rel=1e-3)
    abs_below = -np.log(np.clip(below.image, 1, None) / np.clip(ref_below.image, 1, None))
    abs_above = -np.log(np.clip(above.image, 1, None) / np.clip(ref_above.image, 1, None))
    jump = abs_above - abs_below
    mask = particle_mask(jump)
    frac = mask.mean()
    print(f"TXM edge-jump mask covers {frac:.3f} of the frame; jump inside "
          f"{np.median(jump[mask]):.3f}, outside {np.median(jump[~mask]):.3f}")
    assert 0.01 < frac < 0.9
    assert np.median(jump[mask]) > np.median(jump[~mask]) + 0.05


def _planted_volume(n=96, seed=0):
    """Segmented sphere (1 particle, 2 pores) whose pore density varies with direction, and a
    surface value that falls where the pores are dense."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    labels = (r < 0.45 * n).astype(int)
    u = np.stack([z, y, x], axis=-1) / np.maximum(r, 1e-9)[..., None]
    hot = np.array([[1, 0, 0], [0, 1, 0], [0, 0, -1], [0.6, -0.6, 0.5]], dtype=float)
    hot /= np.linalg.norm(hot, axis=1)[:, None]
    intensity = sum(np.exp(-(1 - u @ h) / 0.05) for h in hot)
    pores = (labels == 1) & (rng.uniform(size=labels.shape) < 0.02 + 0.3 * intensity)
    labels[pores] = 2
    centre, surf = cones.volume_surface(labels)
    d = surf - centre
    d /= np.linalg.norm(d, axis=1)[:, None]
    value = 3.0 - 0.2 * sum(np.exp(-(1 - d @ h) / 0.05) for h in hot) + rng.normal(0, 0.01, len(d))
    return labels, surf, value


def test_cone_analysis_recovers_a_planted_negative_correlation():
    labels, surf, value = _planted_volume()
    angles = [5, 10, 15, 20, 30, 45, 60, 90]
    res = cones.cone_correlation_volume(labels, value, surf, angles)
    r = [res[float(a)]["pearson"] for a in angles]
    print("Pearson r by cone half-angle:", dict(zip(angles, np.round(r, 3))))
    assert min(r) < -0.6
    assert all(v < 0 for v in r[:6])
    # a cone much wider than the planted features washes the relation out
    assert abs(r[-1]) < abs(min(r))


def test_cone_analysis_on_simulated_damage():
    snap = synthetic.make_snapshot(n_points=2000, n_facets=3000)
    v = snap["x_profile"][:, 0]
    res = cones.cone_correlation_simulated(snap["surface_points"], v, snap["facet_centroids"],
                                           snap["facet_areas"], snap["facet_damage"],
                                           float(snap["radius"]), [10, 30])
    assert set(res) == {10.0, 30.0} and res[30.0]["mean_density [1/m]"] > 0


@pytest.mark.parametrize("case", ["missing_energy", "mismatched", "corrupt", "truncated_xrm",
                                  "empty_mask", "missing_file", "bad_snapshot"])
def test_bad_input_gives_a_clear_error(tmp_path, case, shared_data_optional=None):
    if case == "missing_energy":
        hdr = tmp_path / "s.hdr"
        hdr.write_text('StackAxis = { Name = "Energy"; Points = (2, 853.0, 857.75);};\n'
                       'PAxis = { Name = "Sample X"; Points = (3, 0.0, 0.1, 0.2);};\n'
                       'QAxis = { Name = "Sample Y"; Points = (3, 0.0, 0.1, 0.2);};\n')
        (tmp_path / "s_a000.xim").write_text("1\t2\t3\n4\t5\t6\n7\t8\t9\n")
        with pytest.raises(AnalysisError, match="2 energies but 1 .xim"):
            readers.read_stxm(hdr)
    elif case == "mismatched":
        frames = [readers.Frame(np.ones((10, 10)), 854.0, 1e-8, "a.npy"),
                  readers.Frame(np.ones((12, 10)), 856.2, 1e-8, "b.npy")]
        with pytest.raises(AnalysisError, match="different shapes"):
            ratio_map(frames, 854.0, 856.2)
    elif case == "corrupt":
        bad = tmp_path / "bad.tif"
        bad.write_bytes(b"II*\x00garbage")
        with pytest.raises(AnalysisError, match="could not be read"):
            readers.read_image(bad)
    elif case == "truncated_xrm":
        bad = tmp_path / "x_08324.0_eV_.xrm"
        bad.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
        with pytest.raises(AnalysisError, match="xrm|could not be read"):
            readers.read_xrm(bad)
    elif case == "empty_mask":
        with pytest.raises(AnalysisError, match="uniform|empty"):
            particle_mask(np.zeros((20, 20)))
    elif case == "missing_file":
        with pytest.raises(AnalysisError, match="not found"):
            readers.read_measured([tmp_path / "nothing.tif", tmp_path / "none.tif"])
    elif case == "bad_snapshot":
        with pytest.raises(AnalysisError, match="no analysis snapshot"):
            pipeline.analyze_run(tmp_path, pipeline.default_settings())


def test_pipeline_writes_figures_and_metrics(tmp_path):
    atomic_save_npz(tmp_path / "analysis_snapshot.npz",
                    **synthetic.make_snapshot(n_points=4000, n_facets=800, shell_thickness=3e-9))
    settings = pipeline.default_settings()
    settings.field_of_view, settings.pixel_size = 160, 70e-9
    res = pipeline.analyze_run(tmp_path, settings)
    out = tmp_path / "analysis"
    assert (out / "metrics.json").is_file()
    for name in ("valence_maps", "radial_profile", "depth_profile", "cone_correlation"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.svg").is_file()
    # the shell (Ni2+) lowers the probing-depth-weighted valence below the bare-surface value
    assert res["simulated_surface_valence"]["mean"] < 3.1
    assert set(res["cone_correlation_simulated"]) == {float(a) for a in settings.cone_angles}


def test_a_grown_layer_counts_as_rock_salt():
    base = synthetic.make_snapshot(n_points=500, shell_thickness=3e-9)
    bare = surface.Snapshot(**_snapshot_fields(base))
    grown = surface.Snapshot(**_snapshot_fields(base), grown_thickness=np.full(500, 7e-9))
    assert np.allclose(grown.rock_salt_depth, 1e-8)
    v_bare = surface.surface_valence(bare, 5e-9)
    v_grown = surface.surface_valence(grown, 5e-9)
    # exp(-d/5 nm) weights: 2 down to 10 nm instead of 3 nm, the layered oxide below
    assert np.all(v_grown < v_bare)
    assert np.all(v_grown - surface.ROCK_SALT_VALENCE
                  < (v_bare - surface.ROCK_SALT_VALENCE) * np.exp(-(1e-8 - 3e-9) / 5e-9) * 1.2)


def _snapshot_fields(data):
    keys = ("radius", "time", "surface_points", "depths", "x_profile", "in_shell",
            "shell_depth", "surface_damage", "facet_centroids", "facet_areas", "facet_damage",
            "facet_kind")
    return {k: (float(data[k]) if k in ("radius", "time") else data[k]) for k in keys}


def test_first_and_last_cycle_compared(tmp_path):
    first = synthetic.make_snapshot(n_points=3000, n_facets=600, shell_thickness=3e-9)
    last = synthetic.make_snapshot(n_points=3000, n_facets=600, shell_thickness=3e-9)
    last["grown_thickness"] = np.full(3000, 1.5e-8)
    last["facet_damage"] = np.clip(last["facet_damage"] * 1.5, 0, 1)
    atomic_save_npz(tmp_path / "analysis_snapshot_cycle0001_step02.npz", **first)
    atomic_save_npz(tmp_path / "analysis_snapshot_cycle0046_step02.npz", **last)
    atomic_save_npz(tmp_path / "analysis_snapshot.npz", **last)
    settings = pipeline.default_settings()
    settings.field_of_view, settings.pixel_size = 120, 90e-9
    res = pipeline.analyze_run(tmp_path, settings)["cycle_comparison"]
    assert res["first"] == "cycle 1 (end of step 2)"
    assert res["last"] == "cycle 46 (end of step 2)"
    one, many = res["states"][res["first"]], res["states"][res["last"]]
    assert many["surface_valence"]["mean"] < one["surface_valence"]["mean"]
    assert res["change of the mean surface valence"] < 0
    assert many["grown_layer_thickness [m]"]["mean"] == pytest.approx(1.5e-8)
    assert set(many["cone_correlation"]) == {float(a) for a in settings.cone_angles}
    out = tmp_path / "analysis" / "cycle_comparison"
    for name in ("valence_maps", "valence_change", "valence_histograms", "depth_profiles",
                 "cone_correlation"):
        assert (out / f"{name}.png").is_file(), name
    # a single step-end snapshot has nothing to compare with
    (tmp_path / "analysis_snapshot_cycle0046_step02.npz").unlink()
    assert "cycle_comparison" not in pipeline.analyze_run(tmp_path, settings)
