"""3D pictures of the particle (PyVista/VTK, off-screen: no display needed).

A cut-away view — one octant of the sphere removed, seen from that octant — shows the grains,
the Li fraction and the von Mises stress inside the particle, and the cohesive interfaces
coloured by damage (cracked grain boundaries and shell/core debonding). Reads a run folder
through :func:`nmcfem.load`, so it works on any finished run, on any machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nmcfem.atomic import atomic_write
from nmcfem.results import FieldState, InterfaceState, Run, load

#: picture name -> (field, colour map, colour-bar title, scale to the shown unit)
PICTURES = {
    "grains": ("grain_id", "tab20", "grain", 1.0),
    "li_fraction": ("x", "viridis", "Li fraction x [-]", 1.0),
    "von_mises": ("von_mises", "inferno", "von Mises stress [MPa]", 1e-6),
    "interface_damage": ("damage", "Reds", "interface damage [-]", 1.0),
}
#: clip choices of ``nmcfem plot --clip``: which part of the sphere is cut away
CLIPS = ("octant", "half", "none")
WINDOW = (1100, 800)  # px: wide enough for the colour bar beside the particle
VIEW = np.array([1.0, 0.8, 0.6])  # camera direction: into the removed octant


def _offscreen() -> Any:
    """PyVista set up for rendering without a display (EGL or OSMesa, as VTK's wheel finds)."""
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    if not os.environ.get("DISPLAY"):
        # VTK's wheel tries X first and prints a warning before falling back to EGL
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv

    pv.OFF_SCREEN = True
    return pv


def _cut(mesh: Any, clip: str, radius: float) -> Any:
    """``mesh`` without the octant (or half) facing the camera."""
    if clip == "none":
        return mesh
    big = 2.0 * radius
    lo = -big if clip == "half" else 0.0
    return mesh.clip_box((0.0, big, lo, big, lo, big), invert=True, crinkle=False)


def render(state: FieldState, name: str, out: str | Path, interfaces: InterfaceState | None
           = None, clip: str = "octant") -> Path:
    """Render one picture of ``state`` to the PNG file ``out``.

    Parameters
    ----------
    state: the bulk fields of one output step.
    name: a key of PICTURES, or any field name of ``state`` (coloured with "viridis").
    out: PNG file (written atomically).
    interfaces: the interface triangles (needed for "interface_damage").
    clip: "octant", "half" or "none".
    """
    pv = _offscreen()
    if clip not in CLIPS:
        raise ValueError(f"clip '{clip}' is not one of {', '.join(CLIPS)}")
    field, cmap, title, scale = PICTURES.get(name, (name, "viridis", f"{name} "
                                                f"[{state.units.get(name, '-')}]", 1.0))
    grid = state.to_pyvista()
    radius = float(np.linalg.norm(state.points, axis=1).max())
    solid = _cut(grid, clip, radius)
    plotter = pv.Plotter(off_screen=True, window_size=WINDOW)
    plotter.set_background("white")
    bar = {"title": title, "color": "black", "vertical": True, "position_x": 0.86, "width": 0.04,
           "position_y": 0.1, "height": 0.6, "title_font_size": 14, "label_font_size": 12}
    if name == "interface_damage":
        if interfaces is None:
            raise ValueError("the interface_damage picture needs a run with cracks")
        plotter.add_mesh(solid.extract_surface(algorithm="dataset_surface"), color="lightgrey",
                         opacity=0.15)
        tri = _cut(interfaces.to_pyvista(), clip, radius)
        plotter.add_mesh(tri, scalars=field, cmap=cmap, clim=(0.0, 1.0), scalar_bar_args=bar,
                         show_edges=False)
    elif name == "grains":
        grains = solid.threshold(0.5, scalars="grain_id")  # the shell (id 0) apart, in grey
        shell = solid.threshold(0.5, scalars="grain_id", invert=True)
        if grains.n_cells:
            ids = grains.cell_data["grain_id"]
            grains.cell_data["grain"] = (ids - 1) % 20
            plotter.add_mesh(grains, scalars="grain", cmap=cmap, clim=(0, 19),
                             show_scalar_bar=False)
        if shell.n_cells:  # translucent, so the grains show through the 10 nm layer
            plotter.add_mesh(shell, color="dimgrey", opacity=0.3)
    else:
        values = state[field]
        if values.ndim > 1:
            raise ValueError(f"field '{field}' has components; pick a scalar field")
        shown = f"{field} (shown)"
        target = solid.point_data if field in state.point_data else solid.cell_data
        target[shown] = target[field] * scale
        clim = None
        if field in state.cell_data and "grain_id" in state.cell_data:
            # the thin stiff shell carries stresses far above the core's: colour by the core's
            # range (1st-99th percentile) and let the shell saturate
            core = values[state.grain_id > 0] * scale
            if len(core) and np.ptp(core) > 0:
                clim = tuple(np.percentile(core, [1.0, 99.0]))
        plotter.add_mesh(solid, scalars=shown, cmap=cmap, clim=clim, scalar_bar_args=bar)
    plotter.add_text(f"t = {state.time:.0f} s (step {state.step})", font_size=10,
                     color="black")
    plotter.camera_position = [tuple(4.4 * radius * VIEW / np.linalg.norm(VIEW)), (0, 0, 0),
                               (0, 0, 1)]
    out = Path(out)
    atomic_write(out, lambda tmp: plotter.screenshot(tmp))
    plotter.close()
    return out


def render_run(run: str | Path | Run, out_dir: str | Path | None = None,
               step: int | None = None) -> list[Path]:
    """The standard pictures of a run (grains, Li fraction, von Mises and, with cracks,
    interface damage) as ``particle_<name>.png``; returns their paths.

    Parameters
    ----------
    run: run folder or loaded Run.
    out_dir: folder of the pictures (default ``<run>/pictures``).
    step: output step (None: the last).
    """
    run = run if isinstance(run, Run) else load(run)
    out_dir = Path(out_dir) if out_dir is not None else run.path / "pictures"
    state = run.fields(step)
    interfaces = run.interfaces(state.step)
    names = [n for n in PICTURES if n != "interface_damage" or interfaces is not None]
    return [render(state, n, out_dir / f"particle_{n}.png", interfaces) for n in names]
