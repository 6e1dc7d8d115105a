"""Hexagonal stiffness, rotations, polycrystal averages, diffusivity and chemical strain."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nmcfem import crystal
from nmcfem.config import Config, load_config

GRAIN = Config().materials.grain
C = crystal.grain_stiffness(GRAIN)


def test_positive_definite_and_symmetric():
    assert np.allclose(C, C.T)
    assert np.all(np.linalg.eigvalsh(C) > 0)


@pytest.mark.parametrize("seed", range(5))
def test_bond_and_tensor_rotation_agree(seed):
    R = Rotation.random(random_state=seed).as_matrix()
    a, b = crystal.rotate_bond(C, R), crystal.rotate_tensor(C, R)
    assert np.allclose(a, b, rtol=0, atol=1e-6 * C.max())
    assert np.all(np.linalg.eigvalsh(a) > 0)


def test_averages_are_rotation_invariant_and_match_literature_values():
    ref = crystal.voigt_reuss_hill(C)
    for seed in range(10):
        rot = crystal.voigt_reuss_hill(crystal.rotate_bond(C, Rotation.random(
            random_state=seed).as_matrix()))
        for key in ref:
            assert rot[key] == pytest.approx(ref[key], rel=1e-12)
    assert ref["E_hill"] / 1e9 == pytest.approx(175, abs=2)
    assert ref["nu_hill"] == pytest.approx(0.28, abs=0.01)
    assert ref["K_reuss"] <= ref["K_hill"] <= ref["K_voigt"]
    assert ref["G_reuss"] <= ref["G_hill"] <= ref["G_voigt"]


def test_young_modulus_along_c_is_163_gpa():
    assert crystal.young_modulus_along(C, [0, 0, 1]) / 1e9 == pytest.approx(163.26, abs=0.05)
    # in-plane isotropy of the hexagonal crystal
    e = [crystal.young_modulus_along(C, [np.cos(a), np.sin(a), 0]) for a in np.linspace(0, 3, 7)]
    assert np.allclose(e, e[0])


def test_axis_invariant_form_reproduces_the_rotated_stiffness():
    k = crystal.transverse_coefficients(GRAIN.C11, GRAIN.C12, GRAIN.C13, GRAIN.C33, GRAIN.C44)
    rng = np.random.default_rng(3)
    for seed in range(5):
        R = Rotation.random(random_state=seed).as_matrix()
        n = R[:, 2]
        e = rng.normal(size=(3, 3))
        e = 0.5 * (e + e.T)
        M, tr, nen = np.outer(n, n), np.trace(e), n @ e @ n
        sig = (k["lam"] * tr * np.eye(3) + 2 * k["muT"] * e
               + k["alpha"] * (tr * M + nen * np.eye(3))
               + 2 * (k["muL"] - k["muT"]) * (e @ M + M @ e) + k["beta"] * nen * M)
        ref = np.einsum("ijkl,kl->ij", crystal.voigt_to_tensor(crystal.rotate_tensor(C, R)), e)
        assert np.allclose(sig, ref, rtol=0, atol=1e-9 * C.max())


def test_isotropic_limits():
    iso = crystal.isotropic_stiffness(190e9, 0.35)
    avg = crystal.voigt_reuss_hill(iso)
    assert avg["E_hill"] == pytest.approx(190e9) and avg["nu_hill"] == pytest.approx(0.35)


def test_diffusivity_tensor():
    n = np.array([1.0, 2.0, 2.0]) / 3.0
    D = crystal.diffusivity_tensor(7e-15, 7e-16, n)
    assert n @ D @ n == pytest.approx(7e-16)
    t = np.cross(n, [0, 0, 1.0])
    t /= np.linalg.norm(t)
    assert t @ D @ t == pytest.approx(7e-15)
    assert np.all(np.linalg.eigvalsh(D) > 0)


def test_chemical_strain_table_and_linear_law():
    cs = GRAIN.chemical_strain
    ea, ec = crystal.chemical_strain_components(cs, np.array([1.0, 0.5, 0.25, 0.275, 0.1]))
    assert ea[0] == 0 and ec[0] == 0
    assert ea[1] == pytest.approx(-0.0137) and ec[1] == pytest.approx(0.0167)
    assert ea[2] == pytest.approx(-0.0193) and ec[2] == pytest.approx(0.0161)
    assert ec[3] == pytest.approx(0.5 * (0.0161 + 0.0193))  # piecewise linear
    assert ec[4] == pytest.approx(-0.013)  # held beyond the table
    lin = load_config(None, ["materials.grain.chemical_strain.law=linear",
                             "materials.grain.chemical_strain.beta=0.03"]).materials.grain
    a, c = crystal.chemical_strain_components(lin.chemical_strain, np.array([0.5]))
    assert a[0] == c[0] == pytest.approx(-0.015)
    n = np.array([0, 0, 1.0])
    eps = crystal.chemical_strain_tensor(cs, 0.5, n)
    assert np.allclose(np.diag(eps), [-0.0137, -0.0137, 0.0167])
