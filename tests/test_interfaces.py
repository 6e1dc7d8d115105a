"""Duplicated-vertex meshes for cohesive interfaces: pairs coincide, sides are consistent."""

import numpy as np
import pytest

from nmcfem.cohesive.cutting import split_interfaces
from nmcfem.config import load_config
from nmcfem.geometry import (
    GB_OFFSET,
    OUTER_SURFACE,
    SHELL,
    SHELL_CORE,
    boundary_faces,
    build_particle,
    tet_volumes,
)


@pytest.fixture(scope="module")
def quick(repo=None):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "quick.yaml")
    return build_particle(cfg.geometry)


def test_all_interfaces_open(quick):
    im = split_interfaces(quick, grain_boundaries=True, shell_core=True)
    n_active = np.sum((quick.facet_tags >= GB_OFFSET) | (quick.facet_tags == SHELL_CORE))
    assert len(im.plus) == n_active
    assert np.allclose(im.points[im.plus], im.points[im.minus])  # faces coincide in space
    assert not np.any(im.plus == im.minus)  # but are different vertices
    assert np.all(im.plus_region < im.minus_region)
    assert np.allclose(tet_volumes(im.points, im.tets), tet_volumes(quick.points, quick.tets))
    # each region now only touches itself: the cut mesh's boundary is the outer surface plus
    # both faces of every interface triangle
    outer = np.sum(quick.facet_tags == OUTER_SURFACE)
    assert len(boundary_faces(im.tets)) == outer + 2 * n_active
    # every new vertex is a copy of an input vertex at the same place
    assert np.allclose(im.points, quick.points[im.original_vertex])
    # normals point from the minus side into the plus side (towards the lower region id)
    assert np.allclose(np.linalg.norm(im.normal, axis=1), 1.0)
    sc = im.facet_tag == SHELL_CORE
    radial = im.points[im.plus[sc]].mean(axis=1)
    assert np.all(im.plus_region[sc] == SHELL)  # the shell has the lowest tag (0)
    assert np.all(np.einsum("ij,ij->i", im.normal[sc], radial) > 0)  # shell lies outwards


def test_intact_shell_pins_the_grain_boundaries_it_covers(quick):
    im = split_interfaces(quick, grain_boundaries=True, shell_core=False)
    assert np.all(im.facet_tag >= GB_OFFSET)
    shell_vertices = np.unique(im.tets[quick.cell_tags == SHELL])
    grain_vertices = np.unique(im.tets[quick.cell_tags != SHELL])
    core_surface = np.intersect1d(shell_vertices, grain_vertices)
    # every core-surface vertex stays shared by the shell and the grains under it
    assert len(core_surface) == len(np.unique(quick.facets[quick.facet_tags == SHELL_CORE]))
    none = split_interfaces(quick, grain_boundaries=False, shell_core=False)
    assert len(none.plus) == 0 and np.array_equal(none.tets, quick.tets)
