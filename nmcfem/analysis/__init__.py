"""Comparison of the simulated particle surface with X-ray microscopy (never imports dolfinx).

Readers for measured data, ratio and valence maps, registration, forward rendering of the
simulated surface, metrics, cone analysis and figures; ``pipeline.analyze_run`` ties them
together for a run folder.
"""
