"""The one error type of the analysis package."""

from nmcfem import NmcfemError


class AnalysisError(NmcfemError, ValueError):
    """Measured or simulated input cannot be analysed; the message names file, value and fix."""
