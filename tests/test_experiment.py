"""Experiments as data: PyBaMM-style strings and mappings, the config rules around them, the
per-cycle table, and the time loop's policies on a cheap fake problem."""

import numpy as np
import pytest

from nmcfem import config as C
from nmcfem.cycling import cycle_table
from nmcfem.errors import ConfigError
from nmcfem.experiment import (
    CC,
    CURRENT,
    CV,
    MEAN_X,
    REST,
    SURFACE,
    SURFACE_X,
    VOLTAGE,
    parse_step,
    parse_steps,
)
from nmcfem.physics.electrochemistry import NUMPY_MATH, Kinetics, ocp_chen2020
from nmcfem.stepping import CrackGrowthPolicy, EventLocator, StepSizeControl

EXAMPLES = {
    "Charge at 1C until 4.3 V": (CC, "charge", 1.0, None, [(VOLTAGE, 4.3)]),
    "Hold at 4.3 V until C/50": (CV, None, None, None, [(CURRENT, 0.02)]),
    "Rest for 1 hour": (REST, None, None, 3600.0, []),
    "Discharge at 0.5C for 30 minutes": (CC, "discharge", 0.5, 1800.0, []),
    "Discharge at C/3 for 2 hours or until 3.0 V": (CC, "discharge", 1 / 3, 7200.0,
                                                    [(VOLTAGE, 3.0)]),
    "Charge at 1C until 4.3 V or until surface x = 0.12": (CC, "charge", 1.0, None,
                                                           [(VOLTAGE, 4.3), (SURFACE_X, 0.12)]),
    "Charge at 2 nA until x = 0.3": (CC, "charge", 2e-9, None, [(MEAN_X, 0.3)]),
    "Hold at 4.1 V for 1 hour": (CV, None, None, 3600.0, []),
    "Hold surface at x = 0.25 for 10 minutes": (SURFACE, None, None, 600.0, []),
    "rest  for 90 s": (REST, None, None, 90.0, []),
}

MALFORMED = [
    "Charg at 1C until 4.3 V",            # misspelt verb
    "Charge at 1X until 4.3 V",           # unknown rate
    "Charge at 1C",                       # never ends
    "Rest for 1 fortnight",               # unknown unit
    "Hold at 4.3 V until 4.2 V",          # a hold cannot end on a voltage
    "Charge at 1C until 4.3 W",           # unknown condition
    "Discharge at -1C for 1 hour",        # negative rate
    "Rest",                               # no duration
    "Charge at 1C until C/50",            # constant current cannot end on a current
    "Hold at 4.3 V",                      # never ends
    "Charge at 1C until x = 1.5",         # a Li fraction outside [0, 1]
    "Rest for 0 minutes",                 # zero duration
]


@pytest.mark.parametrize("text", list(EXAMPLES))
def test_every_example_string_parses(text):
    kind, direction, rate, duration, until = EXAMPLES[text]
    step = parse_step(text)
    assert step.kind == kind and step.direction == direction and step.duration == duration
    if rate is not None:
        assert step.rate.value == pytest.approx(rate)
    got = [(c.quantity, c.value if c.rate is None else c.rate.value) for c in step.until]
    assert got == [(q, pytest.approx(v)) for q, v in until]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_strings_give_one_clear_line(text):
    with pytest.raises(ConfigError) as err:
        parse_step(text, "experiment.steps[0]")
    message = str(err.value)
    assert "\n" not in message and message.startswith("experiment.steps[0] = ")
    assert "expected a step like 'Charge at 1C until 4.3 V'" in message


def test_mappings_mean_the_same_as_strings():
    pairs = [({"type": "cc", "direction": "charge", "c_rate": 1, "until": {"voltage": 4.3}},
              "Charge at 1C until 4.3 V"),
             ({"type": "cv", "voltage": 4.3, "until": [{"c_rate": 0.02}]},
              "Hold at 4.3 V until C/50"),
             ({"type": "rest", "duration": 3600}, "Rest for 1 hour"),
             ({"type": "surface", "surface_x": 0.25, "duration": 600},
              "Hold surface at x = 0.25 for 10 minutes")]
    for mapping, text in pairs:
        a, b = parse_step(mapping), parse_step(text)
        assert (a.kind, a.direction, a.rate, a.voltage, a.surface_x, a.duration, a.until) == \
            (b.kind, b.direction, b.rate, b.voltage, b.surface_x, b.duration, b.until)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_step({"type": "rest", "duration": 60, "durration": 5})
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_steps([])


def test_flat_loading_keys_still_mean_a_one_step_protocol(repo):
    assert C.Config().experiment.steps == C.DEFAULT_STEPS
    flat = C.load_config(repo / "configs" / "quick.yaml")
    assert flat.experiment.steps is None  # quick.yaml sets loading.c_rate and x_end
    assert C.load_config(None, ["loading.x_end=0.5"]).experiment.steps is None
    both = C.load_config(None, ["loading.x_end=0.5", "experiment.steps=['Rest for 1 hour']"])
    assert both.experiment.steps == ["Rest for 1 hour"]
    # the resolved choice survives the round trip through plain data (sweeps, run folders)
    assert C.from_dict(C.to_dict(flat)) == flat
    for name in ("default", "full_cycle", "cycling_46"):
        assert C.load_config(repo / "configs" / f"{name}.yaml").experiment.steps is not None


def test_experiment_config_errors_name_the_key_and_the_fix():
    with pytest.raises(ConfigError, match=r"experiment.steps\[1\] = 'Hold at 4.3 V untill C/50'"
                                         r": cannot read 'untill c/50'"):
        C.load_config(None, ["experiment.steps=['Charge at 1C until 4.3 V', "
                             "'Hold at 4.3 V untill C/50']"])
    # a misspelt tail after a rate is named as such, not read as part of the rate
    with pytest.raises(ConfigError, match=r"cannot read 'untill 4.3 v'"):
        C.load_config(None, ["experiment.steps=['Charge at 2 nA untill 4.3 V']"])
    with pytest.raises(ConfigError, match="needs electrochemistry.kinetics: butler-volmer"):
        C.load_config(None, ["electrochemistry.kinetics=uniform"])
    with pytest.raises(ConfigError, match=r"output.at_step_ends\[0\]"):
        C.load_config(None, ["output.at_step_ends=[[2, 1]]"])
    with pytest.raises(ConfigError, match="electrochemistry.ocp_table"):
        C.load_config(None, ["electrochemistry.ocp=table"])


def test_ocp_and_kinetics_reproduce_chen2020(tmp_path):
    # Chen et al. (2020): about 4.2 V at the cell's top stoichiometry 0.2661 (our fit gives
    # 4.285 V there) and 3.49 V at 1; the tabulated OCP interpolates a sampled copy
    assert ocp_chen2020(0.2661) == pytest.approx(4.2849, abs=1e-4)
    assert ocp_chen2020(1.0) == pytest.approx(3.4873, abs=1e-4)
    s = np.linspace(0.0, 1.0, 401)
    table = tmp_path / "ocp.txt"
    np.savetxt(table, np.column_stack([s, ocp_chen2020(s)]))
    ec = C.load_config(None, ["electrochemistry.ocp=table",
                              f"electrochemistry.ocp_table={table}"]).electrochemistry
    tab = Kinetics(ec, 63887.0, 298.15, C.read_ocp_table(table))
    chen = Kinetics(C.Config().electrochemistry, 63887.0, 298.15)
    x = np.linspace(0.2, 0.95, 37)
    assert np.max(np.abs(tab.ocp(x) - chen.ocp(x))) < 2e-3
    # Butler-Volmer inverts exactly: the voltage that carries i carries i
    for i in (-3.0, 0.0, 0.5, 2.85):
        V = chen.voltage_at_uniform_current(x, i)
        assert np.allclose(chen.current_density(x, V, NUMPY_MATH), i, atol=1e-10)


def test_cycle_table_books_capacity_energy_and_holds():
    steps = parse_steps(["Charge at 1C until 4.3 V", "Hold at 4.3 V until C/50",
                         "Discharge at 1C until 3.0 V"])
    rows, t = [], 0.0
    for cycle in (1, 2):
        for step, current, n in ((1, 2e-9, 4), (2, 1e-9, 3), (3, -2.5e-9, 4)):
            for _ in range(n):
                t += 10.0
                rows.append({"cycle": cycle, "protocol_step": step, "dt [s]": 10.0,
                             "current [A]": current, "voltage [V]": 4.0 if current > 0 else 3.5,
                             "time [s]": t, "mean_x [-]": 0.5})
    table = cycle_table(rows, steps)
    assert [r["cycle"] for r in table] == [1, 2]
    charge = (4 * 2e-9 + 3 * 1e-9) * 10 / 3.6
    assert table[0]["charge_capacity [mAh]"] == pytest.approx(charge)
    assert table[0]["discharge_capacity [mAh]"] == pytest.approx(4 * 2.5e-9 * 10 / 3.6)
    assert table[0]["coulombic_efficiency [-]"] == pytest.approx(10 / 11)
    assert table[0]["charge_energy [mWh]"] == pytest.approx(4.0 * charge)
    assert table[1]["time_at_upper_cutoff [s]"] == pytest.approx(30.0)


def test_a_cycle_without_a_discharge_step_has_no_efficiency_one_that_delivers_nothing_has_zero():
    rows = [{"cycle": 1, "protocol_step": 1, "dt [s]": 10.0, "current [A]": 1e-9,
             "voltage [V]": 4.0, "time [s]": 10.0 * (i + 1), "mean_x [-]": 0.5} for i in range(3)]
    charge_only = cycle_table(rows, parse_steps(["Charge at 1C until 4.3 V"]))
    assert np.isnan(charge_only[0]["coulombic_efficiency [-]"])
    with_discharge = cycle_table(rows, parse_steps(["Charge at 1C until 4.3 V",
                                                    "Discharge at 1C until 3.0 V"]))
    assert with_discharge[0]["coulombic_efficiency [-]"] == 0.0

# --- the time loop's policies on a cheap fake problem -----------------------------------------

class FakeDecay:
    """x' = -x / tau by backward Euler, x(0) = 1, with a fake protocol ending at x = target."""

    def __init__(self, tau=100.0, target=0.3, tol=1e-4, snaps=()):
        self.tau, self.target, self.tol, self.snaps = tau, target, tol, set(snaps)
        self.x = self.x_old = 1.0
        self.t, self.n = 0.0, 0
        self.protocol = self
        self.phase, self.hold_start, self.cycle, self.index, self.completed = "cc", None, 1, 0, None
        self.last = {}

    # problem
    def step(self, dt, mechanics=True):
        self.x = self.x_old / (1 + dt / self.tau)
        self.last = {"dx_max": abs(self.x - self.x_old), "dt": dt,
                     "snap": self.n + 1 in self.snaps}
        return self.last

    def solve_mechanics(self):
        return 0

    def accept(self):
        self.x_old, self.t, self.n = self.x, self.t + self.last["dt"], self.n + 1

    def reject(self):
        self.x = self.x_old

    # protocol
    def end_time(self):
        return float("inf")

    def events(self):
        return [("x", self.x, self.target, self.tol)]

    def redo_for(self, crossed):
        return False

    def step_done(self, t, hits, at_end):
        return "x reached" if hits else None


def _loop(problem, **time_keys):
    from nmcfem.timeloop import run

    keys = {"dt_initial": 1.0, "dt_max": 50.0, "dx_target": 0.05, **time_keys}
    cfg = C.load_config(None, [f"time.{k}={v}" for k, v in keys.items()])
    seen = []
    summary = run(problem, cfg, [lambda ev, p, info: seen.append(info) if ev == "step" else 0])
    return summary, seen


def test_step_size_follows_the_x_change_target_and_events_are_located():
    problem = FakeDecay()
    summary, seen = _loop(problem)
    assert summary["stop_reason"] == "x reached"
    assert abs(problem.x - problem.target) <= problem.tol  # located to its tolerance
    changes = [info["dx_max"] for info in seen]
    assert max(changes) <= 2 * 0.05  # never more than the rejection bound
    assert summary["rejected_steps"] == 0


def test_step_size_control_grows_cuts_and_clamps():
    sizes = StepSizeControl(dx_target=0.02, growth=1.5, cutback=0.5, dt_min=1e-3, dt_max=60.0,
                            dt_initial=1.0, current_change_target=0.1)
    assert sizes.next(10.0, 10.0, 0.0, False) == 15.0  # no change: grow by the factor
    assert sizes.next(10.0, 10.0, 0.04, False) == pytest.approx(4.5)  # twice the target
    assert sizes.next(50.0, 50.0, 1e-6, False) == 60.0  # dt_max
    assert sizes.next(2.0, 40.0, 1e-6, True) == 3.0  # a shortened step grows from itself
    assert sizes.next(2.0, 40.0, 1e-6, False) == 60.0  # ... one cut to land does not shrink
    assert sizes.acceptable(0.04, 1.0) and not sizes.acceptable(0.05, 1.0)
    assert sizes.acceptable(0.5, 1e-3)  # dt_min: kept whatever the change
    assert sizes.cut(8.0) == 4.0
    # a constant-voltage step: the current's relative change counts against its own target
    assert sizes.measure(0.01, 0.0) == 0.01
    assert sizes.measure(0.01, 0.2) == pytest.approx(0.04)  # twice current_change_target


def test_event_locator_aims_by_secant_within_bounds():
    loc = EventLocator(max_refinements=2)
    crossed = loc.crossed({"v": 1.0}, [("v", 0.0, 0.5, 0.01)])
    assert crossed == {"v": pytest.approx(0.5)}
    assert loc.aim(10.0, crossed) == pytest.approx(5.0)
    assert loc.aim(10.0, {"v": 1e-6}) == pytest.approx(0.5)  # kept inside the step
    assert loc.may_refine() and loc.may_refine() and not loc.may_refine()
    assert loc.hits([("v", 0.505, 0.5, 0.01), ("w", 2.0, 1.0, 0.1)]) == ["v"]


def test_crack_growth_never_cuts_a_step():
    snaps = {3, 4, 9}
    problem = FakeDecay(snaps=snaps)
    summary, seen = _loop(problem)
    assert summary["snap_steps"] == len(snaps) and summary["rejected_steps"] == 0
    reference, _ = _loop(FakeDecay())
    assert summary["steps"] == reference["steps"]  # the same steps as without snaps
    policy = CrackGrowthPolicy()
    assert all(policy.accept(i, {"snap": True}) for i in range(3)) and policy.snaps == 3
