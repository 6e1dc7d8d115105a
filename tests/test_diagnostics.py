"""Reported quantities that are computed outside the forms: the volume quantile of stresses."""

import numpy as np

from nmcfem.diagnostics import volume_quantile


def test_volume_quantile_is_the_value_exceeded_in_that_fraction_of_the_volume():
    values = np.arange(100.0)
    assert volume_quantile(values, np.ones(100), 0.01) == 98.0
    assert volume_quantile(values, np.ones(100), 0.5) == 49.0
    # one big cell holds most of the volume: a singular small cell does not set the quantile
    volumes = np.ones(100)
    volumes[50] = 1e4
    assert volume_quantile(values[::-1], volumes[::-1], 0.01) == 50.0
    assert np.isnan(volume_quantile(np.array([]), np.array([]), 0.01))
