"""Synth cost: a cold `synthesize()` (wall time, peak memory of the whole process tree, node included) vs a cached one.

Each synth runs in a fresh subprocess, as `vopr synth` would; memory is sampled from /proc every 20 ms.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_INTERVAL_S = 0.02
SYNTH = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from stacks.synth import synthesize
from vopr.config import load
result = synthesize(load(sys.argv[1], environ={}), Path(sys.argv[2]))
print(json.dumps({"cached": result.cached, "in_process_s": time.perf_counter() - t0}))
"""


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids += [int(k) for k in fh.read().split()]
    except OSError:
        pass
    return kids


def _tree_rss_kib(pid: int) -> int:
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
        stack += _children(current)
    return total


def run_synth(config: Path, outdir: Path, workdir: Path) -> dict:
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", SYNTH, str(config), str(outdir)], cwd=workdir, env=env, stdout=subprocess.PIPE, text=True
    )
    peak_kib = 0
    while proc.poll() is None:
        peak_kib = max(peak_kib, _tree_rss_kib(proc.pid))
        time.sleep(SAMPLE_INTERVAL_S)
    out = proc.stdout.read()
    wall_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"synth failed with exit {proc.returncode}")
    report = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall_s, "peak_tree_mib": peak_kib / 1024, **report}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vopr-bench-") as tmp:
        work = Path(tmp)
        config = work / "vopr.toml"
        config.write_text('[deployment]\nalert_email = "bench@example.com"\n')
        cold = run_synth(config, work / "cdktf.out", work)
        cached = run_synth(config, work / "cdktf.out", work)
    largest_child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert not cold["cached"] and cached["cached"], (cold, cached)
    rows = [
        ("cold synth (new process)", cold["wall_s"], cold["in_process_s"], cold["peak_tree_mib"]),
        ("cached synth (new process)", cached["wall_s"], cached["in_process_s"], cached["peak_tree_mib"]),
    ]
    print(f"{'':28} {'wall s':>8} {'in-process s':>13} {'peak RSS MiB (tree)':>20}")
    for name, wall, inproc, peak in rows:
        print(f"{name:28} {wall:8.2f} {inproc:13.3f} {peak:20.0f}")
    print(f"ratio cached/cold: wall {cached['wall_s'] / cold['wall_s']:.3f}, in-process {cached['in_process_s'] / cold['in_process_s']:.4f}")
    print(f"largest single child process peak RSS (getrusage): {largest_child_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
