"""The distributed mesh has the same global content on any number of ranks."""

import numpy as np
import pytest
from mpi4py import MPI

from nmcfem.config import load_config
from nmcfem.mesh import load_particle, mesh_statistics


def test_statistics_independent_of_ranks(repo, tmp_path):
    comm = MPI.COMM_WORLD
    folder = comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)
    geom = load_config(repo / "configs" / "quick.yaml").geometry
    domain = load_particle(geom, comm=comm, cache_dir=folder)
    stats = mesh_statistics(domain)
    # the same mesh on one rank, computed independently on every rank
    serial = mesh_statistics(load_particle(geom, comm=MPI.COMM_SELF, cache_dir=folder))
    for key, value in serial.items():
        assert stats[key] == pytest.approx(value, rel=1e-12, abs=1e-30), key
    assert stats["n_cells"] == domain.stats["n_cells"]
    assert np.isclose(stats["volume"], domain.stats["particle_volume [m^3]"], rtol=1e-12)
