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
