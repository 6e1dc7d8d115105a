"""Cohesive cracking of a particle: the interface families with their laws, the history of a
step, the coupling to Li transport and what the cracks report.

The particle mesh is cut open along the active interface families (grain boundaries and/or the
shell/core interface, :func:`nmcfem.cohesive.cutting.cut_particle`); the pairs of facing
triangles carry the traction-separation law of their family (:mod:`nmcfem.cohesive.interfaces`)
and the Li conductance (:mod:`nmcfem.cohesive.transport`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nmcfem.cohesive import output
from nmcfem.cohesive.interfaces import CohesiveInterfaces
from nmcfem.cohesive.law import CohesiveLaw
from nmcfem.cohesive.output import GRAIN_BOUNDARY, SHELL_INTERFACE
from nmcfem.cohesive.transport import InterfaceTransport
from nmcfem.config import Config
from nmcfem.geometry import GB_OFFSET, SHELL_CORE


class ParticleCracks:
    """Cohesive interfaces of a cut particle and their coupling to transport.

    Parameters
    ----------
    W, V: P1 displacement (m) and concentration (mol/m^3) spaces on the cut mesh.
    domain: ParticleDomain with ``interfaces`` (the pairs) and ``n_input_vertices``.
    cfg: configuration (``cohesive`` section, grain diffusivity, interface mesh size).
    """

    def __init__(self, W, V, domain: Any, cfg: Config):
        cut = self.cut = domain.interfaces
        coh = cfg.cohesive
        self.cfg = cfg
        self.family = np.where(cut.facet_tag == SHELL_CORE, SHELL_INTERFACE, GRAIN_BOUNDARY)
        laws = [CohesiveLaw.from_config(coh, coh.grain_boundary),
                CohesiveLaw.from_config(coh, coh.shell_interface)]
        self.interfaces = CohesiveInterfaces(W, cut.plus, cut.minus, cut.normal, cut.area, laws,
                                             domain.n_input_vertices, law_index=self.family)
        # m/s: intact interfaces pass Li with a jump of ~1/factor of the element's difference
        conductance = (coh.intact_conductance_factor * cfg.materials.grain.D_ab
                       / cfg.geometry.mesh.boundary_size)
        self.transport = InterfaceTransport(V, self.interfaces, cut, conductance,
                                            coh.crack_blocks_flux, coh.cracks_break_shell)
        #: whether the cracks open to the electrolyte matter (they react or grow a layer)
        self.track_wetted = coh.open_crack_reacts or cfg.passivation.enabled
        self.gb_id = np.where(self.family == GRAIN_BOUNDARY, cut.facet_tag - GB_OFFSET, -1)

    @property
    def history(self):
        """The interfaces' committed history (:class:`nmcfem.cohesive.history.InterfaceHistory`)."""
        return self.interfaces.history

    # --- history ---------------------------------------------------------------------------

    def accept(self) -> bool:
        """Commit the converged step's history; return whether any damage grew."""
        grew = self.history.commit()
        if grew:
            self._damage_changed()
        return grew

    def reject(self) -> None:
        """Forget the trial history of a step that is redone."""
        self.history.discard()

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Adopt a checkpointed history (and the layers of wetted faces)."""
        self.history.restore(arrays)
        if self.transport.faces is not None:
            self.transport.faces.restore(arrays)
        self._damage_changed()

    def state(self) -> dict[str, np.ndarray]:
        """Arrays of the committed state for checkpoints (identical on every rank)."""
        faces = self.transport.faces
        return {**self.history.state(), **(faces.state() if faces is not None else {})}

    def _damage_changed(self) -> None:
        self.transport.changed = True
        if self.track_wetted:
            self.transport.update_exposed()

    @property
    def reacting_area(self) -> float:
        """Area (m^2, both faces) of crack faces that react: wetted ones, where they react."""
        return self.transport.exposed_area if self.cfg.cohesive.open_crack_reacts else 0.0

    # --- results ---------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, float]:
        """Crack statistics with units in the keys (same on every rank)."""
        out = output.crack_statistics(self.interfaces, self.family, self.gb_id)
        out["reacting_crack_area [m^2]"] = self.reacting_area
        return out

    def energies(self) -> dict[str, float]:
        """Stored energy and dissipation D(kappa) of the interfaces (J; same on every rank)."""
        h, w = self.history, self.interfaces.weight
        return {"interface_stored_energy [J]":
                float(np.sum(0.5 * np.einsum("ki,ki->k", h.traction, h.delta) * w)),
                "dissipated_energy [J]": float(np.sum(self.interfaces.point_dissipation() * w))}

    def gb_normal_tractions(self) -> np.ndarray | None:
        """Normal tractions (Pa) at the grain-boundary points, or None where grain boundaries
        are not cohesive (bonded: the bulk stress gives them)."""
        if not np.any(self.family == GRAIN_BOUNDARY):
            return None
        return output.gb_normal_tractions(self.interfaces, self.family)

    def facet_snapshot(self) -> dict[str, np.ndarray]:
        """Interface triangles for the analysis snapshot (:func:`output.facet_snapshot`)."""
        return output.facet_snapshot(self.cut, self.interfaces, self.family)

    def write_vtu(self, folder: Path, t: float, step: int) -> None:
        """Interface triangles for ParaView (:func:`output.write_vtu`; call on one rank)."""
        output.write_vtu(folder, t, step, self.cut, self.interfaces, self.family, self.gb_id)

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.transport.destroy()
