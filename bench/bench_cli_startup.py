"""CLI start-up: cold wall time of `vopr --help` and `vopr status --help` next to `python -c pass`, as ratios.

Each command runs in a fresh process (the installed console script), interleaved round by round so drift in machine
load hits all three alike; the median of ROUNDS runs is reported. Bytecode caches are warm, as after any first use.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 15
WARMUP_ROUNDS = 2
VOPR = str(Path(sys.executable).with_name("vopr"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "vopr --help": [VOPR, "--help"],
    "vopr status --help": [VOPR, "status", "--help"],
}


def time_once(argv: list[str], cwd: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    env = dict(os.environ, COLUMNS="100")
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="vopr-bench-") as cwd:
        for round_no in range(WARMUP_ROUNDS + ROUNDS):
            for name, argv in COMMANDS.items():
                elapsed = time_once(argv, cwd, env)
                if round_no >= WARMUP_ROUNDS:
                    samples[name].append(elapsed)
    base = statistics.median(samples["python -c pass"])
    print(f"CLI start-up, median of {ROUNDS} interleaved cold runs (warm bytecode cache)")
    print(f"{'command':<22}{'median ms':>11}{'min ms':>9}{'max ms':>9}{'x python -c pass':>19}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<22}{median * 1000:>11.1f}{min(values) * 1000:>9.1f}{max(values) * 1000:>9.1f}{median / base:>19.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
