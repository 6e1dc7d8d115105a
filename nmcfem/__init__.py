"""nmcfem: finite-element chemo-mechanics of single Ni-rich cathode secondary particles.

``dolfinx_solver`` is imported first so that mpi4py initialises MPI before any
compiled DOLFINx/PETSc module loads (the wheel's documented requirement). The
analysis subpackage does not need it and works where the import fails.
"""

try:  # pragma: no cover - exercised by every test run
    import dolfinx_solver  # noqa: F401  (orders MPI ahead of dolfinx/petsc4py)
except ImportError:  # analysis-only installs: nmcfem.analysis never touches dolfinx
    dolfinx_solver = None

__version__ = "0.1.0"


class NmcfemError(Exception):
    """Base class of every error nmcfem reports to the user as one clear line.

    ``collective`` says whether every rank raises the error together (configuration checks,
    broadcast rank-0 failures, solver divergence seen by all ranks); only such errors may end a
    run without aborting the other ranks.
    """

    collective = True
