"""Particle geometry: volumes, grain-boundary area, conformity, shell layers, tags, cache."""

import time

import numpy as np
import pytest
from scipy.spatial import Delaunay

from nmcfem.config import load_config
from nmcfem.geometry import (
    GB_OFFSET,
    OUTER_SURFACE,
    SHELL,
    SHELL_CORE,
    SMALL_FEATURE,
    boundary_faces,
    build_particle,
    small_voronoi_features,
    split_prisms,
    tet_faces,
    tet_volumes,
    triangle_areas,
    voronoi_seeds,
)


@pytest.fixture(scope="module")
def default_mesh():
    """The default geometry (20 grains, 10 nm shell, 0.3 um boundary size)."""
    return load_config().geometry, build_particle(load_config().geometry)


def _faces_with_owners(tets):
    faces, owner = tet_faces(tets)
    order = np.lexsort(faces.T[::-1])
    return faces[order], owner[order]


def test_default_volumes_and_areas_match_geometry(default_mesh):
    geom, d = default_mesh
    R, h = geom.radius, geom.shell_thickness
    assert d.stats["n_grains"] >= 20 and geom.radius == 5e-6 and h == 10e-9
    vol = tet_volumes(d.points, d.tets)
    assert vol.sum() == pytest.approx(4 / 3 * np.pi * R ** 3, rel=0.01)
    assert vol[d.cell_tags == SHELL].sum() == pytest.approx(4 / 3 * np.pi * (R ** 3 - (R - h) ** 3),
                                                            rel=0.01)
    # grain-boundary area against the exact area of the OCC model's planar faces
    gb = d.facets[d.facet_tags >= GB_OFFSET]
    assert triangle_areas(d.points, gb).sum() == pytest.approx(
        d.stats["grain_boundary_area_geometry [m^2]"], rel=0.01)
    assert np.all(vol > 0)


def test_default_mesh_is_conformal_and_tagged(default_mesh):
    geom, d = default_mesh
    faces, owner = _faces_with_owners(d.tets)
    same = np.all(faces[1:] == faces[:-1], axis=1)
    # no face is shared by more than two tetrahedra
    assert not np.any(same[1:] & same[:-1])
    # boundary faces of the tet mesh are exactly the OUTER_SURFACE facets (no hanging nodes)
    outer = np.sort(d.facets[d.facet_tags == OUTER_SURFACE], axis=1)
    assert np.array_equal(np.unique(outer, axis=0), boundary_faces(d.tets))
    # every grain-boundary facet is an interior face with two different grains on its sides
    pair_first = np.flatnonzero(same)
    shared = {tuple(faces[i]): (owner[i], owner[i + 1]) for i in pair_first}
    tags = d.cell_tags
    for tri, tag in zip(np.sort(d.facets, axis=1), d.facet_tags):
        if tag == OUTER_SURFACE:
            continue
        a, b = shared[tuple(tri)]
        regions = sorted((tags[a], tags[b]))
        if tag == SHELL_CORE:
            assert regions[0] == SHELL and regions[1] >= 1
        else:
            assert list(regions) == list(d.gb_pairs[tag - GB_OFFSET])
    # every grain and every grain boundary is present
    assert set(np.unique(tags)) == {SHELL, *range(1, geom.n_grains + 1)}
    assert set(np.unique(d.facet_tags[d.facet_tags >= GB_OFFSET])) == \
        {GB_OFFSET + k for k in range(len(d.gb_pairs))}
    assert np.any(d.facet_tags == SHELL_CORE) and np.any(d.facet_tags == OUTER_SURFACE)


def _assert_shell_layers(geom, d):
    shell_vertices = np.unique(d.tets[d.cell_tags == SHELL])
    r = np.linalg.norm(d.points[shell_vertices], axis=1)
    layers = geom.mesh.shell_layers
    expected = (geom.radius - geom.shell_thickness
                + np.arange(layers + 1) * geom.shell_thickness / layers)
    nearest = np.abs(r[:, None] - expected[None, :]).argmin(axis=1)
    assert np.max(np.abs(r - expected[nearest])) < 1e-3 * geom.shell_thickness
    assert set(nearest) == set(range(layers + 1))
    shell = tet_volumes(d.points, d.tets)[d.cell_tags == SHELL].sum()
    R, h = geom.radius, geom.shell_thickness
    assert shell == pytest.approx(4 / 3 * np.pi * (R ** 3 - (R - h) ** 3), rel=0.02)


def test_shell_has_the_requested_element_layers(default_mesh):
    """The default shell is one layer of prisms; more layers split its thickness evenly."""
    _assert_shell_layers(*default_mesh)
    assert default_mesh[0].mesh.shell_layers == 1
    geom = load_config(None, ["geometry.n_grains=3", "geometry.mesh.shell_layers=3",
                              "geometry.mesh.boundary_size=1.25e-6",
                              "geometry.mesh.grain_size=2e-6"]).geometry
    _assert_shell_layers(geom, build_particle(geom))


def test_prism_split_is_conformal():
    # two prisms sharing the quad over edge (1,2), numbered so the shared diagonal matters
    bottom = np.array([[0, 1, 2], [2, 1, 3]])
    top = bottom + 10
    tets = split_prisms(bottom, top)
    faces = {tuple(sorted(f)) for t in tets for f in
             (t[[0, 1, 2]], t[[0, 1, 3]], t[[0, 2, 3]], t[[1, 2, 3]])}
    # the quad (1,2,12,11) is cut the same way from both sides: by the diagonal 11-2
    assert (1, 2, 11) in faces and (2, 11, 12) in faces
    assert (1, 2, 12) not in faces and (1, 11, 12) not in faces


@pytest.mark.parametrize("overrides,n", [
    (["geometry.n_grains=1", "geometry.shell_thickness=0"], 1),
    (["geometry.n_grains=1", "geometry.mesh.boundary_size=1e-6",
      "geometry.mesh.grain_size=1.5e-6"], 1),
    (["geometry.n_grains=100", "geometry.mesh.boundary_size=1.5e-6",
      "geometry.mesh.grain_size=1.5e-6"], 100),
])
def test_other_grain_counts_build(overrides, n):
    geom = load_config(None, overrides).geometry
    t0 = time.perf_counter()
    d = build_particle(geom)
    assert d.stats["n_grains"] == n
    assert set(np.unique(d.cell_tags[d.cell_tags != SHELL])) == set(range(1, n + 1))
    assert np.all(tet_volumes(d.points, d.tets) > 0)
    assert time.perf_counter() - t0 < 180
    if n > 1:
        assert len(d.gb_pairs) >= n  # every grain touches several others
        assert d.stats["quality_min_core"] >= 0.1  # no slivers at tiny Voronoi features


def test_partial_shell_cap_covers_the_requested_fraction():
    geom = load_config(None, ["geometry.shell_cap_angle=90", "geometry.n_grains=3",
                              "geometry.mesh.boundary_size=0.8e-6",
                              "geometry.mesh.grain_size=1.5e-6"]).geometry
    d = build_particle(geom)
    R, h = geom.radius, geom.shell_thickness
    shell = tet_volumes(d.points, d.tets)[d.cell_tags == SHELL].sum()
    assert shell == pytest.approx(0.5 * 4 / 3 * np.pi * (R ** 3 - (R - h) ** 3), rel=0.05)
    centres = d.points[d.tets[d.cell_tags == SHELL]].mean(axis=1)
    assert np.all(centres[:, 2] > -0.1 * R)  # only the upper hemisphere


def test_seeds_are_reproducible():
    geom = load_config(None, ["geometry.n_grains=3", "geometry.mesh.boundary_size=1.2e-6",
                              "geometry.mesh.grain_size=2e-6"]).geometry
    a, b = build_particle(geom), build_particle(geom)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.tets, b.tets)


def test_a_voronoi_vertex_on_the_sphere_is_a_small_feature():
    rng = np.random.default_rng(7)
    seeds = rng.uniform(-1, 1, size=(30, 3))
    tri = Delaunay(seeds)
    # a Voronoi vertex (circumcentre of a Delaunay tetrahedron) placed on the sphere
    p = seeds[tri.simplices[0]]
    a = p[1:] - p[0]
    vertex = p[0] + np.linalg.solve(a, 0.5 * np.einsum("ij,ij->i", a, a))
    radius = float(np.linalg.norm(vertex))
    found = small_voronoi_features(seeds, radius, 1e-3 * radius)
    assert any(set(ids) >= set(tri.simplices[0]) for ids in found)
    assert not small_voronoi_features(seeds, radius * 1.37, 1e-9)


@pytest.mark.parametrize("n", [20, 50, 100])
def test_random_seeds_are_nudged_clear_of_small_features(n):
    geom = load_config(None, [f"geometry.n_grains={n}"]).geometry
    seeds = voronoi_seeds(geom)
    core = geom.radius - geom.shell_thickness
    assert not small_voronoi_features(seeds, core, SMALL_FEATURE * geom.mesh.boundary_size)
    # the nudges are small: a few seeds move by a fraction of the seed spacing
    raw = load_config(None, [f"geometry.n_grains={n}", "geometry.grain_points="
                             + str(seeds.tolist())]).geometry
    assert np.array_equal(voronoi_seeds(raw), seeds)  # explicit points are never nudged
    rng = np.random.default_rng(geom.grain_seed)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    drawn = direction * (0.92 * core * rng.uniform(size=n) ** (1 / 3))[:, None]
    moved = np.linalg.norm(seeds - drawn, axis=1)
    assert np.count_nonzero(moved) <= 0.3 * n
    assert moved.max() < 0.1 * core
    if n == 20:  # the default particle keeps its seeds (and so its mesh)
        assert not np.any(moved)
