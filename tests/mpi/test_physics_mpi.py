"""The quick case gives the same time series on any number of ranks (serial and mpiexec -n 2)."""

from mpi4py import MPI

from nmcfem import timeloop
from nmcfem.config import load_config
from nmcfem.mesh import load_particle
from nmcfem.orientations import grain_rotations
from nmcfem.problem import ChemoMechanicsProblem

# direct factorisations: the solves are exact, whatever the number of ranks
TIGHT = ["solver.linear=direct"]


def _series(cfg, comm, cache):
    domain = load_particle(cfg.geometry, comm=comm, cache_dir=cache)
    problem = ChemoMechanicsProblem(domain, cfg, grain_rotations(cfg.geometry,
                                                                 domain.grain_centroids))
    rows = []
    timeloop.run(problem, cfg, [lambda ev, p, info: rows.append(p.row())
                                if ev == "step" else None])
    return rows


def test_quick_case_is_independent_of_the_number_of_ranks(repo, tmp_path):
    world = MPI.COMM_WORLD
    cache = world.bcast(str(tmp_path) if world.rank == 0 else None, root=0)
    cfg = load_config(repo / "configs" / "quick.yaml", ["loading.x_end=0.4", *TIGHT])
    parallel = _series(cfg, world, cache)
    serial = _series(cfg, MPI.COMM_SELF, cache)  # the same case on one rank, on every rank
    assert len(parallel) == len(serial) > 10
    assert any(r["surface_x_min [-]"] <= cfg.loading.surface_x_min + 0.01 for r in serial)
    # difference relative to each quantity's magnitude over the series
    worst, where = 0.0, None
    for step, (a, b) in enumerate(zip(parallel, serial)):
        for key, value in b.items():
            # the balance residual of a run without cracks is round-off of the chemical work
            ref_key = "chemical_work [J]" if key == "energy_balance_residual [J]" else key
            scale = max(max(abs(r[ref_key]) for r in serial), 1e-300)
            if abs(a[key] - value) / scale > worst:
                worst, where = abs(a[key] - value) / scale, (step, key)
    print(f"largest relative difference over the series: {worst:.2e} at {where}")
    assert worst < 1e-8
