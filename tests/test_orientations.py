"""Grain orientation textures: proper rotations, statistics of random, geometry of radial."""

import numpy as np
import pytest
from scipy import stats

from nmcfem.config import Geometry
from nmcfem.errors import ConfigError
from nmcfem.orientations import grain_rotations

N = 4000


@pytest.fixture
def centroids():
    rng = np.random.default_rng(11)
    pts = rng.normal(size=(N, 3))
    return pts / np.linalg.norm(pts, axis=1)[:, None] * rng.uniform(0.5e-6, 4.5e-6, (N, 1))


def _check_rotations(R):
    eye = np.einsum("nij,nkj->nik", R, R)
    assert np.allclose(eye, np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(R), 1.0)


def test_random_texture_is_uniform_on_the_sphere(centroids):
    R = grain_rotations(Geometry(n_grains=N, texture="random"), centroids)
    _check_rotations(R)
    c = R[:, :, 2]
    # Uniform on the sphere <=> each Cartesian component uniform on [-1, 1] (Archimedes)
    for k in range(3):
        assert stats.kstest(c[:, k], stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3
    assert np.linalg.norm(c.mean(axis=0)) < 4 / np.sqrt(N)
    # azimuth of c uniform too
    phi = np.arctan2(c[:, 1], c[:, 0])
    assert stats.kstest(phi, stats.uniform(loc=-np.pi, scale=2 * np.pi).cdf).pvalue > 1e-3


def test_radial_texture_c_axis_perpendicular_to_radius(centroids):
    R = grain_rotations(Geometry(n_grains=N, texture="radial"), centroids)
    _check_rotations(R)
    r_hat = centroids / np.linalg.norm(centroids, axis=1)[:, None]
    assert np.max(np.abs(np.sum(R[:, :, 2] * r_hat, axis=1))) < 1e-12
    assert np.allclose(R[:, :, 0], r_hat)  # a along the radius: ab planes open to the surface
    # the c-axis still spreads uniformly over the tangent plane
    ref = np.cross(r_hat, np.eye(3)[np.argmin(np.abs(r_hat), axis=1)])
    ref /= np.linalg.norm(ref, axis=1)[:, None]
    cosang = np.sum(R[:, :, 2] * ref, axis=1)
    assert abs(np.mean(cosang)) < 0.1


def test_tangential_texture_c_axis_along_radius(centroids):
    R = grain_rotations(Geometry(n_grains=N, texture="tangential"), centroids)
    r_hat = centroids / np.linalg.norm(centroids, axis=1)[:, None]
    assert np.allclose(R[:, :, 2], r_hat, atol=1e-12)


def test_list_texture_and_reproducibility():
    geom = Geometry(n_grains=2, texture="list", orientations=[[0, 0, 2, 0], [1, 0, 0, 90]])
    R = grain_rotations(geom, np.zeros((2, 3)))
    assert np.allclose(R[0, :, 2], [0, 0, 1]) and np.allclose(R[1, :, 2], [1, 0, 0])
    g = Geometry(n_grains=5)
    pts = np.random.default_rng(0).normal(size=(5, 3))
    assert np.array_equal(grain_rotations(g, pts), grain_rotations(g, pts))
    other = Geometry(n_grains=5, orientation_seed=99)
    assert not np.allclose(grain_rotations(g, pts), grain_rotations(other, pts))
    with pytest.raises(ConfigError, match="one \\[nx, ny, nz, psi_deg\\] per grain"):
        grain_rotations(geom, np.zeros((3, 3)))
