"""Configuration schema: defaults, overrides, and one clear line for every kind of bad input."""

import subprocess
import sys

import pytest
import yaml

from nmcfem import config as C
from nmcfem.cli import main


def test_default_yaml_equals_schema_defaults(repo):
    assert C.load_config(repo / "configs" / "default.yaml") == C.Config()


def test_default_yaml_holds_supplementary_table_1(repo):
    cfg = C.load_config(repo / "configs" / "default.yaml")
    g, s = cfg.materials.grain, cfg.materials.shell
    assert cfg.geometry.radius == 5e-6
    assert (g.C11, g.C12, g.C13, g.C33, g.C44) == (259e9, 107e9, 75e9, 194e9, 59e9)
    assert (g.D_ab, g.D_c, s.D_L, g.c_max) == (7e-15, 7e-16, 7e-17, 63887.0)
    assert cfg.cohesive.grain_boundary.strength == 200e6
    assert cfg.cohesive.grain_boundary.toughness == 1.0
    assert (s.E, s.nu) == (190e9, 0.35)
    assert cfg.geometry.shell_thickness == 10e-9 and cfg.loading.x_end == 0.25


def test_every_default_key_has_a_unit_comment(repo):
    lines = (repo / "configs" / "default.yaml").read_text().splitlines()
    body = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    leaf = [ln for ln in body if not ln.rstrip().endswith(":") and "# [" not in ln
            and ":  #" not in ln]
    # solver option lines are entries of a documented options mapping
    leaf = [ln for ln in leaf if not ln.startswith("    ")]
    assert not leaf, f"keys without a unit comment: {leaf}"


def test_quick_config_is_valid_and_coarse(repo):
    cfg = C.load_config(repo / "configs" / "quick.yaml")
    assert cfg.geometry.n_grains < C.Config().geometry.n_grains
    assert cfg.geometry.mesh.boundary_size > C.Config().geometry.mesh.boundary_size


def test_overrides_parse_yaml_values():
    cfg = C.load_config(None, ["geometry.n_grains=40", "loading.c_rate=2",
                               "geometry.texture=radial", "analysis.view_direction=[1,0,0]"])
    assert cfg.geometry.n_grains == 40 and cfg.loading.c_rate == 2.0
    assert cfg.geometry.texture == "radial" and cfg.analysis.view_direction == [1.0, 0.0, 0.0]


def test_exponent_without_dot_is_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("geometry:\n  radius: 5e-6\n")  # PyYAML reads this as a string
    assert C.load_config(path).geometry.radius == 5e-6


def test_config_is_frozen_and_hash_tracks_geometry():
    a = C.Config()
    with pytest.raises(Exception):
        a.geometry.radius = 1.0  # type: ignore[misc]
    b = C.replace(a, ["geometry.n_grains=21"])
    c = C.replace(a, ["loading.c_rate=3"])
    assert C.section_hash(a.geometry) != C.section_hash(b.geometry)
    assert C.section_hash(a.geometry) == C.section_hash(c.geometry)


BAD_INPUTS = [
    # (file contents or None, overrides, words the one-line message must contain)
    ("geometry:\n  radus: 5.0e-6\n", [], ["geometry.radus", "did you mean 'radius'"]),
    ("geomtry:\n  radius: 5.0e-6\n", [], ["geomtry", "did you mean 'geometry'"]),
    (None, ["geometry.radius=-5e-6"], ["geometry.radius", "-5e-06", "out of range"]),
    (None, ["geometry.shell_thickness=4e-6"], ["geometry.shell_thickness", "radius"]),
    (None, ["geometry.n_grains=abc"], ["geometry.n_grains", "integer", "'abc'"]),
    (None, ["geometry.n_grains=2.5"], ["geometry.n_grains", "integer"]),
    (None, ["geometry.texture=radail"], ["geometry.texture", "did you mean 'radial'"]),
    (None, ["loading.x_end=1.2"], ["loading.x_end", "1.2", "[0, 1]"]),
    (None, ["loading.x_end=0.05"], ["loading", "0.05", "chemical-strain table"]),
    (None, ["loading.direction=discharge"], ["loading.x_end", "discharge"]),
    (None, ["materials.shell.nu=0.7"], ["materials.shell.nu", "0.7"]),
    (None, ["materials.grain.C13=2.0e11"], ["materials.grain", "positive"]),
    (None, ["time.dt_initial=1000"], ["dt_min <= dt_initial <= dt_max"]),
    (None, ["geometry.texture=list"], ["geometry.orientations", "texture 'list'"]),
    (None, ["cohesive.law=trilinear"], ["cohesive.law", "bilinear, exponential"]),
    (None, ["cohesive.grain_boundary.enabled=false", "cohesive.shell_interface.enabled=false"],
     ["cohesive.enabled", "both false"]),
    (None, ["cohesive.grain_boundary.strength=0"], ["cohesive.grain_boundary.strength"]),
    (None, ["analysis.view_direction=[0,0]"], ["analysis.view_direction", "3 values"]),
    (None, ["geometry.mesh.boundary_size=3e-6"], ["boundary_size", "grain_size"]),
    (None, ["loading.mode=potentiostatic"], ["loading.t_end", "potentiostatic"]),
    (None, ["geometry=5"], ["geometry", "mapping"]),
    (None, ["loading.c_rate"], ["KEY=VALUE"]),
    ("geometry: [1, 2\n", [], ["YAML syntax error", "line"]),
    ("- just\n- a list\n", [], ["mapping of sections"]),
    (None, ["geometry.shell_cap_angle=270"], ["geometry.shell_cap_angle", "270"]),
    (None, ["output.name=off"], ["output.name", "expected a string", "quote the value"]),
    (None, ["materials.grain.chemical_strain.strain_x=[0.5, 0.9]",
            "materials.grain.chemical_strain.eps_a=[0, 0]",
            "materials.grain.chemical_strain.eps_c=[0, 0]"], ["strictly descending"]),
]


@pytest.mark.parametrize("text,overrides,words", BAD_INPUTS,
                         ids=[f"bad{i:02d}" for i in range(len(BAD_INPUTS))])
def test_bad_input_gives_one_clear_line(tmp_path, capsys, text, overrides, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text if text is not None else "{}\n")
    args = ["validate-config", str(path)] + [a for o in overrides for a in ("--set", o)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nmcfem: error: ") and "\n" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


def test_missing_config_file(capsys, tmp_path):
    assert main(["validate-config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml' not found" in err and "configs/default.yaml" in err


def test_no_traceback_from_the_command_line(tmp_path, repo):
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"loading": {"c_rat": 1.0}}))
    proc = subprocess.run([sys.executable, str(repo / "run_sim.py"), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown key 'loading.c_rat': did you mean 'c_rate'?" in proc.stderr


def test_describe_lists_every_key_with_a_unit():
    rows = C.describe()
    keys = {r[0] for r in rows}
    assert "materials.grain.C44" in keys and "cohesive.shell_interface.toughness" in keys
    assert all(r[1] for r in rows)
