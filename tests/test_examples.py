"""The worked examples in examples/ run as a user would run them (each in its own process, on
the quick config) and write what they promise."""

import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.slow
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
WRITES = {"01_load_a_run.py": "example-01/profile.png",
          "02_compare_textures.py": "example-02/textures.png",
          "03_measured_stxm.py": "example-03/analysis-stxm/metrics.json"}


def test_every_example_is_tested():
    assert sorted(e.name for e in EXAMPLES) == sorted(WRITES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example, tmp_path):
    if example.name == "03_measured_stxm.py" and not SHARED_DATA.is_dir():
        pytest.skip(f"needs the measured STXM stack in {SHARED_DATA} (absent)")
    cmd = [sys.executable, str(example), "--out", str(tmp_path),
           "--set", f"output.mesh_cache={REPO / 'meshes'}", "--set", "loading.x_end=0.9"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / WRITES[example.name]).is_file()
    assert "wrote" in proc.stdout or "metrics.json" in proc.stdout
