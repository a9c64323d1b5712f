"""kill -9 the runner at random points mid-batch, many times, then let it finish: every failing seed is in the
store exactly once and counted once, no seed is skipped, and at most one seed per worker is redone per kill:
the seed in flight. Seeds are fast (a few ms), so a kill always leaves output that no runner has read yet."""

from __future__ import annotations

import collections
import os
import random
import signal
import time

from runner_helpers import checkpoint, index, parse_logs, records, run_runner, start_runner

KILLS = 22
WORKERS = 2
END_SEED = 10_000
FAIL_EVERY = 7


def test_runner_survives_kill_9_without_losing_or_double_counting(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(delay_s=0.004, fail_every=FAIL_EVERY)
    args = ("--workers", str(WORKERS), "--batch-size", "400", "--end-seed", str(END_SEED), "--replay-backlog", "2000")
    rng = random.Random(20261203)
    log = tmp_path / "runner.log"
    kills = 0
    for _ in range(KILLS):
        proc = start_runner(fake_sim, store, *args, log_path=log)
        time.sleep(rng.uniform(0.6, 2.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == KILLS
    final = run_runner(fake_sim, store, *args, timeout=300)
    assert final.returncode == 0, final.stderr
    events = [e.get("event") for e in parse_logs(log.read_text() + final.stdout)]
    assert events.count("output_recovered") >= KILLS // 2, "output written after a kill was not read back"
    assert events.count("orphans_killed") >= KILLS // 2
    assert not any((store / ".runner" / "out").iterdir()), "output files must go once a checkpoint holds them"

    ran = collections.Counter(fake_sim.seeds_run())
    assert set(range(END_SEED)) <= set(ran), f"skipped seeds: {sorted(set(range(END_SEED)) - set(ran))[:20]}"
    redone = sum(count - 1 for count in ran.values())
    assert redone <= WORKERS * kills, f"{redone} seeds redone over {kills} kills"

    failing = {s for s in ran if s % FAIL_EVERY == FAIL_EVERY - 1}
    recs = records(store)
    assert set(recs) == failing
    cp = checkpoint(store)
    assert cp["next_seed"] >= END_SEED and cp["ranges_in_flight"] == []
    assert cp["totals"]["failures"] == len(failing), "a failure was counted twice or not at all"
    assert cp["totals"]["iterations"] == len(ran), "iterations must count each completed seed once"
    assert cp["totals"]["iterations"] == cp["next_seed"] == END_SEED, "a finished run counts exactly its seeds"
    assert sum(entry["count"] for entry in index(store).values()) == len(failing)
    assert all(r["determinism"]["status"] == "reproduced" for r in recs.values())
