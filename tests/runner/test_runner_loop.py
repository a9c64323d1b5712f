"""The runner loop against a fake simulator, as real processes with a local store: failures, crashes, hangs,
garbage, SIGKILL, gaps, nondeterminism, start failures, both protocols, restarts and checkpoints."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from runner_helpers import REPO_ROOT, checkpoint, index, records, run_runner, start_runner

LOG_KEYS = {"ts", "level", "event", "deployment"}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_runner_failures_recorded_deduplicated_and_replayed(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={"3": {}, "5": {}, "17": {"invariant": "linearizability", "message": "Final history is not linearizable"}})
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "2", "--simulator-commit", "4c241cb0",
                        "--repo-url", "https://example.com/sim.git", "--build-command", "make vopr")
    assert result.returncode == 0, result.stderr
    for line in result.logs:
        assert LOG_KEYS <= set(line) and TS_RE.match(line["ts"]) and line["deployment"] == "vopr"
    recs = records(store)
    assert sorted(recs) == [3, 5, 17]
    r3 = recs[3]
    assert r3["kind"] == "invariant" and r3["original_kind"] == "invariant"
    assert r3["invariant"] == "replica_consistency" and r3["message"] == "Replica divergence at time 3017"
    assert r3["signature"] == "replica_consistency: Replica divergence at time <N>"
    assert r3["signature_id"] == recs[5]["signature_id"] != recs[17]["signature_id"]
    assert r3["determinism"]["status"] == "reproduced" and r3["determinism"]["replay_signature_id"] == r3["signature_id"]
    assert r3["events"] == 57 and r3["batch"] == {"first_seed": 0, "last_seed": 9}
    assert r3["simulator_timestamp"].endswith("+00:00")
    assert r3["reproduce"]["commands"] == [
        "git clone https://example.com/sim.git vopr-repro", "cd vopr-repro", "git checkout 4c241cb0", "make vopr",
        f"{fake_sim.command} --json --seed 3 -n 1 -v"]
    assert r3["reproduce"]["script"].startswith("set -e\ngit clone")
    idx = index(store)
    assert idx[r3["signature_id"]]["count"] == 2 and idx[r3["signature_id"]]["example_seeds"] == [3, 5]
    assert idx[r3["signature_id"]]["reproducible"] is True
    cp = checkpoint(store)
    assert cp["next_seed"] == 20 and cp["last_completed_seed"] == 19 and cp["ranges_in_flight"] == []
    assert cp["totals"]["iterations"] == 20 and cp["totals"]["failures"] == 3 and cp["totals"]["signatures"] == 2
    assert cp["simulator"]["commit"] == "4c241cb0" and cp["schema"] == 1
    assert sorted(fake_sim.seeds_run()) == list(range(20))
    assert sorted(fake_sim.seeds_run("replay")) == [3, 5, 17]
    failure_lines = result.events("failure")
    assert [f["seed"] for f in failure_lines] == [3, 5, 17] and failure_lines[0]["new_signature"] is True
    assert failure_lines[1]["new_signature"] is False
    alert_lines = result.events("alert")
    assert alert_lines and alert_lines[0]["reason"] == "new_signature"
    assert "git checkout 4c241cb0" in alert_lines[0]["body"]


def test_runner_panic_records_crash_with_stderr_tail_and_continues(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(panic_at=[12])
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "3")
    assert result.returncode == 0, result.stderr
    rec = records(store)[12]
    assert rec["kind"] == "crash" and rec["exit_status"] == 101 and rec["signal"] is None
    assert "panicked at crates/kmb-sim/src/storage.rs:212:9" in rec["stderr_tail"]
    assert rec["signature"] == ("exit 101: index out of bounds: the len is <N> but the index is <N> "
                                "(at crates/kmb-sim/src/storage.rs:<N>:<N>)")
    assert rec["determinism"]["status"] == "reproduced"
    assert [f["kind"] for f in result.events("failure")] == ["crash"]
    assert checkpoint(store)["next_seed"] == 20
    assert sorted(fake_sim.seeds_run()) == [s for s in range(20) if s != 12]


def test_runner_hang_killed_with_its_process_group_and_recorded_as_timeout(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(hang_at=[4])
    result = run_runner(fake_sim, store, "--batch-size", "8", "--max-batches", "2", "--seed-timeout-s", "1")
    assert result.returncode == 0, result.stderr
    rec = records(store)[4]
    assert rec["kind"] == "timeout" and rec["signature"] == "timeout: no result within the seed timeout"
    assert rec["determinism"]["status"] == "reproduced"
    assert result.events("seed_timeout")
    children = [int(p.name.rsplit("-", 1)[1]) for p in (fake_sim.root / "markers").glob("hang-child-*")]
    assert len(children) == 2  # the batch and the replay each started one
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    assert checkpoint(store)["next_seed"] == 8
    assert sorted(fake_sim.seeds_run()) == [0, 1, 2, 3, 5, 6, 7]


def test_runner_garbage_lines_counted_and_logged_never_fatal(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(garbage_after=[2, 6])
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    assert result.returncode == 0
    cp = checkpoint(store)
    assert cp["totals"]["unparsed_lines"] == 4 and cp["next_seed"] == 10 and cp["totals"]["iterations"] == 10
    assert records(store) == {}
    samples = [sample for line in result.events("unparsed_line") for sample in line["samples"]]
    assert any("not json" in s for s in samples) and any("mystery" in s for s in samples)


def test_runner_sigkill_once_is_an_infra_fault_retried_not_a_failure(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(sigkill_at={"5": "once"})
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "3")
    assert result.returncode == 0
    assert records(store) == {}
    assert [e["seed"] for e in result.events("infra_fault")] == [5]
    cp = checkpoint(store)
    assert cp["totals"]["infra_faults"] == 1 and cp["next_seed"] == 20 and cp["totals"]["iterations"] == 20
    assert sorted(fake_sim.seeds_run()) == list(range(20))


def test_runner_sigkill_twice_at_one_seed_is_recorded_never_skipped(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(sigkill_at={"5": "always"})
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "4")  # killed, killed, 6-9, 10-19
    assert result.returncode == 0
    rec = records(store)[5]
    assert rec["kind"] == "crash" and rec["signal"] == "SIGKILL" and "twice" in rec["message"]
    assert rec["determinism"]["status"] == "reproduced"
    assert checkpoint(store)["next_seed"] == 20
    assert sorted(fake_sim.seeds_run()) == [s for s in range(20) if s != 5]


def test_runner_gap_in_seed_sequence_is_recorded(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(gap_at=[4])
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    rec = records(store)[4]
    assert rec["kind"] == "nondeterministic" and rec["signature"] == "gap: the simulator skipped this seed"
    assert rec["determinism"]["status"] == "skipped"
    assert [(g["first_seed"], g["last_seed"]) for g in result.events("gap")] == [(4, 4)]
    cp = checkpoint(store)  # the skipped seed is settled (recorded), so it counts like any other
    assert cp["totals"]["gaps"] == 1 and cp["totals"]["iterations"] == 10 and cp["next_seed"] == 10


def test_runner_nondeterministic_failure_classified_and_alerted(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={"6": {}}, nondeterministic=[6])
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    rec = records(store)[6]
    assert rec["kind"] == "nondeterministic" and rec["original_kind"] == "invariant"
    assert rec["determinism"]["status"] == "not_reproduced" and rec["determinism"]["replay_kind"] == "passed"
    assert index(store)[rec["signature_id"]]["reproducible"] is False
    assert checkpoint(store)["totals"]["nondeterministic"] == 1
    assert [a["reason"] for a in result.events("alert")] == ["new_signature", "nondeterministic"]


def test_runner_simulator_that_cannot_start_is_an_error_with_backoff_not_failures(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail_to_start=True)
    result = run_runner(fake_sim, store, "--max-seconds", "4")
    assert result.returncode == 1, "a run in which the simulator never started is not a success"
    assert result.events("shutdown")[0]["exit_status"] == 1
    errors = [e for e in result.logs if e["level"] == "error" and e.get("where") == "simulator_start"]
    assert 2 <= len(errors) <= 4, errors  # 1 s, 2 s, 4 s backoff within 4 s
    assert [e["retry_in_s"] for e in errors[:2]] == [1.0, 2.0]
    assert "unexpected argument" in errors[0]["stderr_tail"]
    alerts = result.events("alert")
    assert [a["reason"] for a in alerts] == ["error"] and "does not start" in alerts[0]["subject"]
    assert records(store) == {} and checkpoint(store)["next_seed"] == 0


def test_runner_exit_code_protocol_failure_crash_kill_and_timeout(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={"3": {}}, sigkill_at={"6": "once"}, hang_at=[8])
    result = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1", "--seed-timeout-s", "1",
                        protocol="exit-code")
    assert result.returncode == 0, result.stderr
    recs = records(store)
    assert sorted(recs) == [3, 8]
    assert recs[3]["kind"] == "invariant" and recs[3]["exit_status"] == 129
    assert recs[3]["signature"] == "exit 129: panic: replica_consistency: Replica divergence at time <N>"
    assert recs[3]["reproduce"]["commands"][-1] == fake_sim.exit_code_command.replace("{seed}", "3")
    assert recs[3]["determinism"]["status"] == "reproduced"
    assert recs[8]["kind"] == "timeout"
    assert [e["seed"] for e in result.events("infra_fault")] == [6]
    cp = checkpoint(store)
    assert cp["next_seed"] == 10 and cp["totals"]["iterations"] == 10 and cp["simulator"]["protocol"] == "exit-code"
    assert sorted(fake_sim.seeds_run()) == [s for s in range(10) if s != 8]


def test_runner_replay_backlog_is_bounded_and_says_skipped(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={str(s): {} for s in range(1, 6)})
    run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1", "--replay-backlog", "2")
    statuses = {seed: rec["determinism"] for seed, rec in records(store).items()}
    assert [statuses[s]["status"] for s in (1, 2)] == ["reproduced", "reproduced"]
    assert all(statuses[s]["status"] == "skipped" and "backlog" in statuses[s]["reason"] for s in (3, 4, 5))
    assert sorted(fake_sim.seeds_run("replay")) == [1, 2]


def test_runner_restart_resumes_at_the_next_seed_without_rerunning(fake_sim, tmp_path):
    store = tmp_path / "store"
    for _ in range(3):
        assert run_runner(fake_sim, store, "--batch-size", "7", "--max-batches", "1").returncode == 0
    assert sorted(fake_sim.seeds_run()) == list(range(21))
    assert checkpoint(store)["totals"]["iterations"] == 21


def test_runner_start_seed_applies_only_without_a_checkpoint(fake_sim, tmp_path):
    store = tmp_path / "store"
    assert run_runner(fake_sim, store, "--batch-size", "5", "--max-batches", "1", "--start-seed", "100").returncode == 0
    assert checkpoint(store)["next_seed"] == 105
    again = run_runner(fake_sim, store, "--batch-size", "5", "--max-batches", "1", "--start-seed", "3")
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "--start-seed" in again.stderr and "105" in again.stderr
    assert sorted(fake_sim.seeds_run()) == list(range(100, 105))


def test_runner_corrupt_local_checkpoint_recovered_from_store_then_daily_then_refused(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={"2": {}})
    run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    local = store / ".runner" / "checkpoint.json"
    local.write_text('{"schema": 1, "next_seed": "garbage"')
    second = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    assert second.returncode == 0
    restored = second.events("checkpoint_restored")[0]
    assert restored["source"] == str((store / "checkpoints" / "latest.json").resolve()) and restored["next_seed"] == 10
    assert any("unusable" in e.get("error", "") for e in second.logs if e["level"] == "error")
    assert list((store / ".runner").glob("checkpoint.json.corrupt-*"))
    assert checkpoint(store)["next_seed"] == 20 and checkpoint(store)["totals"]["failures"] == 1
    # local gone and latest corrupt: the daily copy is used
    local.unlink()
    (store / "checkpoints" / "latest.json").write_text("{}")
    third = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    assert "checkpoints/daily/" in third.events("checkpoint_restored")[0]["source"]
    assert third.events("checkpoint_restored")[0]["next_seed"] == 20
    # nothing valid anywhere but failure records exist: refuse, one line, no simulator run
    local.write_text("not json")
    for path in (store / "checkpoints").rglob("*.json"):
        path.write_text("[]")
    seeds_before = fake_sim.seeds_run()
    refused = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "refusing to restart from seed 0" in refused.stderr and "--start-seed" in refused.stderr
    assert fake_sim.seeds_run() == seeds_before
    assert sorted(fake_sim.seeds_run()) == list(range(30))


def test_runner_config_errors_exit_2_with_one_line_before_any_simulator_runs(fake_sim, tmp_path):
    store = str(tmp_path / "store")
    cases = [
        ([sys.executable, "-m", "runner", "--store", store], {}, "no simulator command"),
        ([sys.executable, "-m", "runner", "--simulator-command", fake_sim.command, "--protocol", "tap"], {}, "--protocol"),
        ([sys.executable, "-m", "runner", "--simulator-command", "./no-such-vopr", "--store", store], {}, "not found"),
        ([sys.executable, "-m", "runner", "--simulator-command", fake_sim.command, "--protocol", "exit-code"], {}, "{seed}"),
        ([sys.executable, "-m", "runner", "--simulator-command", fake_sim.command], {"VOPR_RUNNER_BATCH_SIZE": "lots"},
         "$VOPR_RUNNER_BATCH_SIZE"),
        ([sys.executable, "-m", "runner", "--simulator-command", fake_sim.command, "--store", "s3://b/p"],
         {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}, "region"),
        ([sys.executable, "-m", "runner", "--simulator-command", fake_sim.command, "--alert-topic", "my-topic",
          "--region", "us-east-1"], {}, "ARN"),
        ([sys.executable, "-m", "runner", "--simulator-command", fake_sim.command, "--bogus"], {}, "unrecognized"),
    ]
    for argv, extra, needle in cases:
        env = fake_sim.env()
        env.update(extra)
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (needle, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert fake_sim.seeds_run() == []


def test_runner_settings_from_environment_like_systemd(fake_sim, tmp_path):
    store = tmp_path / "store"
    env = fake_sim.env()
    env.update({"VOPR_SIMULATOR_COMMAND": fake_sim.command, "VOPR_RUNNER_STORE": str(store),
                "VOPR_RUNNER_BATCH_SIZE": "6", "VOPR_RUNNER_WORKERS": "2", "VOPR_DEPLOYMENT_NAME": "nightly",
                "VOPR_RUNNER_PROCESS_TARGET_S": "0", "VOPR_SIMULATOR_COMMIT": "abc123"})
    proc = subprocess.run([sys.executable, "-m", "runner", "--max-batches", "2"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cp = checkpoint(store)
    assert cp["deployment"] == "nightly" and cp["next_seed"] == 12 and cp["simulator"]["commit"] == "abc123"
    assert cp["workers"] == 2
    assert sorted(fake_sim.seeds_run()) == list(range(12))


def test_runner_programmatic_api_progress_stop_event_and_log_file(fake_sim, tmp_path, capsys, monkeypatch):
    from runner import service, settings

    monkeypatch.setenv("FAKE_VOPR_SPEC", str(fake_sim.root / "spec.json"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    fake_sim.set(fail={"4": {}}, delay_s=0.002)
    log_file = tmp_path / "runner.log"
    s = settings.parse(["--batch-size", "50", "--process-target-s", "0"],
                       {"VOPR_SIMULATOR_COMMAND": fake_sim.command, "VOPR_RUNNER_STORE": str(tmp_path / "store"),
                        "VOPR_RUNNER_WORKERS": "1", "VOPR_RUNNER_LOG_FILE": str(log_file)})
    assert isinstance(s, settings.Settings) and s.log_file == str(log_file)
    stop = threading.Event()
    snapshots: list[dict] = []

    def on_progress(snap):
        snapshots.append(snap)
        if snap["iterations_total"] >= 60:
            stop.set()

    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run(s, on_progress=on_progress, stop_event=stop)))
    thread.start()
    thread.join(60)
    assert result == [0]
    keys = {"next_seed", "iterations_total", "iterations_this_run", "seeds_per_second", "failures_total",
            "signatures_total", "batches_this_run", "workers", "last_failure"}
    assert keys <= set(snapshots[-1])
    assert snapshots[-1]["last_failure"] == {"seed": 4, "kind": "invariant",
                                             "signature": "replica_consistency: Replica divergence at time <N>"}
    assert snapshots[-1]["failures_total"] == 1 and snapshots[-1]["workers"] == 1
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines[-1]["event"] == "shutdown" and lines[-1]["reason"] == "stop_event"
    assert capsys.readouterr().out == ""
    with pytest.raises(settings.SettingsError):
        settings.parse(["--workers", "-1"], {"VOPR_SIMULATOR_COMMAND": fake_sim.command})


def test_runner_over_the_demo_simulator_finds_records_dedups_and_replays(tmp_path):
    store = tmp_path / "store"
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "runner", "--simulator-command", f"{sys.executable} -m runner.demo_vopr",
                           "--store", str(store), "--workers", "2", "--end-seed", "20000"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    recs = records(store)
    assert {13272, 19753} <= set(recs)  # the demo's first linearizability and replica_consistency bugs
    assert all(r["determinism"]["status"] == "reproduced" for r in recs.values())
    idx = index(store)
    assert {e["signature"] for e in idx.values()} >= {"linearizability: Final history is not linearizable",
                                                     "replica_consistency: Replica divergence at time <N>"}
    assert all(e["reproducible"] is True for e in idx.values())
    cp = checkpoint(store)
    assert cp["next_seed"] == 20000 and cp["totals"]["iterations"] == 20000 and cp["totals"]["failures"] == len(recs)
    metrics = [json.loads(line) for line in proc.stdout.splitlines() if '"event":"metrics"' in line]
    assert metrics[-1]["IterationsCompleted"] == 20000 and metrics[-1]["FailuresDetected"] == len(recs)
    assert metrics[-1]["NewFailureSignatures"] == len(idx)


def test_runner_unusable_state_dir_or_log_file_is_one_line_exit_2(fake_sim, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for flag, value in (("--state-dir", str(blocker / "state")), ("--log-file", str(blocker / "x" / "runner.log"))):
        result = run_runner(fake_sim, tmp_path / "store", flag, value, "--max-batches", "1")
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert flag in result.stderr and "Traceback" not in result.stderr
    assert fake_sim.seeds_run() == []


def test_runner_refuses_a_second_runner_on_the_same_state_dir(fake_sim, tmp_path):
    fake_sim.set(delay_s=0.05)
    first = start_runner(fake_sim, tmp_path / "store", log_path=tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 30
        while '"event":"runner_started"' not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run_runner(fake_sim, tmp_path / "store", "--max-batches", "1")
        assert second.returncode == 2 and "another runner is using" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0


def _assert_batches_add_up(result, seeds: int) -> None:
    batches = result.events("batch")
    assert sum(b["seeds"] for b in batches) == seeds
    for b in batches:  # each batch line's range is exactly the seeds it settled
        assert b["last_seed"] - b["first_seed"] + 1 == b["seeds"], b


def test_runner_counts_every_settled_seed_once_so_iterations_equal_next_seed(fake_sim, tmp_path):
    store = tmp_path / "store"
    # a failure, a gap inside a batch and one at its end, garbage, a crash, a timeout, SIGKILL twice and once
    fake_sim.set(fail={"3": {}}, gap_at=[4, 29], garbage_after=[7], panic_at=[12], hang_at=[25],
                 sigkill_at={"45": "always", "52": "once"})
    result = run_runner(fake_sim, store, "--batch-size", "10", "--end-seed", "60", "--seed-timeout-s", "1")
    assert result.returncode == 0, result.stderr
    cp = checkpoint(store)
    assert cp["next_seed"] == 60 and cp["totals"]["iterations"] == 60 and cp["totals"]["infra_faults"] == 2
    recs = records(store)
    assert {s: r["kind"] for s, r in recs.items()} == {3: "invariant", 4: "nondeterministic", 12: "crash",
                                                       25: "timeout", 29: "nondeterministic", 45: "crash"}
    assert cp["totals"]["failures"] == 6 and cp["totals"]["gaps"] == 2
    _assert_batches_add_up(result, 60)


def test_runner_exit_code_protocol_counts_every_settled_seed_once(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(fail={"3": {}}, panic_at=[5], hang_at=[8], sigkill_at={"6": "once", "11": "always"})
    result = run_runner(fake_sim, store, "--batch-size", "10", "--end-seed", "15", "--seed-timeout-s", "1",
                        protocol="exit-code")
    assert result.returncode == 0, result.stderr
    cp = checkpoint(store)
    assert cp["next_seed"] == 15 and cp["totals"]["iterations"] == 15
    assert sorted(records(store)) == [3, 5, 8, 11]
    _assert_batches_add_up(result, 15)


def test_runner_does_not_count_seeds_a_simulator_runs_past_its_range(fake_sim, tmp_path):
    store = tmp_path / "store"
    fake_sim.set(extra_seeds=5, fail={"12": {}})  # ignores -n: each process also runs 5 seeds of the next range
    result = run_runner(fake_sim, store, "--batch-size", "10", "--end-seed", "30")
    assert result.returncode == 0, result.stderr
    cp = checkpoint(store)
    assert cp["next_seed"] == 30 and cp["totals"]["iterations"] == 30
    assert sorted(records(store)) == [12] and cp["totals"]["failures"] == 1 and index(store)[records(store)[12]["signature_id"]]["count"] == 1
    assert cp["totals"]["unparsed_lines"] == 15


def _utc(ago_s: float = 0) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_runner_progress_samples_start_when_the_run_starts_and_stay_right_across_restarts(fake_sim, tmp_path):
    from vopr.status import seeds_last_hour

    store = tmp_path / "store"
    assert run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1").returncode == 0
    cp = checkpoint(store)
    assert cp["progress"] == [[cp["started_at"], 0]]  # a young run: "seeds in the last hour" counts all of it
    for _ in range(2):
        assert run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1").returncode == 0
    cp = checkpoint(store)
    samples = cp["progress"]
    assert samples[0][1] == 0 and samples[-1] == [cp["started_at"], 20]
    assert [s[0] for s in samples] == sorted(s[0] for s in samples) and [s[1] for s in samples] == sorted(s[1] for s in samples)
    assert seeds_last_hour(samples, cp["totals"]["iterations"], dt.datetime.now(dt.timezone.utc)) == 30


def test_runner_progress_keeps_the_hours_baseline_through_a_crash_loop(fake_sim, tmp_path):
    from vopr.status import seeds_last_hour

    store = tmp_path / "store"
    assert run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1").returncode == 0
    path = store / ".runner" / "checkpoint.json"
    local = json.loads(path.read_text())
    # nothing done two hours ago, then a crash loop restarted the runner every 20 s for 50 minutes
    baseline = [_utc(7200), 0]
    local["progress"] = [baseline] + [[_utc(3000 - 20 * i), 10] for i in range(140)]
    path.write_text(json.dumps(local))
    fake_sim.set(delay_s=0.01)
    assert run_runner(fake_sim, store, "--batch-size", "10", "--max-seconds", "2.5").returncode == 0
    cp = checkpoint(store)
    total = cp["totals"]["iterations"]
    assert total > 10 and cp["progress"][0] == baseline
    assert seeds_last_hour(cp["progress"], total, dt.datetime.now(dt.timezone.utc)) == total


@pytest.mark.parametrize("store_state", ["current", "older_runner", "replayed_after_checkpoint"])
def test_runner_pending_replays_survive_a_restore_from_the_store(fake_sim, tmp_path, store_state):
    store = tmp_path / "store"
    fake_sim.set(fail={"3": {}}, replay_hang_at=[3], delay_s=0.01)
    first = run_runner(fake_sim, store, "--batch-size", "10", "--max-seconds", "2")
    assert first.returncode == 0, first.stderr
    assert records(store)[3]["determinism"]["status"] == "pending"
    latest = checkpoint(store)
    assert latest["pending_replay_seeds"] == [3] and first.events("shutdown")[0]["pending_replays"] == 1
    shutil.rmtree(store / ".runner")  # the instance was replaced: its local state is gone
    sid = records(store)[3]["signature_id"]
    if store_state == "current":  # an index newer than the checkpoint must not be trusted: it may count seeds run again
        idx = json.loads((store / "signatures" / "index.json").read_text())
        idx["signatures"][sid]["count"] = 2
        (store / "signatures" / "index.json").write_text(json.dumps(idx))
    elif store_state == "older_runner":  # a checkpoint written before pending_replay_seeds existed
        for key in ("pending_replay_seeds", "signature_index"):
            del latest[key]
        (store / "checkpoints" / "latest.json").write_text(json.dumps(latest))
    else:  # the replay finished (and its record reached the store) after the checkpoint was stored
        rec = records(store)[3]
        rec["determinism"] = {"status": "reproduced", "replayed_at": _utc(), "replay_kind": "invariant",
                              "replay_signature_id": sid, "replay_signature": rec["signature"]}
        (store / "failures" / "3.json").write_text(json.dumps(rec))
    fake_sim.set(replay_hang_at=[])
    second = run_runner(fake_sim, store, "--batch-size", "10", "--max-batches", "1")
    assert second.returncode == 0, second.stderr
    assert "checkpoints/latest.json" in second.events("checkpoint_restored")[0]["source"]
    assert records(store)[3]["determinism"]["status"] == "reproduced"
    entry = index(store)[sid]
    assert entry["count"] == 1 and entry["replays_reproduced"] == 1 and entry["reproducible"] is True
    assert fake_sim.seeds_run("replay") == ([] if store_state == "replayed_after_checkpoint" else [3])
    assert checkpoint(store)["pending_replay_seeds"] == []
