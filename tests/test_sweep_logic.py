"""Sweep expansion, validation, resume and summary logic (with a stand-in for the solver)."""

import json

import pytest

from nmcfem import NmcfemError
from nmcfem import sweep as sw
from nmcfem.atomic import atomic_write_json
from nmcfem.errors import ConfigError
from nmcfem.outputs import MANIFEST


def _write(tmp_path, text):
    (tmp_path / "base.yaml").write_text("geometry:\n  n_grains: 4\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_grid_zip_and_cases_expand(tmp_path):
    path = _write(tmp_path, f"""
base: base.yaml
grid:
  loading.c_rate: [1.0, 2.0]
  geometry.texture: [random, radial]
zip:
  cohesive.grain_boundary.strength: [1.0e8, 2.0e8]
  cohesive.grain_boundary.toughness: [0.5, 1.0]
cases:
  - {{geometry.n_grains: 6}}
directory: {tmp_path}/out
""")
    s = sw.load_sweep(path)
    assert len(s.cases) == 2 * 2 * 2 + 1
    assert s.cases[0].config.geometry.n_grains == 4
    assert s.cases[-1].config.geometry.n_grains == 6
    strengths = {c.config.cohesive.grain_boundary.strength for c in s.cases[:8]}
    assert strengths == {1e8, 2e8}
    pairs = {(c.config.cohesive.grain_boundary.strength,
              c.config.cohesive.grain_boundary.toughness) for c in s.cases[:8]}
    assert pairs == {(1e8, 0.5), (2e8, 1.0)}  # zipped, not crossed
    assert len({c.folder for c in s.cases}) == len(s.cases)
    assert s.cases[0].values["cohesive.grain_boundary.strength"] == 1e8  # typed, not a string


@pytest.mark.parametrize("body,words", [
    ("base: base.yaml\ngird:\n  loading.c_rate: [1]\n",
     ["unknown key 'gird'", "did you mean 'grid'"]),
    ("base: base.yaml\ngrid:\n  loading.c_rat: [1, 2]\n", ["case 0", "loading.c_rat", "c_rate"]),
    ("base: base.yaml\ngrid:\n  geometry.radius: [5.0e-6, -1.0]\n", ["case 1", "geometry.radius"]),
    ("base: base.yaml\nzip:\n  loading.c_rate: [1, 2]\n  loading.x_end: [0.5]\n",
     ["equal lengths"]),
    ("base: base.yaml\ngrid:\n  loading.c_rate: 2\n", ["non-empty list"]),
    ("base: missing.yaml\n", ["missing.yaml' not found"]),
    ("base: base.yaml\ncases:\n  - {loading.c_rate: 1}\n  - {loading.c_rate: 1.0}\n",
     ["repeats case 0"]),
])
def test_bad_sweeps_are_rejected_before_anything_runs(tmp_path, body, words):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        sw.load_sweep(path)
    for w in words:
        assert w in str(info.value)


def test_resume_skips_done_and_records_failures(tmp_path, monkeypatch):
    path = _write(tmp_path, f"base: base.yaml\ngrid:\n  loading.c_rate: [1.0, 2.0, 3.0]\n"
                            f"directory: {tmp_path}/out\n")
    s = sw.load_sweep(path)
    calls = []

    def fake_run(cfg, name, folder, comm=None, quiet=False):
        calls.append(cfg.loading.c_rate)
        if cfg.loading.c_rate == 3.0:
            atomic_write_json(f"{folder}/{MANIFEST}", {"status": "failed", "error": "diverged"})
            raise NmcfemError("diverged")
        atomic_write_json(f"{folder}/{MANIFEST}", {
            "status": "done", "wall_time [s]": 1.0,
            "summary": {"final": {"cracked_area [m^2]": cfg.loading.c_rate * 1e-12}}})
        return "done"

    monkeypatch.setattr("nmcfem.runner.run_command", fake_run)
    rows = sw.run_sweep(s)
    assert calls == [1.0, 2.0, 3.0]
    assert [r["status"] for r in rows] == ["done", "done", "failed"]
    assert rows[2]["error"] == "diverged"
    assert rows[1]["cracked_area [m^2]"] == 2e-12
    text = (s.directory / sw.SUMMARY_CSV).read_text()
    assert "loading.c_rate" in text.splitlines()[0] and "cracked_area [m^2]" in text
    # an interrupted case (manifest says running) is redone; done ones are not
    atomic_write_json(s.cases[1].folder / MANIFEST, {"status": "running"})
    (s.cases[1].folder / "partial.tmp").write_text("half")
    calls.clear()
    sw.run_sweep(s)
    assert calls == [2.0]
    assert not (s.cases[1].folder / "partial.tmp").exists()
    calls.clear()
    sw.run_sweep(s, retry_failed=True)
    assert calls == [3.0]
    assert "case   0 [done   ]" in sw.dry_run(s)


def test_slurm_script_runs_locally(tmp_path):
    path = _write(tmp_path, f"base: base.yaml\ngrid:\n  loading.c_rate: [1.0]\n"
                            f"directory: {tmp_path}/out\n")
    s = sw.load_sweep(path)
    text = sw.slurm_script(s, 4, 2, "01:00:00", "/usr/bin/python3", "run_sim.py", "/work")
    assert "#SBATCH --ntasks=4" in text and "--ranks-per-case 2" in text
    assert "${NMCFEM_LAUNCHER:-srun}" in text
    with pytest.raises(ConfigError):
        sw.slurm_script(s, 3, 2, "01:00:00", "python", "run_sim.py", "/work")
    json.dumps(sw.summary_rows(s))


def test_atomic_results_are_readable_by_others_as_the_umask_allows(tmp_path):
    import os
    import stat

    from nmcfem import atomic

    atomic_write_json(tmp_path / "m.json", {"a": 1})
    mode = stat.S_IMODE(os.stat(tmp_path / "m.json").st_mode)
    assert mode == 0o666 & ~atomic._UMASK  # not mkstemp's 0600
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
