"""What a run tells while it runs: messages and step progress with an ETA, on the terminal and
in ``run.log`` inside the run folder (rank 0 only).

On a terminal the step progress is one line that updates in place; elsewhere (a batch job's
output file, a pipe) it is a plain line every ``PLAIN_EVERY`` seconds, so logs stay readable.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import IO

from mpi4py import MPI

RUN_LOG = "run.log"
TTY_EVERY = 0.5  # s between updates of the terminal line
PLAIN_EVERY = 5.0  # s between plain progress lines (and run.log lines)


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h02m"``, ``125`` -> ``"2m05s"``, ``7`` -> ``"7s"``."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def step_line(step: int, fraction: float, t: float, dt: float, row: dict, eta: float) -> str:
    """One progress line: protocol done (%), step, time and step size (s), mean and surface
    Li fraction, cracked area (um^2, with cracks) and the estimated time left."""
    line = (f"{100 * fraction:5.1f}%  step {step:4d}  t = {t:8.1f} s  dt = {dt:7.2f} s  "
            f"mean x = {row['mean_x [-]']:.4f}  surface x = {row['surface_x_mean [-]']:.4f}")
    tn = row.get("max_gb_normal_traction [Pa]", float("nan"))
    if math.isfinite(tn):  # no grain boundaries (one grain): nothing to show
        line += f"  max GB traction = {tn / 1e6:6.1f} MPa"
    if "cracked_area_full [m^2]" in row:
        line += f"  cracked = {row['cracked_area_full [m^2]'] * 1e12:.2f} um^2"
    return line + f"  ETA {format_duration(eta)}"


class Progress:
    """Progress reporter of one run.

    Parameters
    ----------
    folder: the run folder (``run.log`` is appended there).
    comm: communicator of the run (rank 0 reports).
    quiet: nothing on the terminal (sweep cases); run.log is still written.
    stream: terminal stream (default standard output).
    """

    def __init__(self, folder: Path, comm: MPI.Comm, quiet: bool = False,
                 stream: IO[str] | None = None):
        self.root = comm.rank == 0
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.tty = self.root and not quiet and self.stream.isatty()
        self.log_path = Path(folder) / RUN_LOG
        self._start: tuple[float, float] | None = None  # (wall clock, fraction) at first step
        self._last_tty = self._last_plain = -math.inf
        self._open_line = False

    def say(self, message: str) -> None:
        """A message line on the terminal (unless quiet) and in run.log."""
        if not self.root:
            return
        if not self.quiet:
            self._end_line()
            print(message, file=self.stream, flush=True)
        self._write_log(message)

    def step(self, step: int, fraction: float, t: float, dt: float, row: dict) -> None:
        """Report an accepted step: ``fraction`` of the protocol done (0..1), time ``t`` and
        step ``dt`` (s), and its series ``row``."""
        if not self.root:
            return
        now = time.perf_counter()
        if self._start is None:
            self._start = (now, fraction)
        wall0, f0 = self._start
        rate = (fraction - f0) / (now - wall0) if now > wall0 else 0.0
        eta = (1.0 - fraction) / rate if rate > 0 else float("inf")
        line = step_line(step, fraction, t, dt, row, eta)
        if self.tty and now - self._last_tty >= TTY_EVERY:
            self._last_tty = now
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._open_line = True
        if now - self._last_plain >= PLAIN_EVERY:
            self._last_plain = now
            if not self.tty and not self.quiet:
                print("  " + line, file=self.stream, flush=True)
            self._write_log(line)

    def close(self) -> None:
        """End the updating terminal line (a later message starts on a line of its own)."""
        self._end_line()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def _write_log(self, message: str) -> None:
        # opened per message: the log stays complete whatever ends the process
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a") as fh:
            fh.writelines(f"{stamp}  {line}\n" for line in message.splitlines() or [""])
