"""Every error nmcfem reports to the user, and the process exit status each one means.

An nmcfem error is one clear line (key, value, what was expected, the fix), never a traceback.
The command line exits with :data:`EXIT_DONE` after a finished run, :data:`EXIT_FAILED` when a
run or sweep case failed (solver, time loop), :data:`EXIT_BAD_INPUT` when the input was wrong
(config, files, meshing parameters) and :data:`EXIT_INTERRUPTED` after Ctrl-C or SIGTERM, so a
script can tell a bad input from a run that did not converge.
"""

from __future__ import annotations

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: 128 + SIGINT, the shell's convention for a process stopped by Ctrl-C
EXIT_INTERRUPTED = 130


class NmcfemError(Exception):
    """Base class of every error nmcfem reports to the user as one clear line.

    ``collective`` says whether every rank raises the error together (configuration checks,
    broadcast rank-0 failures, solver divergence seen by all ranks); only such errors may end a
    run without aborting the other ranks. ``exit_status`` is the command line's exit status.
    """

    collective = True
    exit_status = EXIT_BAD_INPUT


class ConfigError(NmcfemError, ValueError):
    """A configuration value, key or file is invalid; the message says which and how to fix it."""


class SweepError(ConfigError):
    """A sweep file is invalid."""


class GeometryError(NmcfemError):
    """gmsh could not build or mesh the particle; the message names the key to change."""


class CheckpointError(NmcfemError):
    """A checkpoint is missing or does not match the run being restarted."""


class AnalysisError(NmcfemError, ValueError):
    """Measured or simulated input cannot be analysed; the message names file, value and fix."""


class SolverError(NmcfemError):
    """A linear or nonlinear solve did not converge; the message names the solve and reason."""

    exit_status = EXIT_FAILED


class TimeLoopError(NmcfemError):
    """The time loop could not advance (retry budget spent, step size below dt_min)."""

    exit_status = EXIT_FAILED
