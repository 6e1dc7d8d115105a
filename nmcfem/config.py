"""Configuration schema: the single source of truth for every nmcfem parameter.

Every section is a frozen dataclass; each field carries its unit, its meaning and its
admissible range in the field metadata, so that validation, documentation and the
``validate-config`` report all read the same place. Defaults are Supplementary Table 1
of Li et al. ("Mutual modulation between surface chemistry and bulk microstructure
within secondary particles of Ni-rich layered oxides") plus the documented assumptions
of DESIGN.md section 2. SI units throughout: m, s, Pa, mol/m^3, J/m^2, K.

Bad input never produces a traceback: :func:`load_config` raises :class:`ConfigError`
whose message is one line naming the key, the value, what was expected and, for an
unknown key, the closest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nmcfem.errors import ConfigError


def param(default: Any, unit: str, doc: str, *, lo: float | None = None, hi: float | None = None,
          lo_open: bool = False, hi_open: bool = False, choices: tuple | None = None,
          length: int | None = None, min_length: int | None = None) -> Any:
    """Declare a config field with its unit, meaning and admissible range.

    Parameters
    ----------
    default: default value (SI units).
    unit: unit string shown in errors and docs ("m", "Pa", "-" for dimensionless).
    doc: one-line meaning.
    lo, hi: inclusive bounds (exclusive when ``lo_open``/``hi_open``); for lists, per item.
    choices: admissible values for string fields.
    length, min_length: exact / minimum length for list fields.
    """
    meta = dict(unit=unit, doc=doc, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open,
                choices=choices, length=length, min_length=min_length)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """Declare a nested config section with its defaults."""
    return field(default_factory=cls)


# --- Geometry ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeshSizes:
    """Element-size controls of the particle mesh."""

    grain_size: float = param(2.0e-6, "m", "target element size inside grains", lo=0, lo_open=True)
    boundary_size: float = param(0.8e-6, "m", "element size on grain boundaries and the outer "
                                 "surface: a sixth of the cohesive length E G_c / t_n^2 ~ 4.75 um "
                                 "(at 0.6x this size the cracked area and dissipation at x = 0.5 "
                                 "change by -2.9 % and -4.0 %; from 1.0 um they changed by -4.7 % "
                                 "and -5.3 %: benchmarks/cracking_benchmark.py --cases mesh)",
                                 lo=0, lo_open=True)
    shell_layers: int = param(1, "-", "element layers through the shell thickness (one: the "
                              "thin shell carries a membrane stress, constant through its "
                              "thickness as in one layer of linear elements; two changed the "
                              "default run's stresses, surface x, cracked area and dissipation "
                              "by less than 0.25 % at 1.6x its wall time)", lo=1, hi=20)
    optimize: bool = param(True, "-", "run gmsh's tetrahedral quality optimiser")


@dataclass(frozen=True)
class Geometry:
    """Secondary particle: Voronoi primary grains in a sphere, wrapped in a passivation shell."""

    radius: float = param(5e-6, "m", "outer particle radius r (Supp. Table 1)", lo=0, lo_open=True,
                          hi=1e-3)
    n_grains: int = param(20, "-", "number of primary grains (Voronoi cells)", lo=1, hi=2000)
    grain_seed: int = param(1, "-", "random seed of the Voronoi seed points", lo=0)
    grain_points: list | None = param(None, "m", "explicit Voronoi seed points [[x,y,z],...] "
                                      "(overrides grain_seed; length must equal n_grains)")
    texture: str = param("random", "-", "grain c-axis texture",
                         choices=("random", "radial", "tangential", "list"))
    orientations: list | None = param(None, "-", "texture=list: per grain [nx, ny, nz, psi_deg] "
                                      "(c-axis, in-plane angle in degrees)")
    orientation_seed: int = param(2, "-", "random seed of the grain orientations", lo=0)
    shell_thickness: float = param(10e-9, "m", "passivation (rock-salt) shell thickness h; 0 = "
                                   "no shell (unknown in the paper: sweep it)", lo=0)
    shell_cap_angle: float = param(180.0, "deg", "half-angle of the spherical cap covered by the "
                                   "shell about +z (180 = full coverage)", lo=0, lo_open=True,
                                   hi=180)
    mesh: MeshSizes = section(MeshSizes)


# --- Materials ---------------------------------------------------------------------------------

# Maerker et al., Chem. Mater. 31, 2545 (2019): operando XRD lattice strain of NMC811 relative to
# x = 1 (DESIGN.md section 2 table), percent converted to fractions.
_STRAIN_X = [1.00, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15, 0.12]
_STRAIN_A = [0.0, -0.0016, -0.0051, -0.0074, -0.0102, -0.0137, -0.0170, -0.0180, -0.0189,
             -0.0193, -0.0199, -0.0203, -0.0205]
_STRAIN_C = [0.0, 0.0015, 0.0048, 0.0079, 0.0122, 0.0167, 0.0202, 0.0205, 0.0193, 0.0161,
             0.0087, -0.0032, -0.0130]


@dataclass(frozen=True)
class ChemicalStrain:
    """Li-content-driven lattice strain of the layered grains in the crystal frame."""

    law: str = param("table", "-", "table: piecewise linear in x from strain_x/eps_a/eps_c; "
                     "linear: eps = beta (x - 1) isotropic (verification)",
                     choices=("table", "linear"))
    strain_x: list = param(_STRAIN_X, "-", "Li fraction x of the strain table (descending)",
                           lo=0, hi=1, min_length=2)
    eps_a: list = param(_STRAIN_A, "-", "in-plane (a) lattice strain at strain_x, relative to x=1",
                        lo=-0.2, hi=0.2, min_length=2)
    eps_c: list = param(_STRAIN_C, "-", "c-axis lattice strain at strain_x, relative to x=1",
                        lo=-0.2, hi=0.2, min_length=2)
    beta: float = param(0.01, "-", "law=linear: strain per unit change of x", lo=-1, hi=1)


@dataclass(frozen=True)
class GrainMaterial:
    """Hexagonal (layered R-3m, treated as transversely isotropic) NMC811 primary grains."""

    C11: float = param(259e9, "Pa", "elastic constant C11 (Supp. Table 1)", lo=0, lo_open=True)
    C12: float = param(107e9, "Pa", "elastic constant C12 (Supp. Table 1)")
    C13: float = param(75e9, "Pa", "elastic constant C13 (Supp. Table 1)")
    C33: float = param(194e9, "Pa", "elastic constant C33 (Supp. Table 1)", lo=0, lo_open=True)
    C44: float = param(59e9, "Pa", "elastic constant C44 (Supp. Table 1)", lo=0, lo_open=True)
    D_ab: float = param(7e-15, "m^2/s", "Li diffusivity in the ab (layer) plane (Supp. Table 1)",
                        lo=0, lo_open=True)
    D_c: float = param(7e-16, "m^2/s", "Li diffusivity along c (Supp. Table 1)", lo=0, lo_open=True)
    c_max: float = param(63887.0, "mol/m^3", "maximum Li concentration (Supp. Table 1)", lo=0,
                         lo_open=True)
    chemical_strain: ChemicalStrain = section(ChemicalStrain)


@dataclass(frozen=True)
class ShellMaterial:
    """Isotropic rock-salt surface passivation layer (no chemical strain)."""

    E: float = param(190e9, "Pa", "Young's modulus of the passivation layer (Supp. Table 1)",
                     lo=0, lo_open=True)
    nu: float = param(0.35, "-", "Poisson's ratio of the passivation layer (Supp. Table 1)",
                      lo=-1, hi=0.5, lo_open=True, hi_open=True)
    D_L: float = param(7e-17, "m^2/s", "Li diffusivity in the passivation layer (Supp. Table 1)",
                       lo=0, lo_open=True)


@dataclass(frozen=True)
class Materials:
    """Material parameters of grains and shell."""

    grain: GrainMaterial = section(GrainMaterial)
    shell: ShellMaterial = section(ShellMaterial)


# --- Cohesive zone -----------------------------------------------------------------------------

@dataclass(frozen=True)
class InterfaceFamily:
    """Traction-separation parameters of one family of interfaces."""

    enabled: bool = param(True, "-", "insert cohesive interfaces on this family")
    strength: float = param(200e6, "Pa", "normal strength t_n (Supp. Table 1)", lo=0, lo_open=True)
    toughness: float = param(1.0, "J/m^2", "fracture toughness G_c (Supp. Table 1)", lo=0,
                             lo_open=True)


@dataclass(frozen=True)
class ShellInterfaceFamily(InterfaceFamily):
    """Traction-separation parameters of the shell/core interface."""

    enabled: bool = param(False, "-", "insert cohesive interfaces between the passivation shell "
                          "and the core (off by default: the reconstructed rock-salt layer grows "
                          "topotactically on the layered grains, sharing their oxygen sublattice, "
                          "so its interface is coherent, and the measured cracks are "
                          "intergranular; switched on, the 10 nm shell debonds in unstable snaps "
                          "that make a run some 20x longer)")


@dataclass(frozen=True)
class Cohesive:
    """Cohesive-zone model on grain boundaries and the shell/core interface."""

    enabled: bool = param(True, "-", "master switch for cohesive cracking (false: grains stay "
                          "bonded, no interface elements)")
    law: str = param("bilinear", "-", "traction-separation law",
                     choices=("bilinear", "exponential"))
    grain_boundary: InterfaceFamily = section(InterfaceFamily)
    shell_interface: ShellInterfaceFamily = section(ShellInterfaceFamily)
    shear_weight: float = param(1.0, "-", "beta in the effective opening "
                                "sqrt(<dn>^2 + beta^2 dt^2)", lo=0)
    mixed_mode: str = param("effective", "-", "mixed-mode criterion",
                            choices=("effective", "benzeggagh-kenane"))
    bk_exponent: float = param(2.0, "-", "Benzeggagh-Kenane exponent eta", lo=0, lo_open=True)
    shear_toughness_ratio: float = param(1.0, "-", "G_IIc / G_Ic for Benzeggagh-Kenane", lo=0,
                                         lo_open=True)
    initial_stiffness_factor: float = param(50.0, "-", "initial (penalty) stiffness K0 = factor * "
                                            "t_n / delta_f", lo=1)
    contact_stiffness_factor: float = param(1.0, "-", "compressive penalty stiffness relative to "
                                            "K0",
                                            lo=0, lo_open=True)
    residual_stiffness: float = param(1e-6, "-", "stiffness kept by a fully broken interface, "
                                      "relative to K0", lo=0, hi=1e-2)
    viscosity: float = param(0.0, "s", "viscous regularisation time (0 = off, rate-independent): "
                             "damage relaxes towards the rate-independent value over this time; "
                             "it dissipates energy of the order of what a snap releases unless "
                             "it is small against the time step", lo=0)
    contact_smoothing: float = param(0.05, "-", "half-width of the smoothed open/closed "
                                     "transition of the normal opening, as a fraction of the "
                                     "opening at peak traction (keeps Newton from chattering)",
                                     lo=0, hi=0.5)
    crack_blocks_flux: bool = param(True, "-", "a damaged interface throttles Li flux across it")
    open_crack_reacts: bool = param(False, "-", "crack faces open to the outside react like the "
                                    "outer surface (electrolyte penetration)")
    cracks_break_shell: bool = param(True, "-", "a fully cracked grain boundary breaks the "
                                     "meshed shell over it, so its faces (and cracks connected "
                                     "to them) are open to the electrolyte; false: only cracks "
                                     "reaching the outer surface are")
    intact_conductance_factor: float = param(1000.0, "-", "Li conductance of an intact interface "
                                             "as a multiple of D_ab / geometry.mesh.boundary_size "
                                             "(large: continuous transport)", lo=1)


# --- Loading and time stepping -----------------------------------------------------------------

@dataclass(frozen=True)
class Loading:
    """Initial state and temperature; the flat one-step protocol where experiment.steps is null."""

    mode: str = param("galvanostatic", "-", "galvanostatic (C-rate flux) or potentiostatic "
                      "(fixed surface x)", choices=("galvanostatic", "potentiostatic"))
    direction: str = param("charge", "-", "charge = delithiation, discharge = lithiation",
                           choices=("charge", "discharge"))
    c_rate: float = param(1.0, "1/h", "C-rate k: surface flux j = k c_max V / (A * 3600 s)",
                          lo=0, lo_open=True, hi=1000)
    x_initial: float = param(1.0, "-", "initial Li fraction x0 = c/c_max", lo=0, hi=1)
    x_end: float = param(0.25, "-", "cut-off mean Li fraction", lo=0, hi=1)
    surface_x: float = param(0.25, "-", "potentiostatic: imposed surface Li fraction", lo=0, hi=1)
    t_end: float | None = param(None, "s", "final time (null: run to the cut-off)", lo=0,
                                lo_open=True)
    surface_x_min: float = param(0.12, "-", "charge: lowest surface Li fraction (the voltage "
                                 "cut-off; 0.12 = end of the strain data)", lo=0, hi=1)
    surface_x_max: float = param(1.0, "-", "discharge: highest surface Li fraction", lo=0, hi=1)
    cv_hold: bool = param(True, "-", "galvanostatic: when the surface limit is reached, hold the "
                          "surface there (constant voltage) until x_end; false: stop there")
    cutoff_tolerance: float = param(5e-3, "-", "how closely events (surface limit, x_end in the "
                                    "hold) are located in x", lo=0, lo_open=True, hi=0.1)
    stress_assisted: bool = param(False, "-", "add the stress-assisted flux -D c Omega/(R T) "
                                  "grad(sigma_h)")
    partial_molar_volume: float = param(3.5e-6, "m^3/mol", "Omega for stress-assisted diffusion",
                                        lo=0)
    temperature: float = param(298.15, "K", "temperature", lo=0, lo_open=True)


#: PyBaMM-style steps of the default experiment: the first charge of a fresh electrode to the
#: usual NMC 811 upper cut-off, held there until the current has fallen to C/50
DEFAULT_STEPS = ["Charge at 1C until 4.3 V", "Hold at 4.3 V until C/50"]
#: ``loading`` keys that describe a one-step protocol (given, they replace the experiment)
FLAT_PROTOCOL_KEYS = ("mode", "direction", "c_rate", "x_end", "surface_x", "t_end",
                      "surface_x_min", "surface_x_max", "cv_hold")


@dataclass(frozen=True)
class Electrochemistry:
    """Surface reaction: open-circuit potential and Butler-Volmer kinetics (experiment steps)."""

    kinetics: str = param("butler-volmer", "-", "butler-volmer: the particle is one electronic "
                          "conductor whose potential V makes the total reaction current equal "
                          "the applied one, the local current following the local surface "
                          "state; uniform: the same current density everywhere (verification, "
                          "and the flat loading keys), V reported as the potential that carries "
                          "that current", choices=("butler-volmer", "uniform"))
    ocp: str = param("Chen2020", "-", "open-circuit potential U(x): Chen2020 (NMC 811 of Chen et "
                     "al., J. Electrochem. Soc. 167, 080534 (2020), as in PyBaMM) or table "
                     "(electrochemistry.ocp_table)", choices=("Chen2020", "table"))
    ocp_table: str | None = param(None, "-", "ocp = table: text file of two columns, "
                                  "stoichiometry [-] and U [V], ascending in stoichiometry")
    stoichiometry_at_x: list = param([0.0, 1.0], "-", "stoichiometry of the OCP fit at x = 0 and "
                                     "x = 1 (linear between): Chen2020's stoichiometry is c/c_max, "
                                     "so the default identifies it with x", length=2, lo=0, hi=1)
    exchange_current_coefficient: float = param(3.42e-6, "(A/m^2)(m^3/mol)^1.5", "m_ref in i0 = "
                                                "m_ref c_e^0.5 c_s^0.5 (c_max - c_s)^0.5 at 298.15 "
                                                "K (Chen 2020)", lo=0, lo_open=True)
    activation_energy: float = param(17800.0, "J/mol", "activation energy of i0 (Chen 2020)",
                                     lo=0)
    electrolyte_concentration: float = param(1000.0, "mol/m^3", "Li+ concentration c_e of the "
                                             "electrolyte (uniform; Chen 2020: 1000)",
                                             lo=0, lo_open=True)
    charge_transfer_coefficient: float = param(0.5, "-", "anodic transfer coefficient alpha "
                                               "(0.5: symmetric Butler-Volmer)", lo=0, hi=1,
                                               lo_open=True, hi_open=True)
    min_site_fraction: float = param(1e-3, "-", "the Li and vacancy site fractions in i0 are kept "
                                     "above this (a pristine x = 1 surface has no vacancies, and "
                                     "i0 = 0 would forbid any charge)", lo=0, lo_open=True,
                                     hi=0.1)
    newton_tolerance: float = param(1e-11, "-", "the surface-reaction Newton iteration stops when "
                                    "no Li fraction changes by more than this", lo=0,
                                    lo_open=True, hi=1e-4)
    max_newton_iterations: int = param(25, "-", "Newton iterations of one transport step before "
                                       "it is cut", lo=1, hi=200)


@dataclass(frozen=True)
class Experiment:
    """The cycling protocol: steps as PyBaMM-style strings or mappings, repeated as cycles."""

    steps: list | None = param(DEFAULT_STEPS, "-", "one cycle's steps, e.g. 'Charge at 1C until "
                               "4.3 V', 'Hold at 4.3 V until C/50', 'Rest for 1 hour', "
                               "'Discharge at 0.5C for 30 minutes' (nmcfem/experiment.py); null: "
                               "the flat loading keys (one step), which a config that sets them "
                               "gets automatically")
    cycles: int = param(1, "-", "times the steps are repeated", lo=1, hi=100000)
    voltage_tolerance: float = param(1e-3, "V", "how closely a voltage cut-off is located",
                                     lo=0, lo_open=True, hi=0.1)
    current_tolerance: float = param(0.02, "-", "how closely a hold's end current is located, "
                                     "relative to it", lo=0, lo_open=True, hi=0.5)
    stop_cracked_area: float | None = param(None, "m^2", "stop when the cracked interface area "
                                            "exceeds this (null: never)", lo=0, lo_open=True)
    stop_capacity_fraction: float | None = param(None, "-", "stop when a cycle's discharge "
                                                 "capacity falls below this fraction of the "
                                                 "first cycle's (null: never)", lo=0, hi=1)


@dataclass(frozen=True)
class Passivation:
    """A passivation (rock-salt) layer growing on the outer surface, on top of the meshed shell."""

    enabled: bool = param(False, "-", "grow a layer on the outer surface where the surface is "
                          "charged above passivation.onset_voltage")
    law: str = param("parabolic", "-", "growth law: parabolic, h dh/dt = k while the local "
                     "open-circuit potential is at or above the onset", choices=("parabolic",))
    rate_constant: float = param(2.5e-21, "m^2/s", "k of the parabolic law at the reference "
                                 "temperature; calibrated to the target of the mutual-modulation "
                                 "issue (a few nm after the first cycle, 15-20 nm after tens of "
                                 "cycles to 4.3 V): configs/mutual_modulation.yaml spends ~1130 s "
                                 "above the onset in cycle 1, giving 2.4 nm after it and "
                                 "19 nm after 46 (sweep it: no measured growth law for NMC811 "
                                 "is in the source paper)", lo=0)
    onset_voltage: float = param(4.2, "V", "the layer grows where the open-circuit potential of "
                                 "the surface's Li fraction, U(x_s), is at or above this", lo=0,
                                 hi=10)
    activation_energy: float = param(0.0, "J/mol", "Arrhenius dependence of k: k(T) = k exp(-E_a/R "
                                     "(1/T - 1/T_ref)) (0 = none)", lo=0)
    reference_temperature: float = param(298.15, "K", "T_ref of rate_constant", lo=0,
                                         lo_open=True)
    initial_thickness: float = param(0.0, "m", "thickness of the grown layer at the start (the "
                                     "meshed shell, geometry.shell_thickness, comes in addition)",
                                     lo=0)
    throttles_transport: bool = param(True, "-", "Butler-Volmer kinetics: the reacting Li "
                                      "diffuses across the grown layer (diffusivity "
                                      "materials.shell.D_L) in series with the charge transfer")


@dataclass(frozen=True)
class TimeStepping:
    """Adaptive backward-Euler time stepping."""

    dt_initial: float = param(1.0, "s", "first time step", lo=0, lo_open=True)
    dt_min: float = param(1e-3, "s", "smallest time step before giving up", lo=0, lo_open=True)
    dt_max: float = param(60.0, "s", "largest time step", lo=0, lo_open=True)
    dx_target: float = param(0.02, "-", "target largest change of the grains' Li fraction per "
                             "step (faces of fully cracked grain boundaries inside the core left "
                             "out)", lo=0, lo_open=True, hi=1)
    current_change_target: float = param(0.1, "-", "target largest relative change of the "
                                         "current per step in constant-voltage steps, which "
                                         "end at a current", lo=0, lo_open=True)
    growth: float = param(1.5, "-", "step growth factor after an easy step", lo=1, hi=10)
    cutback: float = param(0.5, "-", "step reduction factor after a failure", lo=0, hi=1,
                           lo_open=True, hi_open=True)
    max_retries: int = param(8, "-", "failed attempts allowed for one step", lo=0, hi=100)
    max_steps: int = param(100000, "-", "hard cap on the number of steps", lo=1)


@dataclass(frozen=True)
class InterfaceIteration:
    """The cracking step's iteration: equilibrium and irreversible damage at the step's Li field."""

    rtol: float = param(1e-4, "-", "converged when the force residual is below rtol x the norm of "
                        "the step's chemical-strain load (1e-4: the default run's cracked area "
                        "to all digits and dissipation to 1e-5 of 1e-6's, with 40 % fewer "
                        "iterations: docs/cracking_cost_profile.md)", lo=0, lo_open=True,
                        hi=1e-2)
    atol: float = param(1e-12, "N", "... or below this force", lo=0)
    max_iterations: int = param(500, "-", "iterations of one step before it is cut (an unstable "
                                "crack advance takes the most)", lo=1)
    memory: int = param(5, "-", "earlier steps whose curvature the quasi-Newton (L-BFGS) steps "
                        "keep (0 = plain alternate minimisation where Newton does not help)",
                        lo=0, hi=50)
    newton: bool = param(True, "-", "take Newton steps on the consistent tangent where they lower "
                         "the step's energy (quadratic convergence once the set of loading "
                         "interface points has settled)")
    negative_curvature: bool = param(True, "-", "where the energy is concave along Newton's "
                                     "direction (at a saddle before a crack snaps), step downhill "
                                     "along it instead, with a step length that doubles while the "
                                     "energy falls (quick_cracks to x = 0.5: 577 instead of 774 "
                                     "iterations, 13-15 s instead of 22 s: "
                                     "docs/cracking_cost_profile.md)")
    krylov_limit: int = param(20, "-", "Krylov iterations with a reused preconditioner above which "
                              "it is rebuilt at the current matrix (a reused AMG hierarchy gets "
                              "twice its fresh solve's iterations where that is more)", lo=1)
    solves_per_factorisation: int = param(6, "-", "linear solves after which the next step "
                                          "starts with a new factorisation (or AMG hierarchy) "
                                          "at its first matrix; until then the last one serves "
                                          "across steps (at ~5 Krylov iterations a solve, about "
                                          "the cost of a factorisation: "
                                          "docs/cracking_cost_profile.md)", lo=1)
    symmetric_factorisation: bool = param(True, "-", "where the direct path factorises with "
                                          "MUMPS LU, precondition with an LDL^T factorisation of "
                                          "the matrix's symmetric part instead (METIS ordering): "
                                          "as many Krylov iterations, about half the factor "
                                          "entries (quick_cracks to x = 0.5: 49 -> 34 ms a "
                                          "factorisation, 1.9 -> 1.1 ms a Krylov iteration)")


#: PETSc options of a direct solve: MUMPS LU; icntl_24 detects the null pivots of a free body's
#: rigid modes (the load is orthogonal to them, and they are removed from the solution)
_DIRECT = {"pc_type": "lu", "pc_factor_mat_solver_type": "mumps", "mat_mumps_icntl_24": 1}
_AMG = {"pc_type": "gamg", "pc_gamg_coarse_eq_limit": 1000, "mg_levels_ksp_type": "chebyshev",
        "mg_levels_pc_type": "sor"}


@dataclass(frozen=True)
class Solver:
    """Linear algebra of each sub-problem: a direct factorisation while it is cheap, AMG beyond."""

    linear: str = param("auto", "-", "auto: direct factorisations (solver.direct) for meshes up to "
                        "solver.direct_max_unknowns displacement unknowns, Krylov + AMG beyond "
                        "(solver.diffusion, solver.elasticity, solver.cracking); direct or "
                        "iterative: always that", choices=("auto", "direct", "iterative"))
    direct_max_unknowns: int = param(150000, "-", "largest displacement unknowns for which auto "
                                     "chooses direct factorisations (cracking runs, 1 rank: AMG "
                                     "took 2.75 / 1.68 / 1.27x MUMPS's time at 8k / 45k / 72k "
                                     "unknowns, MUMPS 2.6x AMG's memory at 72k; uncracked runs "
                                     "favour MUMPS longer: benchmarks/solver_benchmark.py)", lo=0)
    direct: dict = param(_DIRECT, "-", "PETSc PC options of every direct solve (the KSP type is "
                         "set per solve: preonly, or GMRES where a factorisation is reused for "
                         "a changed matrix, as in the cracking step and in the Li transport's "
                         "Newton iterations within a step; the cracking step turns MUMPS LU "
                         "into LDL^T of the symmetric part: "
                         "solver.interface.symmetric_factorisation)")
    elasticity: dict = param({"ksp_type": "cg", "ksp_rtol": 1e-8, "ksp_atol": 1e-18,
                              "ksp_max_it": 2000, **_AMG}, "-",
                             "PETSc options of the iterative elasticity solve without cracks (CG + "
                             "smoothed-aggregation AMG with the rigid-body near-nullspace; SOR "
                             "smoothing copes with the flat shell elements)")
    diffusion: dict = param({"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-10,
                             "ksp_atol": 1e-20, "ksp_max_it": 1000}, "-",
                            "PETSc options of the iterative Li transport solve")
    cracking: dict = param({"ksp_type": "gmres", "ksp_pc_side": "right", "ksp_gmres_restart": 100,
                            "ksp_max_it": 1000, **_AMG}, "-",
                           "PETSc options of the iterative linear solves of a cracking step "
                           "(GMRES + AMG of a recent iteration's matrix, with the rigid-body "
                           "modes as its near-nullspace so that a grain come loose keeps its "
                           "rigid motions on the coarse levels; the tolerance is set per solve)")
    interface: InterfaceIteration = section(InterfaceIteration)


@dataclass(frozen=True)
class Output:
    """Where and what a run writes."""

    directory: str = param("runs", "-", "parent folder of run folders (relative to the CWD)")
    name: str | None = param(None, "-", "run folder name (null: config name + geometry hash)")
    mesh_cache: str = param("meshes", "-", "folder of the mesh cache")
    fields_every: int = param(10, "-", "write fields every N steps (and at the end)", lo=1)
    field_format: str = param("vtx", "-", "ParaView field format", choices=("vtx", "xdmf"))
    checkpoint_every: int = param(0, "-", "checkpoint every N steps (0 = off)", lo=0)
    pictures: bool = param(True, "-", "render 3D pictures of the particle at the end (grains, "
                           "Li fraction, von Mises, interface damage; PNG in pictures/)")
    at_step_ends: list = param([], "-", "[cycle, step] pairs (1-based) at whose end fields and "
                               "an analysis snapshot are also written, e.g. [[1, 2], [46, 2]] "
                               "for the end of the hold of cycles 1 and 46")
    snapshot_depths: list = param([0.0, 2.5e-9, 5e-9, 7.5e-9, 10e-9, 12.5e-9, 15e-9, 20e-9,
                                   30e-9, 50e-9], "m", "depths below the surface sampled into the "
                                  "analysis snapshot", lo=0, min_length=1)


@dataclass(frozen=True)
class Analysis:
    """Comparison of the simulated surface with measured Ni-valence maps."""

    enabled: bool = param(True, "-", "run the analysis at the end of `run`")
    energy_a: float = param(854.0, "eV", "lower photon energy of the TEY ratio (Supp. Fig. 1)",
                            lo=0, lo_open=True)
    energy_b: float = param(856.2, "eV", "upper photon energy of the TEY ratio (Supp. Fig. 1)",
                            lo=0, lo_open=True)
    probing_depth: float = param(5e-9, "m", "exponential decay depth of the TEY signal "
                                 "(soft X-ray TEY probes ~5-13 nm)", lo=0, lo_open=True)
    view_direction: list = param([0.0, 0.0, 1.0], "-", "direction from the particle to the "
                                 "detector", length=3)
    pixel_size: float = param(27.2e-9, "m", "pixel size of the rendered map", lo=0, lo_open=True)
    field_of_view: int = param(400, "px", "rendered map size (pixels per side; 400 x 27.2 nm "
                               "covers a 10 um particle)", lo=8, hi=8192)
    probe_fwhm: float = param(30e-9, "m", "probe blur FWHM (0 = none)", lo=0)
    cone_angles: list = param([5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0], "deg",
                              "cone opening angles of the surface/bulk correlation (Supp. Fig. 4)",
                              lo=0, lo_open=True, hi=90, min_length=1)
    valence_calibration: list | None = param(None, "-", "two [xi, valence] pairs for the "
                                             "ratio->valence map (null: fit)")
    measured: list = param([], "-", "measured image files to compare with")
    figures: bool = param(True, "-", "write figures (PNG and SVG)")


@dataclass(frozen=True)
class Sweep:
    """Defaults of parameter sweeps (the sweep file names its own axes)."""

    ranks_per_case: int = param(1, "-", "MPI ranks per case when a sweep runs cases concurrently",
                                lo=1)


@dataclass(frozen=True)
class Config:
    """A complete nmcfem run configuration."""

    geometry: Geometry = section(Geometry)
    materials: Materials = section(Materials)
    cohesive: Cohesive = section(Cohesive)
    loading: Loading = section(Loading)
    electrochemistry: Electrochemistry = section(Electrochemistry)
    experiment: Experiment = section(Experiment)
    passivation: Passivation = section(Passivation)
    time: TimeStepping = section(TimeStepping)
    solver: Solver = section(Solver)
    output: Output = section(Output)
    analysis: Analysis = section(Analysis)
    sweep: Sweep = section(Sweep)


# --- Building from plain data ------------------------------------------------------------------

def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_number(path: str, value: Any, meta: dict, want_int: bool) -> float | int:
    unit = meta.get("unit", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # PyYAML reads 5e-6 (no dot) as a string: accept numeric strings, refuse the rest.
        number = None
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None:
            kind = "an integer" if want_int else "a number"
            raise ConfigError(f"{path}: expected {kind} in {unit}, got {_fmt(value)}")
        value = number
    if want_int:
        if float(value) != int(value):
            raise ConfigError(f"{path}: expected an integer, got {_fmt(value)}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number in {unit}, got {_fmt(value)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    bad_lo = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
    bad_hi = hi is not None and (value >= hi if meta.get("hi_open") else value > hi)
    if bad_lo or bad_hi:
        left = "(" if meta.get("lo_open") else "["
        right = ")" if meta.get("hi_open") else "]"
        rng = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise ConfigError(f"{path} = {_fmt(value)} {unit} is out of range: expected a value in "
                          f"{rng} {unit} ({meta.get('doc', '')})")
    return value


def _convert(path: str, tp: Any, value: Any, meta: dict) -> Any:
    """Check ``value`` against the annotated type ``tp`` and return it normalised."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
    if value is None:
        raise ConfigError(f"{path}: a value is required ({meta.get('doc', '')}), got null")
    if _is_dataclass_type(tp):
        return _build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_fmt(value)}")
        return value
    if tp is int:
        return _check_number(path, value, meta, want_int=True)
    if tp is float:
        return _check_number(path, value, meta, want_int=False)
    if tp is str:
        if not isinstance(value, str):
            hint = (" (YAML reads off/on/yes/no/true/false as booleans and bare numbers as "
                    "numbers: quote the value, e.g. name: 'off')"
                    if isinstance(value, (bool, int, float)) else "")
            raise ConfigError(f"{path}: expected a string, got {_fmt(value)}{hint}")
        choices = meta.get("choices")
        if choices and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{path} = {_fmt(value)} is not allowed: expected one of "
                              f"{', '.join(choices)}{hint}")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of options, got {_fmt(value)}")
        return dict(value)
    if tp is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_fmt(value)}")
        n, nmin = meta.get("length"), meta.get("min_length")
        if n is not None and len(value) != n:
            raise ConfigError(f"{path}: expected a list of {n} values, got {len(value)}")
        if nmin is not None and len(value) < nmin:
            raise ConfigError(f"{path}: expected at least {nmin} values, got {len(value)}")
        if meta.get("lo") is not None or meta.get("hi") is not None:
            return [_check_number(f"{path}[{i}]", v, meta, want_int=False)
                    for i, v in enumerate(value)]
        return list(value)
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - schema bug


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges."""
    where = prefix or "top level"
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {_fmt(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown key '{path}': {_suggest(str(key), list(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            path = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _convert(path, hints[name], data[name], dict(f.metadata))
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """Plain nested dict of a config (or a section), suitable for YAML/JSON."""
    return dataclasses.asdict(obj)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set geometry.n_grains=30")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: the key must be a dotted path like loading.c_rate")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Merge ``--set a.b=v`` overrides (values parsed as YAML) into plain config data."""
    for item in overrides or []:
        parts, value = _parse_override(item)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        data = _merge(data, nested)
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (plain YAML keeps the
    last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"key '{key}' is given twice in one mapping (lines {seen[key]} "
                                  f"and {key_node.start_mark.line + 1} of "
                                  f"'{key_node.start_mark.name}'): keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping from ``path`` with errors that name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a folder)" if path.is_dir() else ""
        raise ConfigError(f"config file '{path}' not found{hint}: give the path of a YAML file, "
                          f"e.g. configs/default.yaml")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file '{path}': YAML syntax error{at}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not a text file: give a YAML file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}': expected a mapping of sections at the top "
                          f"level, got {_fmt(data)}")
    return data


def _flat_protocol_given(data: dict) -> dict:
    """``data`` with ``experiment.steps: null`` where it sets flat loading protocol keys but no
    experiment steps: the flat keys keep their meaning of a one-step protocol."""
    loading, experiment = data.get("loading"), data.get("experiment")
    if isinstance(experiment, dict) and "steps" in experiment:
        return data
    if isinstance(loading, dict) and any(k in loading for k in FLAT_PROTOCOL_KEYS):
        return _merge(data, {"experiment": {"steps": None}})
    return data


def from_dict(data: dict) -> Config:
    """Build and fully validate a :class:`Config` from plain nested data."""
    cfg = _build(Config, _flat_protocol_given(data))
    validate(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config file (None: schema defaults), apply ``--set`` overrides, validate.

    Parameters
    ----------
    path: YAML file; missing sections/keys take the schema defaults.
    overrides: list of "dotted.key=value" strings, values parsed as YAML.
    """
    data = read_yaml(path) if path is not None else {}
    return from_dict(apply_overrides(data, overrides))


def replace(cfg: Config, overrides: list[str]) -> Config:
    """Return a validated copy of ``cfg`` with ``--set``-style overrides applied."""
    return from_dict(apply_overrides(to_dict(cfg), overrides))


# --- Cross-field consistency -------------------------------------------------------------------

def validate(cfg: Config) -> None:
    """Check relations between fields that single-field ranges cannot express."""
    g, m, ld, ts = cfg.geometry, cfg.materials, cfg.loading, cfg.time
    if g.shell_thickness >= 0.5 * g.radius:
        raise ConfigError(f"geometry.shell_thickness = {g.shell_thickness} m is not thin compared "
                          f"with geometry.radius = {g.radius} m: expected < radius/2")
    if g.mesh.boundary_size > g.mesh.grain_size:
        raise ConfigError(f"geometry.mesh.boundary_size = {g.mesh.boundary_size} m exceeds "
                          f"geometry.mesh.grain_size = {g.mesh.grain_size} m: boundaries are "
                          f"meshed finer than grains, not coarser")
    if g.mesh.grain_size > g.radius:
        raise ConfigError(f"geometry.mesh.grain_size = {g.mesh.grain_size} m is larger than the "
                          f"particle radius {g.radius} m: choose a size <= radius/3")
    if g.grain_points is not None:
        pts = g.grain_points
        if len(pts) != g.n_grains or any(not isinstance(p, (list, tuple)) or len(p) != 3
                                         for p in pts):
            raise ConfigError(f"geometry.grain_points: expected {g.n_grains} points [x, y, z] in m "
                              f"(geometry.n_grains), got {_fmt(pts)}")
        for i, p in enumerate(pts):
            coords = [_check_number(f"geometry.grain_points[{i}]", v, {"unit": "m"}, False)
                      for v in p]
            if math.sqrt(sum(v * v for v in coords)) >= g.radius:
                raise ConfigError(f"geometry.grain_points[{i}] = {p} lies outside the particle "
                                  f"(radius {g.radius} m)")
    if g.texture == "list":
        ori = g.orientations
        if ori is None or len(ori) != g.n_grains:
            raise ConfigError(f"geometry.orientations: texture 'list' needs {g.n_grains} entries "
                              f"[nx, ny, nz, psi_deg] (one per grain), got {_fmt(ori)}")
        for i, o in enumerate(ori):
            if not isinstance(o, (list, tuple)) or len(o) not in (3, 4):
                raise ConfigError(f"geometry.orientations[{i}] = {_fmt(o)}: expected "
                                  f"[nx, ny, nz] or [nx, ny, nz, psi_deg]")
            vals = [_check_number(f"geometry.orientations[{i}]", v, {"unit": "-"}, False)
                    for v in o]
            if math.sqrt(sum(v * v for v in vals[:3])) < 1e-12:
                raise ConfigError(f"geometry.orientations[{i}] = {o}: the c-axis must be non-zero")
    elif g.orientations is not None:
        raise ConfigError(f"geometry.orientations is given but geometry.texture = '{g.texture}': "
                          f"set texture: list to use explicit orientations, or remove them")

    grain = m.grain
    # Positive definiteness of the transversely isotropic stiffness (Born stability criteria).
    if not (grain.C11 > abs(grain.C12) and grain.C44 > 0
            and (grain.C11 + grain.C12) * grain.C33 > 2 * grain.C13 ** 2):
        raise ConfigError(f"materials.grain: C11={grain.C11}, C12={grain.C12}, C13={grain.C13}, "
                          f"C33={grain.C33}, C44={grain.C44} Pa is not a stable (positive "
                          f"definite) hexagonal stiffness: need C11>|C12|, C44>0, "
                          f"(C11+C12)C33>2 C13^2")
    cs = grain.chemical_strain
    if not (len(cs.strain_x) == len(cs.eps_a) == len(cs.eps_c)):
        raise ConfigError(f"materials.grain.chemical_strain: strain_x, eps_a, eps_c must have "
                          f"equal lengths, got {len(cs.strain_x)}, {len(cs.eps_a)}, "
                          f"{len(cs.eps_c)}")
    if any(b >= a for a, b in zip(cs.strain_x, cs.strain_x[1:])):
        raise ConfigError(f"materials.grain.chemical_strain.strain_x = {_fmt(cs.strain_x)}: "
                          f"expected strictly descending Li fractions")
    if cfg.experiment.steps is not None:
        _validate_experiment(cfg)
        lo_x = hi_x = ld.x_initial
    else:
        lo_x, hi_x = min(ld.x_initial, ld.x_end), max(ld.x_initial, ld.x_end)
    if cs.law == "table" and (lo_x < min(cs.strain_x) - 1e-12 or hi_x > max(cs.strain_x) + 1e-12):
        raise ConfigError(f"loading: x from {ld.x_initial} to {ld.x_end} leaves the "
                          f"chemical-strain table range [{min(cs.strain_x)}, "
                          f"{max(cs.strain_x)}]: extend materials.grain.chemical_strain or "
                          f"change loading.x_end")

    if cfg.experiment.steps is not None:
        pass
    elif ld.mode == "galvanostatic":
        if ld.direction == "charge" and not ld.x_end < ld.x_initial:
            raise ConfigError(f"loading.x_end = {ld.x_end} must be below loading.x_initial = "
                              f"{ld.x_initial} for a charge (delithiation)")
        if ld.direction == "discharge" and not ld.x_end > ld.x_initial:
            raise ConfigError(f"loading.x_end = {ld.x_end} must be above loading.x_initial = "
                              f"{ld.x_initial} for a discharge (lithiation)")
        if ld.direction == "charge" and not ld.surface_x_min < ld.x_end:
            raise ConfigError(f"loading.surface_x_min = {ld.surface_x_min} must be below "
                              f"loading.x_end = {ld.x_end}: the surface empties before the bulk")
        if ld.direction == "discharge" and not ld.surface_x_max > ld.x_end:
            raise ConfigError(f"loading.surface_x_max = {ld.surface_x_max} must be above "
                              f"loading.x_end = {ld.x_end}: the surface fills before the bulk")
        if ld.direction == "charge" and ld.x_end <= 0:
            raise ConfigError("loading.x_end = 0: a galvanostatic charge cannot empty the particle "
                              "completely; choose x_end > 0")
    elif ld.t_end is None:
        raise ConfigError("loading.t_end is null but loading.mode = 'potentiostatic' has no "
                          "cut-off: give loading.t_end in s")
    elif ld.surface_x == ld.x_initial:
        raise ConfigError(f"loading.surface_x = {ld.surface_x} equals loading.x_initial: a "
                          f"potentiostatic step needs a different surface value")

    if ld.stress_assisted and ld.partial_molar_volume <= 0:
        raise ConfigError("loading.stress_assisted is on but loading.partial_molar_volume = 0 "
                          "m^3/mol: give Omega > 0 (e.g. 3.5e-6)")
    if not ts.dt_min <= ts.dt_initial <= ts.dt_max:
        raise ConfigError(f"time: expected dt_min <= dt_initial <= dt_max, got {ts.dt_min} s, "
                          f"{ts.dt_initial} s, {ts.dt_max} s")
    coh = cfg.cohesive
    if coh.enabled and not (coh.grain_boundary.enabled or coh.shell_interface.enabled):
        raise ConfigError("cohesive.enabled = true but cohesive.grain_boundary.enabled and "
                          "cohesive.shell_interface.enabled are both false: switch a family on, "
                          "or set cohesive.enabled: false")
    a = cfg.analysis
    for i, item in enumerate(a.measured):
        target = Path(str(item))
        if not target.is_file():
            hint = " (it is a folder)" if target.is_dir() else ""
            raise ConfigError(f"analysis.measured[{i}] = '{item}' not found{hint} (relative to "
                              f"{Path.cwd()}): give the path of a measured image, STXM .hdr or "
                              f"TXM .xrm file, or remove it")
        try:
            with open(target, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ConfigError(f"analysis.measured[{i}] = '{item}' cannot be read "
                              f"({exc.strerror}): check its permissions") from None
    if sum(v * v for v in a.view_direction) < 1e-24:
        raise ConfigError("analysis.view_direction = [0, 0, 0]: give a non-zero direction")
    if a.energy_a == a.energy_b:
        raise ConfigError(f"analysis.energy_a = analysis.energy_b = {a.energy_a} eV: the ratio "
                          f"needs two different energies")
    if a.valence_calibration is not None:
        vc = a.valence_calibration
        if len(vc) != 2 or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in vc):
            raise ConfigError(f"analysis.valence_calibration = {_fmt(vc)}: expected two pairs "
                              f"[[xi_1, v_1], [xi_2, v_2]] or null")


def _validate_experiment(cfg: Config) -> None:
    """Steps that parse and that the chosen kinetics can run; OCP table and outputs."""
    from nmcfem.experiment import CV, parse_steps

    ec = cfg.electrochemistry
    steps = parse_steps(cfg.experiment.steps)
    if ec.kinetics == "uniform" and any(s.kind == CV for s in steps):
        raise ConfigError("experiment.steps: a constant-voltage hold needs "
                          "electrochemistry.kinetics: butler-volmer (under uniform kinetics the "
                          "current is imposed, not the potential)")
    if ec.ocp == "table":
        if ec.ocp_table is None or not Path(ec.ocp_table).is_file():
            raise ConfigError(f"electrochemistry.ocp_table = {ec.ocp_table!r} not found "
                              f"(relative to {Path.cwd()}): give a text file of two columns, "
                              f"stoichiometry and U [V], or set electrochemistry.ocp: Chen2020")
        read_ocp_table(ec.ocp_table)
    s0, s1 = ec.stoichiometry_at_x
    if s0 == s1:
        raise ConfigError(f"electrochemistry.stoichiometry_at_x = {[s0, s1]}: the two "
                          f"stoichiometries must differ")
    n = len(steps)
    for i, item in enumerate(cfg.output.at_step_ends):
        ok = isinstance(item, (list, tuple)) and len(item) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in item)
        if not ok or not (1 <= item[0] <= cfg.experiment.cycles and 1 <= item[1] <= n):
            raise ConfigError(f"output.at_step_ends[{i}] = {_fmt(item)}: expected [cycle, step] "
                              f"with cycle in 1..{cfg.experiment.cycles} (experiment.cycles) and "
                              f"step in 1..{n} (experiment.steps)")


def read_ocp_table(path: str | Path) -> tuple[list[float], list[float]]:
    """Stoichiometry (ascending) and U (V) of a two-column OCP text file."""
    import numpy as np

    try:
        table = np.loadtxt(path, comments="#", delimiter=None, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"electrochemistry.ocp_table = '{path}': cannot read two numeric "
                          f"columns ({exc})") from None
    if table.shape[1] != 2 or table.shape[0] < 2 or np.any(np.diff(table[:, 0]) <= 0):
        raise ConfigError(f"electrochemistry.ocp_table = '{path}': expected at least two rows "
                          f"of 'stoichiometry U[V]', strictly ascending in stoichiometry")
    return table[:, 0].tolist(), table[:, 1].tolist()


# --- Hashing -----------------------------------------------------------------------------------

def section_hash(obj: Any, length: int = 12) -> str:
    """Stable hex digest of a config section (used to key mesh caches and run folders)."""
    text = json.dumps(obj if isinstance(obj, dict) else to_dict(obj), sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str, Any]]:
    """List every leaf key as (dotted key, unit, meaning, default), for docs and error hints."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if _is_dataclass_type(tp):
            rows.extend(describe(tp, path))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((path, f.metadata.get("unit", "-"), f.metadata.get("doc", ""), default))
    return rows


def _yaml_float(v: float) -> str:
    # PyYAML (YAML 1.1) reads an exponent number as a float only when it has a dot.
    text = f"{v:.10g}"
    if "e" in text and "." not in text.split("e")[0]:
        mant, exp = text.split("e")
        text = f"{mant}.0e{exp}"
    elif "e" not in text and "." not in text and "n" not in text:
        text += ".0"
    return text


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, float):
        return _yaml_float(value)
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(_yaml_float(v) for v in value) + "]"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") or text.endswith(" ...") else text


def commented_yaml(obj: Any = None, indent: int = 0) -> str:
    """YAML text of a config (default: schema defaults) with the unit and meaning of every key.

    Parameters
    ----------
    obj: a :class:`Config` or section instance.
    indent: indentation (spaces) of this level.
    """
    obj = Config() if obj is None else obj
    lines = []
    pad = " " * indent
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if _is_dataclass_type(hints[f.name]):
            doc = (type(value).__doc__ or "").strip().splitlines()[0]
            lines.append(f"{pad}{f.name}:  # {doc}")
            lines.append(commented_yaml(value, indent + 2))
            continue
        comment = f"# [{f.metadata.get('unit', '-')}] {f.metadata.get('doc', '')}"
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{f.name}:  {comment}")
            for key, val in value.items():
                lines.append(f"{pad}  {key}: {_yaml_scalar(val)}")
        else:
            lines.append(f"{pad}{f.name}: {_yaml_scalar(value)}  {comment}")
    return "\n".join(lines)
