"""Single-grain isotropic sphere problems for the closed-form verification tests."""

import numpy as np
import pytest
from mpi4py import MPI

from nmcfem.config import load_config
from nmcfem.mesh import load_particle
from nmcfem.orientations import grain_rotations
from nmcfem.problem import ChemoMechanicsProblem

E_ISO, NU_ISO = 175e9, 0.28
LAM = E_ISO * NU_ISO / ((1 + NU_ISO) * (1 - 2 * NU_ISO))
MU = E_ISO / (2 * (1 + NU_ISO))
# direct factorisations: the solves are exact, whatever the number of ranks
TIGHT = ["solver.linear=direct"]


def isotropic_sphere_config(size: float, extra=()):
    """Config of a single isotropic grain (D_ab = D_c), no shell, mesh size ``size`` (m)."""
    return load_config(None, [
        "geometry.n_grains=1", "geometry.shell_thickness=0",
        f"geometry.mesh.boundary_size={size}", f"geometry.mesh.grain_size={size}",
        "materials.grain.D_c=7.0e-15",
        f"materials.grain.C11={LAM + 2 * MU}", f"materials.grain.C33={LAM + 2 * MU}",
        f"materials.grain.C12={LAM}", f"materials.grain.C13={LAM}", f"materials.grain.C44={MU}",
        "materials.grain.chemical_strain.law=linear",
        "materials.grain.chemical_strain.beta=0.02",
        "loading.x_end=0.2", *TIGHT, *extra])


@pytest.fixture(scope="session")
def mesh_cache(tmp_path_factory):
    """A mesh cache shared by the verification tests."""
    comm = MPI.COMM_WORLD
    path = tmp_path_factory.mktemp("meshes") if comm.rank == 0 else None
    return comm.bcast(str(path) if path else None, root=0)


def make_problem(cfg, cache, comm=MPI.COMM_WORLD):
    """Build the problem for ``cfg`` on a cached mesh."""
    domain = load_particle(cfg.geometry, comm=comm, cache_dir=cache)
    return ChemoMechanicsProblem(domain, cfg, grain_rotations(cfg.geometry, domain.grain_centroids))


def advance(problem, dts, mechanics=False, callback=None):
    """Take the steps ``dts`` (s) with transport only (or full steps), calling ``callback``."""
    for dt in dts:
        problem.step(dt, mechanics=mechanics)
        problem.accept()
        if callback is not None:
            callback(problem)


def vertex_radii(problem):
    """Radius (m) of every owned P1 DOF."""
    n = problem.transport.V.dofmap.index_map.size_local
    return np.linalg.norm(problem.transport.V.tabulate_dof_coordinates()[:n], axis=1)
