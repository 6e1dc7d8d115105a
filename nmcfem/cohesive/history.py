"""Committed state of the interface points: history, openings, tractions and the work done.

The history of a step is a trial until the step converges; then it is committed. Every array is
identical on every rank (the interface displacements are shared with one reduction per
evaluation), so checkpoints and results do not depend on the partition.
"""

from __future__ import annotations

import numpy as np

from nmcfem.errors import CheckpointError

#: the per-point arrays of a trial state (openings and tractions in the local frame)
TRIAL_KEYS = ("delta", "traction", "kappa", "damage")


class InterfaceHistory:
    """History variable kappa (m), damage, openings delta (m) and tractions (Pa) per point.

    Parameters
    ----------
    n_points: number of interface points.
    weight: (n_points,) quadrature weight of every point (m^2).
    """

    def __init__(self, n_points: int, weight: np.ndarray):
        self.weight = weight
        self.kappa = np.zeros(n_points)
        self.damage = np.zeros(n_points)
        self.delta = np.zeros((n_points, 3))
        self.traction = np.zeros((n_points, 3))
        self.work = 0.0  # J: work done on the interfaces so far (trapezoidal in the openings)
        self.trial: dict[str, np.ndarray] = {}
        self.discard()

    def commit(self) -> bool:
        """Adopt the trial state (after a converged step); return whether any damage grew."""
        new = self.trial
        dw = 0.5 * np.einsum("ki,ki->k", self.traction + new["traction"],
                             new["delta"] - self.delta)
        self.work += float(np.sum(dw * self.weight))
        grew = bool(np.any(new["damage"] > self.damage))
        self.kappa, self.damage = new["kappa"].copy(), new["damage"].copy()
        self.delta, self.traction = new["delta"].copy(), new["traction"].copy()
        return grew

    def discard(self) -> None:
        """Forget the trial state (the step is redone)."""
        n = len(self.kappa)
        self.trial = {"delta": self.delta.copy(), "traction": self.traction.copy(),
                      "tangent": np.zeros((n, 3, 3)), "secant": np.zeros((n, 3, 3)),
                      "kappa": self.kappa.copy(), "damage": self.damage.copy(),
                      "energy": np.zeros(n)}

    def state(self) -> dict[str, np.ndarray]:
        """Committed history as arrays (identical on every rank), for checkpoints."""
        return {"cohesive_kappa": self.kappa, "cohesive_damage": self.damage,
                "cohesive_delta": self.delta, "cohesive_traction": self.traction,
                "cohesive_work": np.array(self.work)}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Adopt a committed history saved by :meth:`state`."""
        if arrays["cohesive_kappa"].shape != self.kappa.shape:
            raise CheckpointError("the checkpoint's interface history does not fit this mesh: "
                                  "restart with the config that wrote it")
        self.kappa = np.array(arrays["cohesive_kappa"], dtype=float)
        self.damage = np.array(arrays["cohesive_damage"], dtype=float)
        self.delta = np.array(arrays["cohesive_delta"], dtype=float)
        self.traction = np.array(arrays["cohesive_traction"], dtype=float)
        self.work = float(arrays["cohesive_work"])
        self.discard()
