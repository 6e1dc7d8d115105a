#!/usr/bin/env python3
"""Command-line entry of nmcfem: `python run_sim.py CONFIG.yaml [--set a.b=v]...` (see --help)."""

import sys

from nmcfem.cli import main

if __name__ == "__main__":
    sys.exit(main())
