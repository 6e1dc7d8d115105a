#!/usr/bin/env python3
"""Run every benchmark script in this folder (``make bench``) and collect their reports.

Each ``*_benchmark.py`` prints its own table; this runner times each one, keeps going when one
fails, and writes everything to ``benchmarks/results/<name>.txt`` so figures can be cited.
Speed and memory targets are checked here, never in the test suite.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run the benchmarks named in ``argv`` (default: all ``*_benchmark.py``)."""
    scripts = sorted(HERE.glob("*_benchmark.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.name for a in argv)]
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              cwd=HERE.parent)
        text = proc.stdout + (f"\n[stderr]\n{proc.stderr}" if proc.returncode else "")
        (out_dir / f"{script.stem}.txt").write_text(text)
        print(text, flush=True)
        print(f"--- {script.name}: exit {proc.returncode} in {time.perf_counter() - t0:.1f} s",
              flush=True)
        if proc.returncode:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
