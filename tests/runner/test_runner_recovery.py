"""Output a killed runner never read: simulators write to files, so the next runner kills the ones left running,
reads what they wrote (failures included) and resumes each range after it, redoing at most the seed in flight."""

from __future__ import annotations

import json
import os
import signal
import time

from runner.procs import holders

from runner_helpers import checkpoint, records, run_runner, start_runner

BATCH = 30


def _kill_runner_mid_batch(fake_sim, store, tmp_path, at_least: int) -> int:
    """Start a runner on one batch and kill -9 it once the simulator has run `at_least` seeds."""
    runner = start_runner(fake_sim, store, "--batch-size", str(BATCH), "--end-seed", str(BATCH), log_path=tmp_path / "first.log")
    deadline = time.monotonic() + 60
    while len(fake_sim.seeds_run()) < at_least:
        assert time.monotonic() < deadline and runner.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        time.sleep(0.01)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    return len(fake_sim.seeds_run())


def test_runner_reads_what_a_simulator_wrote_after_the_runner_was_killed(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(delay_s=0.04, fail={"22": {}})
    done = _kill_runner_mid_batch(fake_sim, store, tmp_path, at_least=8)
    assert done < 20
    time.sleep(2.0)  # the orphaned simulator finishes the batch, seed 22's failure included, with no runner reading
    assert not holders(store / ".runner" / "out"), "the simulator should have finished by now"
    second = run_runner(fake_sim, store, "--batch-size", str(BATCH), "--end-seed", str(BATCH))
    assert second.returncode == 0, second.stderr
    assert fake_sim.seeds_run() == list(range(BATCH)), "each seed runs exactly once"
    (recovered,) = second.events("output_recovered")
    assert recovered["first_seed"] <= done and recovered["last_seed"] == BATCH - 1 and recovered["failures"] == 1
    assert not second.events("orphans_killed")
    assert sorted(records(store)) == [22] and records(store)[22]["determinism"]["status"] == "reproduced"
    cp = checkpoint(store)
    assert cp["next_seed"] == cp["totals"]["iterations"] == BATCH and cp["totals"]["failures"] == 1
    assert list((store / ".runner" / "out").iterdir()) == []


def test_runner_kills_a_simulator_a_killed_runner_left_running_and_keeps_its_output(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(delay_s=0.05, fail={"14": {}})
    _kill_runner_mid_batch(fake_sim, store, tmp_path, at_least=5)
    time.sleep(0.8)
    orphans = holders(store / ".runner" / "out")
    assert orphans, "the simulator outlives the runner that started it"
    second = run_runner(fake_sim, store, "--batch-size", str(BATCH), "--end-seed", str(BATCH))
    assert second.returncode == 0, second.stderr
    (killed,) = second.events("orphans_killed")
    assert set(killed["pids"]) == set(orphans)
    assert all(not os.path.exists(f"/proc/{pid}") or "zombie" in _state(pid) for pid in orphans)
    ran = fake_sim.seeds_run()
    assert sorted(set(ran)) == list(range(BATCH)) and len(ran) - len(set(ran)) <= 1, "at most the seed in flight is redone"
    assert sorted(records(store)) == [14]
    cp = checkpoint(store)
    assert cp["next_seed"] == cp["totals"]["iterations"] == BATCH and cp["totals"]["failures"] == 1


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return fh.read()
    except OSError:
        return "zombie"


def test_runner_keeps_a_flooding_stderr_file_bounded_and_still_records_the_panic(fake_sim, tmp_path):
    from runner import service

    store = tmp_path / "store"
    flood_mib = STDERR_FLOOD_MIB
    fake_sim.set(panic_at=[3], stderr_flood_mib=flood_mib)
    result = run_runner(fake_sim, store, "--batch-size", "10", "--end-seed", "10", "--replay-backlog", "0")
    assert result.returncode == 0, result.stderr
    assert flood_mib << 20 > 2 * service.STDERR_BYTES_MAX
    assert result.events("stderr_trimmed"), "a stderr file past the limit is emptied"
    rec = records(store)[3]
    assert rec["kind"] == "crash" and "panicked at crates/kmb-sim/src/storage.rs" in rec["stderr_tail"]
    assert json.loads((store / "checkpoints" / "latest.json").read_text())["totals"]["iterations"] == 10


STDERR_FLOOD_MIB = 40
