"""Under mpiexec only rank 0 reports, so the run ends with one pytest summary line; another
rank's failure still reaches mpiexec's exit status and is named on standard error."""

import sys

import pytest

import nmcfem  # noqa: F401  (orders MPI before the compiled libraries)
from mpi4py import MPI


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if MPI.COMM_WORLD.size > 1 and MPI.COMM_WORLD.rank > 0:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)


def pytest_runtest_logreport(report):
    if MPI.COMM_WORLD.rank > 0 and report.failed:
        print(f"rank {MPI.COMM_WORLD.rank}: FAILED {report.nodeid} ({report.when})\n"
              f"{report.longreprtext[-3000:]}", file=sys.stderr, flush=True)
