"""Shared fixtures: repository paths and the real-data folder beside the repository."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def repo() -> Path:
    """Root of the repository."""
    return REPO


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skip the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real measurement data not found at {SHARED_DATA} (it sits beside the "
                    f"repository in the project's shared/ folder; a plain clone lacks it)")
    return SHARED_DATA


def interrupt_after_step(monkeypatch, step: int):
    """Make runs raise KeyboardInterrupt right after recording ``step`` (a killed run); return a
    function that undoes it."""
    from nmcfem import simulation

    original = simulation.RunRecorder.__call__

    def stop(self, event, problem, info):
        original(self, event, problem, info)
        if event == "step" and info["step"] == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(simulation.RunRecorder, "__call__", stop)
    return lambda: monkeypatch.setattr(simulation.RunRecorder, "__call__", original)


def interrupt_then_restart(monkeypatch, cfg, config_file, name: str, folder, step: int,
                           overrides: list[str], cache) -> None:
    """Run ``cfg`` into ``folder`` killed right after ``step`` (as Ctrl-C would), then continue
    it through the command line (``run CONFIG --restart FOLDER --set ...``), which must end
    with exit status 0."""
    from nmcfem.cli import main
    from nmcfem.runner import run_command

    undo = interrupt_after_step(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        run_command(cfg, name, str(folder))
    undo()
    assert main(["run", str(config_file), "--restart", str(folder),
                 "--set", f"output.mesh_cache={cache}",
                 *[a for o in overrides for a in ("--set", o)]]) == 0


def capture_output_fields(monkeypatch) -> dict[int, dict]:
    """Record, at every field output of a run, each output field's owned values on this rank
    keyed by the mesh file's vertex (P1) or cell (DG0) index, straight from the solver's
    arrays; return {step: {name: (keys, values)}}, filled as the run goes."""
    import numpy as np

    from nmcfem import simulation

    captured: dict[int, dict] = {}
    original = simulation.write_fields

    def keys_and_values(f):
        V = f.function_space
        mesh = V.mesh
        bs = V.dofmap.index_map_bs
        values = f.x.array.reshape(-1, bs)
        if V.ufl_element().embedded_superdegree == 0:
            cells = np.arange(mesh.topology.index_map(3).size_local)
            return mesh.topology.original_cell_index[cells], values[V.dofmap.list[cells, 0]].copy()
        owned = V.dofmap.index_map.size_local
        node = np.empty(owned + V.dofmap.index_map.num_ghosts, dtype=np.int64)
        node[V.dofmap.list.ravel()] = mesh.geometry.dofmaps[0].ravel()
        return mesh.geometry.input_global_indices[node[:owned]], values[:owned].copy()

    def record(folder, problem, step):
        original(folder, problem, step)
        captured[step] = {name: keys_and_values(f)
                          for name, f in problem.diagnostics.output_fields().items()}

    monkeypatch.setattr(simulation, "write_fields", record)
    return captured


def assert_loaded_equals_solver(run_dir, captured: dict[int, dict]) -> None:
    """The fields ``nmcfem.load`` reads back equal the captured solver arrays (1e-12)."""
    import numpy as np

    import nmcfem

    run = nmcfem.load(run_dir)
    assert run.output_steps == sorted(captured)
    for step, fields in captured.items():
        state = run.fields(step)
        assert state.cells.shape[1] == 4
        for name, (keys, values) in fields.items():
            loaded = state[name].reshape(len(state[name]), -1)[keys]
            np.testing.assert_allclose(loaded, values.reshape(len(values), -1), rtol=1e-12,
                                       atol=1e-12 * (np.abs(values).max() + 1e-300),
                                       err_msg=f"{name} at step {step}")
