"""End-to-end runs of the quick case: run folder contents, failures, restart."""

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nmcfem import NmcfemError
from nmcfem.cli import main
from nmcfem.config import load_config
from nmcfem.runner import run_command
from tests.conftest import interrupt_after_step, interrupt_then_restart

# runs simulations: make test-fast leaves these out
pytestmark = pytest.mark.slow


def _quick(repo, tmp_path, *extra):
    return load_config(repo / "configs" / "quick.yaml",
                       [f"output.mesh_cache={tmp_path / 'meshes'}", *extra])


def _series(folder):
    with open(folder / "series.csv") as fh:
        return list(csv.DictReader(fh))


def test_quick_run_writes_a_complete_run_folder(repo, tmp_path, capsys):
    cfg = _quick(repo, tmp_path, "analysis.figures=true")
    folder = tmp_path / "run"
    assert run_command(cfg, "quick", str(folder)) == "done"
    out = capsys.readouterr().out
    assert "results in" in out and str(folder) in out
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["ranks"] == 1
    assert manifest["versions"]["dolfinx"].startswith("0.11")
    for phase in ("mesh", "setup", "assembly", "solve", "output", "analysis"):
        assert phase in manifest["timings [s]"], phase
    rows = _series(folder)
    header = rows[0].keys()
    for key in ("time [s]", "mean_x [-]", "surface_x_mean [-]", "total_li [mol]",
                "max_principal_stress_grains [Pa]", "max_gb_normal_traction [Pa]", "dt [s]",
                "ksp_its_elasticity"):
        assert key in header, key
    assert float(rows[-1]["mean_x [-]"]) == pytest.approx(cfg.loading.x_end, abs=0.01)
    assert float(rows[0]["time [s]"]) == 0.0
    assert any(p.suffix == ".bp" for p in (folder / "fields").iterdir())
    snap = np.load(folder / "analysis_snapshot.npz")
    assert snap["x_profile"].shape == (len(snap["surface_points"]), len(snap["depths"]))
    assert np.all(snap["in_shell"][:, 0]) and not np.any(snap["in_shell"][:, -1])
    metrics = json.loads((folder / "analysis" / "metrics.json").read_text())
    assert 2.0 < metrics["simulated_surface_valence"]["mean"] < 3.8
    assert (folder / "analysis" / "valence_maps.png").is_file()
    # Li conservation in the galvanostatic phase: total Li falls at the applied current
    t = np.array([float(r["time [s]"]) for r in rows])
    li = np.array([float(r["total_li [mol]"]) for r in rows])
    rate = (li[0] - li[-1]) / t[-1]
    assert rate == pytest.approx(li[0] * cfg.loading.c_rate / 3600.0, rel=1e-6)


def test_cv_hold_keeps_the_surface_at_its_limit_and_ends_at_x_end(repo, tmp_path):
    # a surface limit the quick case reaches early: most of the run is the hold
    limit, x_end = 0.75, 0.77
    cfg = _quick(repo, tmp_path, f"loading.surface_x_min={limit}", f"loading.x_end={x_end}",
                 "analysis.enabled=false")
    folder = tmp_path / "hold"
    assert run_command(cfg, "quick", str(folder)) == "done"
    summary = json.loads((folder / "manifest.json").read_text())["summary"]
    assert summary["stop_reason"].startswith("x_end reached")
    assert summary["cv_hold_start [s]"] < 0.1 * summary["end_time [s]"]
    rows = _series(folder)
    tol = cfg.loading.cutoff_tolerance
    surface_min = np.array([float(r["surface_x_min [-]"]) for r in rows])
    assert surface_min.min() >= limit - 1e-9  # held nodes sit at the limit, free ones above
    assert float(rows[-1]["mean_x [-]"]) == pytest.approx(x_end, abs=tol)
    li = np.array([float(r["total_li [mol]"]) for r in rows])
    assert np.all(np.diff(li) < 0)  # the current keeps flowing out, ever more slowly
    # the hold spreads node by node; the steps are not cut to each node's crossing
    assert len(rows) < 45


HOPELESS = ["solver.linear=iterative",
            "solver.elasticity={ksp_type: cg, pc_type: none, ksp_max_it: 2}",
            "time.max_retries=1", "time.dt_initial=0.5"]


def test_solver_failure_is_clear_and_keeps_results(repo, tmp_path):
    cfg = _quick(repo, tmp_path, *HOPELESS)
    folder = tmp_path / "bad"
    with pytest.raises(NmcfemError, match="elasticity solve did not converge.*solver.elasticity"):
        run_command(cfg, "quick", str(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "did not converge" in manifest["error"]


def test_exit_status_tells_bad_input_from_a_failed_run(repo, tmp_path, capsys):
    """0 done, 1 a run that failed (solver), 2 bad input (a key given twice, a measured file
    that is not there): scripts can tell them apart; the message names key, value and line."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("loading:\n  c_rate: 1\n  c_rate: 2\n")
    assert main(["validate-config", str(twice)]) == 2
    err = capsys.readouterr().err
    assert "'c_rate' is given twice" in err and "lines 2 and 3" in err
    missing = ["--set", "analysis.measured=[no/such/scan.hdr]"]
    assert main(["validate-config", str(repo / "configs" / "quick.yaml"), *missing]) == 2
    assert "analysis.measured[0] = 'no/such/scan.hdr' not found" in capsys.readouterr().err
    assert main(["run", str(repo / "configs" / "quick.yaml"), "--output-dir",
                 str(tmp_path / "failed"), "--set", f"output.mesh_cache={tmp_path / 'meshes'}",
                 *[a for o in HOPELESS for a in ("--set", o)]]) == 1
    assert "did not converge" in capsys.readouterr().err


def test_restart_inside_the_cv_hold_equals_the_uninterrupted_run(repo, tmp_path, monkeypatch):
    """Interrupted while part of the surface is held at its limit (local CV), continued from
    the checkpoint: the protocol's phase, held nodes and hold start come back with it."""
    overrides = ["loading.x_end=0.6", "loading.c_rate=3", "output.checkpoint_every=1",
                 "analysis.enabled=false"]
    cfg = _quick(repo, tmp_path, *overrides)
    full = tmp_path / "full"
    run_command(cfg, "quick", str(full))
    rows = _series(full)
    limit = cfg.loading.surface_x_min
    held = next(int(r["step"]) for r in rows if float(r["surface_x_min [-]"]) <= limit + 1e-9)
    assert held < len(rows) - 4, "the hold must start well before the end"
    part = tmp_path / "part"
    interrupt_then_restart(monkeypatch, cfg, repo / "configs" / "quick.yaml", "quick", part,
                           held + 2, overrides, tmp_path / "meshes")
    b = _series(part)
    assert len(rows) == len(b)
    for ra, rb in zip(rows, b):
        for key in ("time [s]", "mean_x [-]", "surface_x_min [-]", "surface_x_mean [-]",
                    "total_li [mol]"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10, abs=1e-14), key
    summaries = [json.loads((f / "manifest.json").read_text())["summary"] for f in (full, part)]
    assert summaries[0]["cv_hold_start [s]"] == summaries[1]["cv_hold_start [s]"]


def test_restart_from_checkpoint_equals_uninterrupted_run(repo, tmp_path, monkeypatch):
    overrides = ["output.checkpoint_every=4", "analysis.enabled=false"]
    cfg = _quick(repo, tmp_path, *overrides)
    full = tmp_path / "full"
    run_command(cfg, "quick", str(full))
    # an interrupted run: stop right after the checkpoint of step 8
    undo = interrupt_after_step(monkeypatch, 9)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_command(cfg, "quick", str(part))
    undo()
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and f"--restart {part}" in manifest["error"]
    assert main(["run", str(repo / "configs" / "quick.yaml"), "--restart", str(part),
                 "--set", f"output.mesh_cache={tmp_path / 'meshes'}",
                 *[a for o in overrides for a in ("--set", o)]]) == 0
    a, b = _series(full), _series(part)
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for key in ("time [s]", "mean_x [-]", "surface_x_min [-]", "max_gb_normal_traction [Pa]"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10, abs=1e-12), key


def test_sigterm_leaves_an_interrupted_manifest(repo, tmp_path):
    """A batch time limit (SIGTERM) mid-run: exit status 130, manifest "interrupted"."""
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(repo / "run_sim.py"), "run",
                             str(repo / "configs" / "quick.yaml"), "--output-dir", str(folder),
                             "--set", f"output.mesh_cache={tmp_path / 'meshes'}",
                             "--set", "time.dx_target=0.002"], cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not (folder / "series.csv").is_file() and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "SIGTERM" in manifest["error"]


def test_restart_refuses_another_config(repo, tmp_path):
    cfg = _quick(repo, tmp_path, "output.checkpoint_every=2", "analysis.enabled=false",
                 "loading.x_end=0.95")
    folder = tmp_path / "r"
    run_command(cfg, "quick", str(folder))
    code = main(["run", str(repo / "configs" / "quick.yaml"), "--restart", str(folder),
                 "--set", "loading.x_end=0.9"])
    assert code == 2
    # how the equations are solved may change (e.g. a direct solver for a struggling run)
    same = [f"output.mesh_cache={tmp_path / 'meshes'}", "output.checkpoint_every=2",
            "analysis.enabled=false", "loading.x_end=0.95", "solver.elasticity.ksp_rtol=1e-9"]
    assert main(["run", str(repo / "configs" / "quick.yaml"), "--restart", str(folder),
                 *[a for o in same for a in ("--set", o)]]) == 0
