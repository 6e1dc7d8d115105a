"""MPI helpers: rank-0 printing and collective error handling, so no rank hangs or talks twice."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from mpi4py import MPI

from nmcfem import NmcfemError

T = TypeVar("T")


def is_root(comm: MPI.Comm = MPI.COMM_WORLD) -> bool:
    """True on rank 0 of ``comm``."""
    return comm.rank == 0


def log(message: str, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Print ``message`` from rank 0 of ``comm`` only, flushed at once."""
    if comm.rank == 0:
        print(message, flush=True)


def run_on_root(func: Callable[[], T], comm: MPI.Comm = MPI.COMM_WORLD) -> T:
    """Run ``func`` on rank 0 and broadcast its result; an error there is raised on every rank.

    Parameters
    ----------
    func: work to do once (e.g. gmsh meshing, writing a file); its result must be picklable.
    comm: communicator whose ranks all receive the result (or the error).
    """
    outcome: tuple[bool, Any] = (True, None)
    if comm.rank == 0:
        try:
            outcome = (True, func())
        except NmcfemError as exc:
            outcome = (False, (type(exc), str(exc)))
        except Exception as exc:  # noqa: BLE001 - re-raised everywhere as one clear error
            outcome = (False, (NmcfemError, f"{type(exc).__name__}: {exc}"))
    ok, payload = comm.bcast(outcome, root=0) if comm.size > 1 else outcome
    if ok:
        return payload
    err_type, message = payload
    try:
        raise err_type(message)
    except TypeError:  # an error class that needs other constructor arguments
        raise NmcfemError(message) from None


class guard:
    """Context manager that turns an error on any one rank into a clean stop of all ranks.

    A collective :class:`NmcfemError` (raised on every rank alike) passes through unchanged so
    the caller can report it once and exit normally. Any other exception on one rank would
    leave the other ranks waiting in a collective call for ever: it is printed with its rank
    and the whole job is aborted (``MPI_Abort``), which MPICH delivers within seconds.

    Parameters
    ----------
    comm: communicator of the job.
    """

    def __init__(self, comm: MPI.Comm = MPI.COMM_WORLD):
        self.comm = comm

    def __enter__(self) -> "guard":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or self.comm.size == 1:
            return False
        if isinstance(exc, NmcfemError) and getattr(exc, "collective", False):
            return False
        if isinstance(exc, SystemExit) and not exc.code:
            return False
        import traceback

        text = "".join(traceback.format_exception(exc_type, exc, tb))
        print(f"nmcfem: error on rank {self.comm.rank} of {self.comm.size}: "
              f"{exc_type.__name__}: {exc}\n{text}", file=sys.stderr, flush=True)
        self.comm.Abort(1)
        return False  # pragma: no cover - Abort does not return
