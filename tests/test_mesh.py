"""Distributed particle mesh: tags survive distribution, cache is reused and invalidated."""

import json

import pytest

import nmcfem.mesh
from nmcfem.config import load_config
from nmcfem.mesh import load_particle, mesh_statistics
from nmcfem.runner import mesh_command


@pytest.fixture
def quick_geometry(repo):
    return load_config(repo / "configs" / "quick.yaml").geometry


def test_distributed_mesh_matches_raw_statistics(quick_geometry, tmp_path):
    d = load_particle(quick_geometry, cache_dir=tmp_path)
    s = mesh_statistics(d)
    raw = d.stats
    assert s["n_cells"] == raw["n_cells"]
    assert s["volume"] == pytest.approx(raw["particle_volume [m^3]"], rel=1e-12)
    assert s["shell_volume"] == pytest.approx(raw["shell_volume [m^3]"], rel=1e-12)
    assert s["grain_boundary_area"] == pytest.approx(raw["grain_boundary_area [m^2]"], rel=1e-12)
    assert s["outer_area"] == pytest.approx(raw["outer_area [m^2]"], rel=1e-12)
    assert s["shell_core_area"] == pytest.approx(raw["shell_core_area [m^2]"], rel=1e-12)
    assert d.n_grains == quick_geometry.n_grains and len(d.grain_centroids) == d.n_grains


def test_cache_is_reused_and_invalidated(quick_geometry, tmp_path):
    messages = []
    first = load_particle(quick_geometry, cache_dir=tmp_path, log=messages.append)
    assert not first.from_cache and "built mesh" in messages[-1]
    for name in ("data.npz", "stats.json", "mesh.msh", "mesh.xdmf", "mesh.h5"):
        assert (first.cache_path / name).is_file(), name
    assert json.loads((first.cache_path / "stats.json").read_text())["n_grains"] == 4
    import meshio

    msh = meshio.read(first.cache_path / "mesh.msh")
    assert {"grain_1", "grain_4", "shell", "outer_surface", "shell_core_interface"} <= \
        set(msh.field_data)
    assert sum(name.startswith("gb_") for name in msh.field_data) == len(first.gb_pairs)
    second = load_particle(quick_geometry, cache_dir=tmp_path, log=messages.append)
    assert second.from_cache and "cache hit" in messages[-1]
    assert second.cache_path == first.cache_path
    changed = load_config(None, ["geometry.n_grains=5", "geometry.mesh.grain_size=2e-6",
                                 "geometry.mesh.boundary_size=1.25e-6"]).geometry
    third = load_particle(changed, cache_dir=tmp_path)
    assert not third.from_cache and third.cache_path != first.cache_path
    # no temporary folders left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mesh_command_reports_statistics(repo, tmp_path, capsys):
    cfg = load_config(repo / "configs" / "quick.yaml", [f"output.mesh_cache={tmp_path}"])
    mesh_command(cfg)
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "n_cells" in out and "quality_min_core" in out
    assert "grain_boundary_area [m^2]" in out and "shell_volume [m^3]" in out


def test_a_mesh_with_slivers_is_repaired_or_reported(repo, tmp_path, monkeypatch):
    """20 grains with grain_seed 2 used to put Voronoi features of a few nm on the sphere (worst
    radius ratio 0.02): the nudged seeds mesh without slivers and load without a warning; a mesh
    below the threshold says so and how to get a better one."""
    messages = []
    geom = load_config(repo / "configs" / "default.yaml", ["geometry.grain_seed=2"]).geometry
    d = load_particle(geom, cache_dir=tmp_path, log=messages.append)
    assert d.stats["quality_min_core"] >= 0.1
    assert not [m for m in messages if m.startswith("WARNING")]
    monkeypatch.setattr(nmcfem.mesh, "MIN_CORE_QUALITY", 0.99)  # (meshing itself unchanged)
    quick = load_config(repo / "configs" / "quick.yaml").geometry
    load_particle(quick, cache_dir=tmp_path, log=messages.append)
    warning = [m for m in messages if m.startswith("WARNING")]
    assert len(warning) == 1 and "geometry.grain_seed (now 1)" in warning[0]
    monkeypatch.undo()
    messages.clear()
    load_particle(quick, cache_dir=tmp_path, log=messages.append)
    assert not [m for m in messages if m.startswith("WARNING")]
