"""`vopr run`: the real runner in the foreground with the live display, then `status`/`failures` on what it wrote
(the README's `make demo` flow), Ctrl-C, and the mapping from vopr.toml to runner settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vopr import live
from vopr.config import load
from vopr.errors import VoprError

VOPR = str(Path(sys.executable).with_name("vopr"))


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOPR_")}
    env.update({"COLUMNS": "100", "NO_COLOR": "1"})
    return env


def test_demo_flow_run_then_status_then_failures(tmp_path):
    run = subprocess.run([VOPR, "run", "--demo", "--max-seconds", "6"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "vopr run: demo simulator -> vopr-results" in run.stdout
    assert "seeds done" in run.stdout and "failures" in run.stdout
    assert "done: " in run.stdout and "next: `vopr status --store vopr-results`" in run.stdout
    assert '{"' not in run.stdout and run.stderr == ""
    store = tmp_path / "vopr-results"
    checkpoint = json.loads((store / "checkpoints" / "latest.json").read_text())
    log_lines = [json.loads(l) for l in (store / ".runner" / "runner.log").read_text().splitlines()]
    assert {"runner_started", "batch", "shutdown"} <= {l["event"] for l in log_lines}
    assert checkpoint["totals"]["iterations"] > 0
    assert f"{checkpoint['totals']['iterations']:,}" in run.stdout

    status = subprocess.run([VOPR, "status", "--store", "vopr-results", "--json"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["progress"]["seeds_total"] == checkpoint["totals"]["iterations"]
    failures = subprocess.run([VOPR, "failures", "--store", "vopr-results"], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=60)
    assert failures.returncode == 0, failures.stderr
    if checkpoint["totals"]["failures"]:
        assert "signature(s)" in failures.stdout and "failing seed(s)" in failures.stdout
    else:
        assert "no failures recorded yet" in failures.stdout


def test_ctrl_c_stops_the_run_cleanly_with_a_checkpoint(tmp_path):
    proc = subprocess.Popen([VOPR, "run", "--demo", "--store", "res"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latest = tmp_path / "res" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 60
    while not latest.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "done: " in out
    log = [json.loads(l) for l in (tmp_path / "res" / ".runner" / "runner.log").read_text().splitlines()]
    shutdown = [l for l in log if l["event"] == "shutdown"]
    assert shutdown and shutdown[-1]["reason"] == "SIGINT"
    assert json.loads(latest.read_text())["next_seed"] == shutdown[-1]["next_seed"]


def test_run_without_a_built_simulator_is_one_line(tmp_path):
    (tmp_path / "vopr.toml").write_text('[simulator]\ncommand = "target/release/vopr"\n')
    proc = subprocess.run([VOPR, "run", "--max-batches", "1"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: simulator 'target/release/vopr' not found or not executable")
    assert "--demo runs the bundled one" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_simulator_that_never_starts_fails_the_run(tmp_path):
    (tmp_path / "vopr.toml").write_text('[simulator]\ncommand = "/bin/false"\n')
    proc = subprocess.run([VOPR, "run", "--max-seconds", "2"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: the simulator never started (/bin/false)") and "runner.log" in line


def test_runner_settings_follow_vopr_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = tmp_path / "target" / "release" / "vopr"
    sim.parent.mkdir(parents=True)
    sim.write_text("#!/bin/sh\nexit 0\n")
    sim.chmod(0o755)
    cfg = load(overrides={"deployment.name": "lab", "runner.batch_size": "250", "runner.workers": "3",
                          "runner.seed_timeout_s": "30", "simulator.git_ref": "v1.2"}, environ={})
    settings = live.settings_for(cfg, store=str(tmp_path / "out"), max_batches=2)
    assert settings.simulator_command == "target/release/vopr" and settings.protocol == "vopr-json"
    assert (settings.deployment, settings.batch_size, settings.workers, settings.seed_timeout_s) == ("lab", 250, 3, 30)
    assert (settings.git_ref, settings.repo_url) == ("v1.2", cfg.simulator.repo_url)
    assert settings.build_command == cfg.simulator.build_command and settings.metrics == "log"
    assert settings.max_batches == 2 and settings.store == str(tmp_path / "out")
    assert settings.log_file == str(tmp_path / "out" / ".runner" / "runner.log")
    demo = live.settings_for(cfg, demo=True, store=str(tmp_path / "d"), max_seconds=3)
    assert demo.simulator_command.endswith("-m runner.demo_vopr") and demo.max_seconds == 3
    with pytest.raises(VoprError) as err:
        live.settings_for(cfg, demo=True, store=str(tmp_path / "d"), max_seconds=-1)
    assert "--max-seconds must be positive" in str(err.value) and err.value.exit_code == 2


def test_a_refused_restart_is_one_line_naming_the_start_seed_flag_and_the_flag_works(tmp_path):
    first = subprocess.run([VOPR, "run", "--demo", "--max-seconds", "4"], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    store = tmp_path / "vopr-results"
    assert list((store / "failures").glob("*.json")), "the demo should have recorded failures in 4 s"
    (store / ".runner" / "checkpoint.json").write_text("{not json")
    for copy in (store / "checkpoints").rglob("*.json"):
        copy.unlink()

    refused = subprocess.run([VOPR, "run", "--demo", "--max-seconds", "2"], cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr + refused.stdout
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and "refusing to restart from seed 0" in line
    assert "`vopr run --start-seed N`" in line

    resumed = subprocess.run([VOPR, "run", "--demo", "--max-seconds", "2", "--start-seed", "5000000"], cwd=tmp_path,
                             env=_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    checkpoint = json.loads((store / "checkpoints" / "latest.json").read_text())
    assert checkpoint["next_seed"] >= 5_000_000
    # the failures recorded before the refusal stay in the index and the totals
    seeds = sorted(int(p.stem) for p in (store / "failures").glob("*.json"))
    earlier = [s for s in seeds if s < 5_000_000]
    assert earlier
    indexed = json.loads((store / "signatures" / "index.json").read_text())["signatures"]
    assert sum(e["count"] for e in indexed.values()) == len(seeds) == checkpoint["totals"]["failures"]
    listed = subprocess.run([VOPR, "failures", "--store", str(store), "--json"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=60)
    assert sum(r["count"] for r in json.loads(listed.stdout)) == len(seeds)


def test_a_store_that_is_not_a_directory_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = subprocess.run([VOPR, "run", "--demo", "--store", "afile", "--max-seconds", "1"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot use --store afile: Not a directory")


def test_a_second_run_on_the_same_store_is_refused_in_vopr_run_terms(tmp_path):
    first = subprocess.Popen([VOPR, "run", "--demo", "--max-seconds", "30"], cwd=tmp_path, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "vopr-results" / ".runner" / "checkpoint.json").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        second = subprocess.run([VOPR, "run", "--demo", "--max-seconds", "1"], cwd=tmp_path, env=_env(),
                                capture_output=True, text=True, timeout=60)
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(60)
    assert second.returncode == 2
    [line] = second.stderr.strip().splitlines()
    assert line.startswith("error: another runner is using vopr-results") and "pass another --store" in line
    assert "╭" not in second.stdout, "no progress panel before a refusal"
