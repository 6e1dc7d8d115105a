"""The quick cracking case gives the same cracked area and dissipated energy on any number of
ranks (serial and mpiexec -n 2)."""

from mpi4py import MPI

from nmcfem import timeloop
from nmcfem.config import load_config
from nmcfem.orientations import grain_rotations
from nmcfem.problem import ChemoMechanicsProblem
from nmcfem.runner import load_domain

TIGHT = ["solver.interface.rtol=1.0e-11"]
KEYS = ("cracked_area_full [m^2]", "cracked_area_partial [m^2]", "dissipated_energy [J]",
        "energy_balance_residual [J]", "max_opening [m]", "mean_x [-]",
        "max_gb_normal_traction [Pa]")


def _final(cfg, comm, cache):
    domain = load_domain(cfg, comm, lambda _m: None)
    problem = ChemoMechanicsProblem(domain, cfg, grain_rotations(cfg.geometry,
                                                                 domain.grain_centroids))
    summary = timeloop.run(problem, cfg)
    out = problem.row()
    problem.destroy()
    return summary["steps"], out


def test_quick_cracking_case_is_independent_of_the_number_of_ranks(repo, tmp_path):
    world = MPI.COMM_WORLD
    cache = world.bcast(str(tmp_path) if world.rank == 0 else None, root=0)
    cfg = load_config(repo / "configs" / "quick_cracks.yaml",
                      [f"output.mesh_cache={cache}", *TIGHT])
    steps_par, parallel = _final(cfg, world, cache)
    steps_ser, serial = _final(cfg, MPI.COMM_SELF, cache)  # one rank, on every rank
    assert serial["cracked_area_full [m^2]"] > 0
    report = {k: abs(parallel[k] - serial[k]) / abs(serial[k]) for k in KEYS}
    print(f"{world.size} vs 1 rank(s), {steps_par}/{steps_ser} steps: relative differences "
          + ", ".join(f"{k} {v:.1e}" for k, v in report.items()))
    assert steps_par == steps_ser
    for key, rel in report.items():
        assert rel < 1e-6, key
