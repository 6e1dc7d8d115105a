"""Sweeps end to end: concurrent cases under MPI equal serial ones, kill -9 and resume, SLURM."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# runs simulations: make test-fast leaves these out
pytestmark = pytest.mark.slow

MPIEXEC = Path(sys.executable).parent / "mpiexec"
OUTPUT_KEYS = ("mean_x [-]", "surface_x_mean [-]", "surface_x_min [-]",
               "peak_max_gb_normal_traction [Pa]", "peak_max_principal_stress_grains [Pa]")


def _sweep_file(repo, tmp_path, name="s"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
base: {repo / 'configs' / 'quick.yaml'}
set:
  loading.x_end: 0.9
  analysis.enabled: false
  output.pictures: false
  output.mesh_cache: {tmp_path / 'meshes'}
grid:
  geometry.shell_thickness: [0.0, 1.0e-8, 5.0e-8]
  loading.c_rate: [1.0, 2.0]
directory: {tmp_path / name}
""")
    return path


def _run(args, cwd, env=None, timeout=600):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _summary(folder):
    with open(folder / "summary.csv") as fh:
        return {row["folder"]: row for row in csv.DictReader(fh)}


def _manifests(folder):
    out = {}
    for m in (folder / "cases").glob("*/manifest.json"):
        try:
            out[m.parent.name] = json.loads(m.read_text())
        except json.JSONDecodeError:
            pytest.fail(f"half-written manifest {m}")
    return out


@pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not found beside the interpreter")
def test_concurrent_sweep_equals_serial_sweep(repo, tmp_path):
    serial = _run([sys.executable, str(repo / "run_sim.py"), "sweep",
                   str(_sweep_file(repo, tmp_path, "serial"))], tmp_path)
    assert serial.returncode == 0, serial.stderr[-2000:]
    # one line per case, no per-step progress of the cases; each case keeps its run.log
    lines = [ln for ln in serial.stdout.splitlines() if ln.startswith("[sweep ")]
    assert [ln.split("]")[0] for ln in lines] == [f"[sweep {k}/6 done" for k in range(1, 7)]
    assert "ETA" not in serial.stdout
    logs = list((tmp_path / "serial" / "cases").glob("*/run.log"))
    assert len(logs) == 6 and all("ETA" in f.read_text() for f in logs)
    par = _run([str(MPIEXEC), "-n", "2", sys.executable, str(repo / "run_sim.py"), "sweep",
                str(_sweep_file(repo, tmp_path, "parallel")), "--ranks-per-case", "1"], tmp_path)
    assert par.returncode == 0, par.stderr[-2000:]
    assert "2 at a time x 1 rank(s)" in par.stdout
    a, b = _summary(tmp_path / "serial"), _summary(tmp_path / "parallel")
    assert set(a) == set(b) and len(a) == 6
    for case, row in a.items():
        assert row["status"] == b[case]["status"] == "done"
        for key in OUTPUT_KEYS:
            assert float(b[case][key]) == pytest.approx(float(row[key]), rel=1e-8), (case, key)
    assert (tmp_path / "serial" / "summary.png").is_file()


def test_kill_9_at_several_points_then_resume(repo, tmp_path):
    sweep = _sweep_file(repo, tmp_path, "killed")
    folder = tmp_path / "killed"
    finished_at: dict[str, str] = {}
    for kill_after in (1, 3, 4):
        proc = subprocess.Popen([sys.executable, str(repo / "run_sim.py"), "sweep", str(sweep)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            done = [k for k, m in _manifests(folder).items() if m["status"] == "done"] \
                if (folder / "cases").is_dir() else []
            if len(done) >= kill_after:
                time.sleep(0.3 * kill_after)  # land inside the next case, at different moments
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for case, manifest in _manifests(folder).items():
            if manifest["status"] == "done":
                # a finished case is never run again
                assert finished_at.setdefault(case, manifest["started"]) == manifest["started"]
    result = _run([sys.executable, str(repo / "run_sim.py"), "sweep", str(sweep)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    manifests = _manifests(folder)
    assert len(manifests) == 6 and all(m["status"] == "done" for m in manifests.values())
    for case, started in finished_at.items():
        assert manifests[case]["started"] == started
    leftovers = [p for p in folder.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
    assert all(row["status"] == "done" for row in _summary(folder).values())


@pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not found beside the interpreter")
def test_generated_slurm_script_runs_locally(repo, tmp_path):
    sweep = _sweep_file(repo, tmp_path, "slurm")
    script = tmp_path / "job.sh"
    gen = _run([sys.executable, str(repo / "run_sim.py"), "sweep", str(sweep), "--slurm",
                str(script), "--ntasks", "2", "--ranks-per-case", "1", "--only", "0", "1"],
               tmp_path)
    assert gen.returncode == 0, gen.stderr
    text = script.read_text()
    assert "#SBATCH --ntasks=2" in text and "--ranks-per-case 1" in text
    run = _run(["bash", str(script)], tmp_path, env={"NMCFEM_LAUNCHER": f"{MPIEXEC} -n 2"})
    assert run.returncode == 0, run.stderr[-2000:]
    statuses = [m["status"] for m in _manifests(tmp_path / "slurm").values()]
    assert statuses.count("done") == 2  # --only 0 1 (an array task would pass its own index)
