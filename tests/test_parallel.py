"""MPI robustness: an error on one rank stops every rank with its message (no hang)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

MPIEXEC = Path(sys.executable).parent / "mpiexec"

SCRIPT = textwrap.dedent("""
    import time
    import nmcfem
    from mpi4py import MPI
    from nmcfem.parallel import guard
    comm = MPI.COMM_WORLD
    with guard(comm):
        if comm.rank == 1:
            raise RuntimeError("planted failure on rank one")
        comm.barrier()          # rank 0 would wait here for ever without the guard
        time.sleep(60)
""")


@pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not found beside the interpreter")
def test_exception_on_one_rank_stops_all_ranks(tmp_path):
    script = tmp_path / "fail_on_rank1.py"
    script.write_text(SCRIPT)
    t0 = time.perf_counter()
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    elapsed = time.perf_counter() - t0
    assert proc.returncode != 0
    assert "error on rank 1 of 2: RuntimeError: planted failure on rank one" in proc.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s to stop"


def test_run_on_root_broadcasts_errors():
    from nmcfem import NmcfemError
    from nmcfem.parallel import run_on_root

    assert run_on_root(lambda: 42) == 42
    with pytest.raises(NmcfemError, match="ZeroDivisionError"):
        run_on_root(lambda: 1 / 0)
