"""Material fields of a particle: per-cell (DG0) crystal axes, elastic coefficients,
diffusivities and region indicators of the grains and the shell."""

from __future__ import annotations

from typing import Any

import numpy as np

import dolfinx

from nmcfem.config import Config
from nmcfem.crystal import isotropic_coefficients, transverse_coefficients
from nmcfem.errors import NmcfemError
from nmcfem.geometry import SHELL


class MaterialFields:
    """DG0 fields of the grains (hexagonal, rotated per grain) and the isotropic shell.

    Parameters
    ----------
    domain: ParticleDomain (mesh with grain/shell cell tags).
    cfg: configuration (``materials`` section).
    rotations: (N,3,3) grain rotation matrices (columns a, b, c in the lab frame).

    Attributes
    ----------
    cell_region: (cells incl. ghosts,) grain id 1..N per cell, SHELL (0) in the shell.
    axis: unit c axis per cell (the shell's is arbitrary and unused).
    k: Spencer coefficients lam, muT, muL, alpha, beta (Pa) per cell.
    d_perp, d_par: diffusivity across and along the c axis (m^2/s).
    active: 1 in grains, 0 in the shell (where there is no chemical strain).
    grain_id: the cell tag as a field, for output.
    """

    def __init__(self, domain: Any, cfg: Config, rotations: np.ndarray):
        mesh = domain.mesh
        Q0 = dolfinx.fem.functionspace(mesh, ("DG", 0))
        Q0v = dolfinx.fem.functionspace(mesh, ("DG", 0, (3,)))
        cmap = mesh.topology.index_map(3)
        tag = np.full(cmap.size_local + cmap.num_ghosts, -1, dtype=np.int64)
        tag[domain.cell_tags.indices] = domain.cell_tags.values
        if np.any(tag[:cmap.size_local] < 0):
            raise NmcfemError("mesh: some cells carry no grain/shell tag; delete the mesh cache "
                              "folder and rebuild")
        self.cell_region = tag
        grain, shell = cfg.materials.grain, cfg.materials.shell
        kg = transverse_coefficients(grain.C11, grain.C12, grain.C13, grain.C33, grain.C44)
        ks = isotropic_coefficients(shell.E, shell.nu)
        is_shell = self.is_shell = tag == SHELL
        axes = np.zeros((len(tag), 3))
        axes[:, 2] = 1.0
        in_grain = ~is_shell & (tag > 0)
        axes[in_grain] = rotations[tag[in_grain] - 1, :, 2]
        self.axis = dolfinx.fem.Function(Q0v, name="c_axis")
        self.axis.x.array[:] = axes.reshape(-1)
        self.k = {}
        for name in kg:
            f = dolfinx.fem.Function(Q0, name=name)
            f.x.array[:] = np.where(is_shell, ks[name], kg[name])
            self.k[name] = f
        self.d_perp = dolfinx.fem.Function(Q0, name="D_perp")
        self.d_par = dolfinx.fem.Function(Q0, name="D_par")
        self.d_perp.x.array[:] = np.where(is_shell, shell.D_L, grain.D_ab)
        self.d_par.x.array[:] = np.where(is_shell, shell.D_L, grain.D_c)
        self.active = dolfinx.fem.Function(Q0, name="grain_indicator")
        self.active.x.array[:] = np.where(is_shell, 0.0, 1.0)
        self.grain_id = dolfinx.fem.Function(Q0, name="grain_id")
        self.grain_id.x.array[:] = tag

    def grain_dofs(self, V: dolfinx.fem.FunctionSpace) -> np.ndarray:
        """Owned DOFs of the P1 space V that belong to a grain cell (not only to the shell)."""
        dofs = np.unique(V.dofmap.list[np.flatnonzero(~self.is_shell)])
        return dofs[dofs < V.dofmap.index_map.size_local]
