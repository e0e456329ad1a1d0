"""Cold-start cost of plugin discovery and the CLI, against importing the domain stacks eagerly.

ENVIRONMENT.md measured torch 3.2 s, monai 12.8 s, torch_geometric ~9 s and scanpy 4.9 s to import. A plugin
system that imported them at discovery would make every `scibind plugins` cost that much; scibind's lazy
"module:attr" factories keep discovery light. This script times both in fresh processes and prints ratios.

Run: .venv/bin/python benchmarks/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPEATS = 3


def wall(cmd: list[str]) -> float:
    """Median wall-clock seconds of ``cmd`` over REPEATS fresh processes."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the timings and ratios."""
    discovery = wall([str(BIN / "scibind"), "plugins", "--json"])
    help_ = wall([str(BIN / "scibind"), "--help"])
    eager = wall([sys.executable, "-c", "import torch, monai, scanpy, rdkit, openslide, torch_geometric"])
    print(f"scibind plugins --json (all plugins discovered): {discovery:.2f} s")
    print(f"scibind --help:                                  {help_:.2f} s")
    print(f"eager import of the domain stacks (anchor):      {eager:.2f} s")
    print(f"ratio eager / scibind plugins: {eager / discovery:.1f}x")


if __name__ == "__main__":
    main()
