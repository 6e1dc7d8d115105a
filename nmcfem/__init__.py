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
from nmcfem.results import load  # noqa: E402

__version__ = "0.1.0"
__all__ = ["NmcfemError", "__version__", "load", "run"]


def run(config, overrides=(), output_dir=None, quiet=False):
    """Run a simulation (and its analysis and pictures, as configured) from Python, like
    ``nmcfem run``; return the loaded run (:class:`nmcfem.results.Run`).

    Parameters
    ----------
    config: YAML config file (e.g. ``configs/quick.yaml``).
    overrides: ``"section.key=value"`` strings, as ``--set`` takes them.
    output_dir: run folder (default ``output.directory/<config name>-<hash>``).
    quiet: print nothing (run.log is still written).
    """
    from pathlib import Path

    from nmcfem.config import load_config
    from nmcfem.runner import run_command, run_folder_path

    cfg = load_config(config, list(overrides))
    name = Path(config).stem
    run_command(cfg, name, output_dir, quiet=quiet)
    return load(run_folder_path(cfg, name, output_dir))
