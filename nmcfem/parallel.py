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


def abort_all(message: str, comm: MPI.Comm = MPI.COMM_WORLD, code: int = 1) -> None:
    """Print ``message`` from this rank and stop every rank of ``comm`` (no hang)."""
    print(f"nmcfem: error (rank {comm.rank}): {message}", file=sys.stderr, flush=True)
    if comm.size > 1:
        comm.Abort(code)
    raise SystemExit(code)
