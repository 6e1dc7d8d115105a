"""The cohesive two-block bar gives the same cracked area and energy on any number of ranks."""

import pytest
from mpi4py import MPI

from nmcfem.cohesive.interfaces import statistics
from nmcfem.cohesive.law import CohesiveLaw
from tests.test_cohesive_bar import GC, TN, pull


def test_cohesive_bar_is_independent_of_the_number_of_ranks():
    law = CohesiveLaw(strength=TN, toughness=GC)
    end = 0.7 * law.final_opening  # stop mid-softening: partial damage everywhere
    _, t_par, i_par, _, _ = pull("bilinear", 41, end, MPI.COMM_WORLD)
    _, t_ser, i_ser, _, _ = pull("bilinear", 41, end, MPI.COMM_SELF)
    a, b = statistics(i_par), statistics(i_ser)
    for key in ("cracked_area_partial [m^2]", "dissipated_energy [J]", "max_opening [m]"):
        assert a[key] == pytest.approx(b[key], rel=1e-6), key
    assert a["dissipated_energy [J]"] > 0
    assert t_par[-1, 0] == pytest.approx(t_ser[-1, 0], rel=1e-6)
