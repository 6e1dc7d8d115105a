"""Tests that compare results on 1 and 2 ranks: they run under ``mpiexec -n 2`` only (``make
test-mpi``). Only rank 0 reports, so the run ends with one pytest summary line; another rank's
failure still reaches mpiexec's exit status and is named on standard error."""

import gc
import sys

import pytest
from mpi4py import MPI

import nmcfem  # noqa: F401  (orders MPI before the compiled libraries)


def pytest_collection_modifyitems(config, items):
    if MPI.COMM_WORLD.size == 1:
        skip = pytest.mark.skip(reason="compares ranks: run under mpiexec -n 2 (make test-mpi)")
        for item in items:
            if "tests/mpi/" in str(item.fspath).replace("\\", "/"):
                item.add_marker(skip)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if MPI.COMM_WORLD.size > 1 and MPI.COMM_WORLD.rank > 0:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)


def pytest_runtest_teardown(item, nextitem):
    """Free the test's PETSc and DOLFINx objects on every rank together (their destructors are
    collective), then wait for all ranks, so one test's clean-up never meets the next test."""
    gc.collect()
    MPI.COMM_WORLD.Barrier()


def pytest_runtest_logreport(report):
    if MPI.COMM_WORLD.rank > 0 and report.failed:
        print(f"rank {MPI.COMM_WORLD.rank}: FAILED {report.nodeid} ({report.when})\n"
              f"{report.longreprtext[-3000:]}", file=sys.stderr, flush=True)
