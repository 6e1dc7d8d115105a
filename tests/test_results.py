"""Results for people: ``nmcfem.load`` gives back the solver's fields, every run leaves 3D
pictures of its particle and a run.log, ``nmcfem plot`` renders more, progress has an ETA."""

import io

import numpy as np
import pytest

import nmcfem
from nmcfem.cli import main
from nmcfem.config import load_config
from nmcfem.progress import Progress, format_duration
from nmcfem.runner import run_command
from tests.conftest import REPO, assert_loaded_equals_solver, capture_output_fields

pytestmark = pytest.mark.slow
OVERRIDES = ["loading.x_end=0.85", "output.fields_every=20", "analysis.enabled=false"]


@pytest.fixture(scope="module")
def cracked_run(tmp_path_factory):
    """quick_cracks.yaml to x = 0.85 (cracked grain boundaries and shell/core interface), with
    the solver's output arrays captured."""
    root = tmp_path_factory.mktemp("results")
    cfg = load_config(REPO / "configs" / "quick_cracks.yaml",
                      [f"output.mesh_cache={root / 'meshes'}", *OVERRIDES])
    with pytest.MonkeyPatch.context() as mp:
        captured = capture_output_fields(mp)
        run_command(cfg, "quick_cracks", str(root / "run"), quiet=True)
    return root / "run", captured


def test_load_returns_the_solvers_fields_and_the_series_with_units(cracked_run):
    run_dir, captured = cracked_run
    assert_loaded_equals_solver(run_dir, captured)
    run = nmcfem.load(run_dir)
    assert run.status == "done" and run.config["loading"]["x_end"] == 0.85
    assert run.series.units["time"] == "s" and run.series.units["cracked_area_full"] == "m^2"
    assert run.series["mean_x [-]"][-1] == pytest.approx(0.85, abs=5e-3)
    assert np.all(np.diff(run.series["time"]) > 0)
    state = run.fields()
    assert state.step == run.output_steps[-1] and state.time == pytest.approx(
        run.series["time"][-1])
    assert state.units["von_mises"] == "Pa" and state["u"].shape == (len(state.points), 3)
    assert state["stress"].shape == (len(state.cells), 3, 3)
    assert set(np.unique(state.grain_id)) == set(range(0, run.config["geometry"]["n_grains"] + 1))
    cracks = run.interfaces()
    assert cracks.step == state.step and cracks.time == state.time
    assert cracks.units["normal_opening"] == "m"
    assert np.all((cracks["damage"] >= 0) & (cracks["damage"] <= 1))
    assert cracks["damage"].max() == 1.0  # cracked by x = 0.85
    assert set(np.unique(cracks["family"])) == {0, 1}
    with pytest.raises(KeyError, match="output steps"):
        run.fields(999)


def test_every_run_leaves_pictures_and_a_log(cracked_run):
    run_dir, _ = cracked_run
    from skimage.io import imread

    names = ["grains", "li_fraction", "von_mises", "interface_damage"]
    images = {n: imread(run_dir / "pictures" / f"particle_{n}.png") for n in names}
    for name, image in images.items():
        assert image.shape[0] > 500 and image.std() > 10, name  # not blank
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(images[a].astype(float) - images[b]).mean() > 1.0, (a, b)
    log = (run_dir / "run.log").read_text()
    assert "problem:" in log and "ETA" in log and "done:" in log


def test_plot_command_renders_a_chosen_field_and_names_bad_input(cracked_run, capsys):
    run_dir, _ = cracked_run
    assert main(["plot", str(run_dir), "--field", "hydrostatic_stress", "--step", "0",
                 "--clip", "half"]) == 0
    assert (run_dir / "pictures" / "particle_hydrostatic_stress_0.png").stat().st_size > 10000
    assert main(["plot", str(run_dir), "--field", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["plot", str(run_dir), "--step", "7"]) == 2
    assert main(["plot", str(run_dir / "missing")]) == 2


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_progress_updates_one_line_on_a_terminal_with_an_eta(tmp_path, monkeypatch, tty):
    from mpi4py import MPI

    from nmcfem import progress as pg

    monkeypatch.setattr(pg, "TTY_EVERY", 0.0)
    monkeypatch.setattr(pg, "PLAIN_EVERY", 0.0)
    stream = _Terminal() if tty else io.StringIO()
    p = Progress(tmp_path, MPI.COMM_SELF, stream=stream)
    row = {"mean_x [-]": 0.9, "surface_x_mean [-]": 0.7, "cracked_area_full [m^2]": 1e-12}
    for k in range(1, 4):
        p.step(k, 0.1 * k, 10.0 * k, 10.0, row)
    p.say("finished")
    p.close()
    out = stream.getvalue()
    assert ("\r" in out) is tty and "ETA" in out and "30.0%" in out
    assert out.rstrip().endswith("finished") and out.count("\n") == (2 if tty else 4)
    log = (tmp_path / "run.log").read_text()
    assert log.count("ETA") == 3 and "finished" in log


def test_durations_read_like_a_clock():
    assert [format_duration(s) for s in (7, 125, 3725, float("inf"))] == \
        ["7s", "2m05s", "1h02m", "?"]


def test_a_machine_that_cannot_render_still_finishes_the_run(cracked_run, monkeypatch):
    from mpi4py import MPI

    from nmcfem import pictures
    from nmcfem.runner import render_pictures

    def broken(*args, **kwargs):
        raise RuntimeError("no EGL or OSMesa")

    monkeypatch.setattr(pictures, "render_run", broken)
    said = []
    assert render_pictures(cracked_run[0], MPI.COMM_WORLD, said.append) == []
    assert "WARNING: no pictures (RuntimeError: no EGL or OSMesa)" in said[0]
    assert "output.pictures: false" in said[0]
