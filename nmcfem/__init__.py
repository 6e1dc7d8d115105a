"""nmcfem: finite-element chemo-mechanics of single Ni-rich cathode secondary particles.

``dolfinx_solver`` is imported first so that mpi4py initialises MPI before any
compiled DOLFINx/PETSc module loads (the wheel's documented requirement). The
analysis subpackage does not need it and works where the import fails.
"""

try:  # pragma: no cover - exercised by every test run
    import dolfinx_solver  # noqa: F401  (orders MPI ahead of dolfinx/petsc4py)
except ImportError:  # analysis-only installs: nmcfem.analysis never touches dolfinx
    dolfinx_solver = None

from nmcfem.errors import NmcfemError  # noqa: E402  (after the MPI ordering above)

__version__ = "0.1.0"
__all__ = ["NmcfemError", "__version__"]
