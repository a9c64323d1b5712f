"""Run the rendered first-boot script for real in a sandbox root with PATH shims, S3 and SNS in moto.

Proves the order of steps, every file written (parsed), the failure path (exit, service disabled, one alert),
idempotency of a second run, and that hostile values stay data.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from bootstrap_sandbox import GIB_KIB, INSTANCE_ID, REGION, REPO_ROOT, make_config, parse_env_file, parse_unit

STEPS = ["metadata", "alarm-off", "packages", "user", "cloudwatch-agent", "swap", "rust", "checkout", "build",
         "smoke-check", "runner", "service", "alarm-on"]
UNIT = "vopr-runner.service"
DESTRUCTIVE = {
    "useradd": lambda c: True,
    "fallocate": lambda c: True,
    "mkswap": lambda c: True,
    "swapon": lambda c: True,
    "rustup-init": lambda c: True,
    "curl": lambda c: c["url"] == "https://sh.rustup.rs",
    "git": lambda c: "clone" in c["argv"],
    "aws": lambda c: c["argv"][:2] == ["s3", "cp"],
    "pip": lambda c: True,
    "python3.11": lambda c: True,
    "amazon-cloudwatch-agent-ctl": lambda c: "fetch-config" in c["argv"],
    "systemctl": lambda c: c["argv"][0] in ("daemon-reload", "restart", "disable", "stop"),
}


def steps_logged(box) -> list[str]:
    return re.findall(r"vopr-bootstrap: step (\S+) \(t\+", box.log())


def first(calls: list[dict], predicate) -> int:
    return next(i for i, c in enumerate(calls) if predicate(c))


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def destructive(calls: list[dict]) -> list[dict]:
    return [c for c in calls if c["cmd"] in DESTRUCTIVE and DESTRUCTIVE[c["cmd"]](c)]


@pytest.fixture
def booted(sandbox, aws_world, fixture_repo):
    """A sandbox after one successful run with the default config."""
    box, script = sandbox()
    result = box.run(script)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    return box, script


def test_steps_run_in_order_and_log_with_timestamps(booted_once):
    box = booted_once.box
    assert steps_logged(box) == STEPS
    log = box.log()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line) for line in log.splitlines()), log
    assert "bootstrap complete in" in log.splitlines()[-1]
    assert box.runs[-1].stdout == log, "the console shows what the log file holds"
    assert box.path("/var/lib/cloud/scripts/per-boot").is_dir()
    assert not box.path("/var/lib/cloud/scripts/per-boot/vopr-bootstrap.sh").exists(), "done: no retry on boot"

    calls = box.calls()
    milestones = [
        lambda c: c["cmd"] == "curl" and c["url"].endswith("/api/token") and c["method"] == "PUT",
        lambda c: c["cmd"] == "aws" and c["argv"][:2] == ["cloudwatch", "disable-alarm-actions"],
        lambda c: c["cmd"] == "dnf",
        lambda c: c["cmd"] == "useradd",
        lambda c: c["cmd"] == "amazon-cloudwatch-agent-ctl" and "fetch-config" in c["argv"],
        lambda c: c["cmd"] == "fallocate",
        lambda c: c["cmd"] == "mkswap",
        lambda c: c["cmd"] == "swapon",
        lambda c: c["cmd"] == "rustup-init",
        lambda c: c["cmd"] == "git" and "clone" in c["argv"],
        lambda c: c["cmd"] == "cargo" and c["argv"][:1] == ["build"],
        lambda c: c["cmd"] == "simulator",
        lambda c: c["cmd"] == "aws" and c["argv"][:2] == ["s3", "cp"],
        lambda c: c["cmd"] == "pip",
        lambda c: c["cmd"] == "systemctl" and c["argv"] == ["enable", UNIT],
        lambda c: c["cmd"] == "systemctl" and c["argv"] == ["restart", UNIT],
        lambda c: c["cmd"] == "aws" and c["argv"][:2] == ["cloudwatch", "enable-alarm-actions"],
    ]
    indexes = [first(calls, m) for m in milestones]
    assert indexes == sorted(indexes)
    assert all(c["headers"] for c in box.calls("curl") if "169.254.169.254" in c["url"]), "IMDSv2: every call carries a token"


def test_packages_user_and_toolchain(booted_once):
    box = booted_once.box
    (dnf,) = box.calls("dnf")
    for package in ("git", "gcc", "python3.11", "python3.11-pip", "amazon-cloudwatch-agent", "logrotate"):
        assert package in dnf["argv"]
    assert dnf["argv"][:2] == ["install", "-y"]
    assert dnf["env"]["HOME"] == str(box.path("/root")) and dnf["env"]["LANG"] == "C.UTF-8" and dnf["env"]["TZ"] == "UTC"
    (useradd,) = box.calls("useradd")
    assert useradd["argv"][-1] == "vopr" and "--system" in useradd["argv"] and "/sbin/nologin" in useradd["argv"]

    (init,) = box.calls("rustup-init")
    assert init["user"] == "vopr"
    assert init["argv"] == ["-y", "--no-modify-path", "--profile", "minimal", "--default-toolchain", "1.85.0"]
    assert init["env"]["RUSTUP_HOME"] == str(box.path("/opt/vopr/rustup"))
    assert init["env"]["CARGO_HOME"] == str(box.path("/opt/vopr/cargo"))
    (fetch,) = [c for c in box.calls("curl") if c["url"] == "https://sh.rustup.rs"]
    assert "--proto" in fetch["argv"] and "=https" in fetch["argv"]
    assert "toolchain: 1.85.0-aarch64-unknown-linux-gnu (default)" in box.log()


def test_build_runs_as_vopr_with_absolute_toolchain_and_limited_jobs(booted_once, fixture_repo):
    box = booted_once.box
    (build,) = [c for c in box.calls("cargo") if c["argv"][:1] == ["build"]]
    assert build["argv"] == ["build", "--release", "-p", "kimberlite-sim", "--bin", "vopr"]
    assert build["user"] == "vopr"
    assert build["cwd"] == str(box.path("/opt/vopr/src"))
    assert build["env"]["CARGO_BUILD_JOBS"] == "1"
    assert build["env"]["CARGO_HOME"] == str(box.path("/opt/vopr/cargo"))
    assert build["env"]["PATH"].startswith(str(box.path("/opt/vopr/cargo/bin")) + ":"), "cargo from an explicit absolute PATH"
    assert build["env"]["HOME"] == str(box.path("/var/lib/vopr"))
    assert all(c["user"] == "vopr" for c in box.calls() if c["cmd"] in ("cargo", "rustup", "rustc", "git", "simulator"))
    head = subprocess.run(["git", "-C", str(box.path("/opt/vopr/src")), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert head.stdout.strip() == fixture_repo.commits["main"]
    assert f"checked out main at commit {fixture_repo.commits['main']}" in box.log()
    (smoke,) = box.calls("simulator")
    assert smoke["argv"] == ["--json", "--seed", "0", "-n", "1"] and smoke["user"] == "vopr"


def test_swap_added_on_a_2_gib_instance(booted_once):
    box = booted_once.box
    swapfile = box.path("/swapfile")
    assert [c["argv"] for c in box.calls("fallocate")] == [["-l", "4G", str(swapfile)]]
    assert [c["argv"] for c in box.calls("mkswap")] == [[str(swapfile)]]
    assert [c["argv"] for c in box.calls("swapon")] == [[str(swapfile)]]
    assert mode(swapfile) == 0o600
    assert "/swapfile none swap defaults 0 0" in box.path("/etc/fstab").read_text().splitlines()


def test_unit_file(booted_once):
    box = booted_once.box
    path = box.path("/etc/systemd/system/vopr-runner.service")
    assert mode(path) == 0o644
    unit = parse_unit(path.read_text())
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert "network-online.target" in unit["Unit"]["After"][0]
    assert service["User"] == "vopr" and service["Group"] == "vopr"
    assert service["ExecStart"] == "/opt/vopr/venv/bin/python -m runner"
    assert service["ExecStart"].startswith("/")
    assert service["WorkingDirectory"] == "/opt/vopr/src"
    assert service["EnvironmentFile"] == "/etc/vopr/runner.env"
    assert "PYTHONPATH=/opt/vopr/runner" in service["Environment"].split()
    assert "PYTHONSAFEPATH=1" in service["Environment"].split(), "a runner/ in the checkout must not shadow ours"
    assert service["Restart"] == "always"
    assert int(service["RestartSec"]) >= 1
    assert int(service["TimeoutStopSec"]) >= 90 + 20, "the runner may take 90 s to flush after SIGTERM"
    assert service["KillMode"] == "mixed", "SIGTERM goes to the runner only; it stops its simulators itself"
    assert service["StandardOutput"] == service["StandardError"] == "append:/var/log/vopr/runner.log"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert box.systemd()["enabled"].count(UNIT) == 1 and UNIT in box.systemd()["active"]


def test_runner_env(booted_once, fixture_repo):
    aws_world = booted_once.world
    box = booted_once.box
    path = box.path("/etc/vopr/runner.env")
    assert mode(path) == 0o644
    expected = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "VOPR_DEPLOYMENT_NAME": "vopr",
        "VOPR_SIMULATOR_COMMAND": "target/release/vopr",
        "VOPR_SIMULATOR_PROTOCOL": "vopr-json",
        "VOPR_SIMULATOR_COMMIT": fixture_repo.commits["main"],
        "VOPR_SIMULATOR_REPO_URL": "https://github.com/kimberlitedb/kimberlite.git",
        "VOPR_SIMULATOR_GIT_REF": "main",
        "VOPR_SIMULATOR_BUILD_COMMAND": "cargo build --release -p kimberlite-sim --bin vopr",
        "VOPR_RUNNER_WORKDIR": "/opt/vopr/src",
        "VOPR_RUNNER_STATE_DIR": "/var/lib/vopr",
        "VOPR_RUNNER_STORE": f"s3://{aws_world.bucket}/",
        "VOPR_RUNNER_BATCH_SIZE": "1000",
        "VOPR_RUNNER_SEED_TIMEOUT_S": "600",
        "VOPR_RUNNER_WORKERS": "0",
        "VOPR_RUNNER_ALERT_TOPIC": aws_world.topic_arn,
        "VOPR_RUNNER_METRICS": "cloudwatch",
    }
    assert parse_env_file(path.read_text()) == expected


def test_runner_installed_from_s3_into_its_venv(booted_once, artifact_key):
    aws_world = booted_once.world
    box = booted_once.box
    (cp,) = [c for c in box.calls("aws") if c["argv"][:2] == ["s3", "cp"]]
    assert f"s3://{aws_world.bucket}/{artifact_key}" in cp["argv"]
    (pip,) = box.calls("pip")
    assert "boto3==1.44.8" in pip["argv"]
    venv_python = box.path("/opt/vopr/venv/bin/python")
    probe = subprocess.run(
        [str(venv_python), "-c", "import boto3, runner, runner.layout; print(runner.__file__, boto3.__version__)"],
        env={"PYTHONPATH": str(box.path("/opt/vopr/runner")), "PYTHONSAFEPATH": "1", "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(box.path("/opt/vopr/runner/runner/__init__.py")), "1.44.8"]
    assert box.path("/opt/vopr/runner/.artifact").read_text().strip() == artifact_key
    assert not any(mode(p) & 0o022 for p in box.path("/opt/vopr/runner").rglob("*")), "runner code is not writable by others"


def test_cloudwatch_agent_config_and_log_permissions(booted_once):
    box = booted_once.box
    path = box.path("/etc/vopr/cloudwatch-agent.json")
    config = json.loads(path.read_text())
    (fetch,) = [c for c in box.calls("amazon-cloudwatch-agent-ctl") if "fetch-config" in c["argv"]]
    assert fetch["argv"] == ["-a", "fetch-config", "-m", "ec2", "-s", "-c", f"file:{path}"]
    user = config["agent"]["run_as_user"]
    assert user == "cwagent"
    files = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert {(f["file_path"], f["log_group_name"], f["log_stream_name"]) for f in files} == {
        ("/var/log/vopr/runner.log", "/vopr/vopr", "{instance_id}/runner"),
        ("/var/log/vopr/bootstrap.log", "/vopr/vopr", "{instance_id}/bootstrap"),
    }
    for f in files:
        log = box.path(f["file_path"])
        assert mode(log) & 0o004, f"{user} cannot read {f['file_path']}"
        for parent in (log.parent, log.parent.parent):
            assert mode(parent) & 0o001, f"{user} cannot enter {parent}"
    metrics = config["metrics"]
    assert metrics["namespace"] == "VOPR"
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    collected = metrics["metrics_collected"]
    assert collected["mem"]["measurement"] == ["mem_used_percent"]
    assert collected["disk"]["measurement"] == ["used_percent"] and collected["disk"]["resources"] == ["/"]
    assert all(section["append_dimensions"] == {"Deployment": "vopr"} for section in collected.values())
    assert "amazon-cloudwatch-agent.service" in box.systemd()["active"]


def test_log_rotation_keeps_the_disk_from_filling(booted_once):
    box = booted_once.box
    rotate = box.path("/etc/logrotate.d/vopr").read_text()
    assert rotate.startswith("/var/log/vopr/*.log {")
    for directive in ("copytruncate", "maxsize 100M", "rotate 5", "compress"):
        assert f"    {directive}\n" in rotate
    timer = parse_unit(box.path("/etc/systemd/system/logrotate.timer.d/vopr-hourly.conf").read_text())
    assert timer["Timer"]["OnCalendar"] == ["", "hourly"]
    assert "logrotate.timer" in box.systemd()["enabled"]


def test_no_alert_on_success(booted_once):
    assert booted_once.alerts == []


def test_second_run_changes_nothing(booted, aws_world, fixture_repo):
    box, script = booted
    before = box.snapshot()
    result = box.run(script)
    assert result.returncode == 0, result.stdout[-3000:]
    assert box.snapshot() == before
    assert destructive(box.calls()) == []
    assert ["start", UNIT] in [c["argv"] for c in box.calls("systemctl")]
    assert ["-a", "start"] in [c["argv"] for c in box.calls("amazon-cloudwatch-agent-ctl")]
    assert steps_logged(box)[-len(STEPS):] == STEPS
    assert box.systemd()["enabled"].count(UNIT) == 1
    assert aws_world.messages() == []


def failure_alert(aws_world) -> dict:
    messages = aws_world.messages()
    assert len(messages) == 1, messages
    return messages[0]


def test_failed_build_exits_non_zero_leaves_service_disabled_and_alerts_once(sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_FAIL="build")
    assert result.returncode == 101
    assert steps_logged(box) == STEPS[: STEPS.index("build") + 1]
    assert not any(c["argv"][-1] == UNIT for c in box.calls("systemctl"))
    assert UNIT not in box.systemd()["enabled"]
    assert not box.path("/etc/systemd/system/vopr-runner.service").exists()
    assert "FAILED in step build with exit status 101" in box.log()
    alert = failure_alert(aws_world)
    assert alert["Subject"] == f"VOPR bootstrap failed: vopr {INSTANCE_ID}"
    assert "failed in step 'build'" in alert["Message"]
    assert "/var/log/vopr/bootstrap.log" in alert["Message"]
    assert "cannot find value `replica`" in alert["Message"], "the alert carries the end of the log"
    resume = box.path("/var/lib/cloud/scripts/per-boot/vopr-bootstrap.sh")
    assert resume.read_text() == script and mode(resume) == 0o700, "the next boot tries again"


def test_an_unfinished_bootstrap_resumes_on_the_next_boot(sandbox, aws_world):
    box, script = sandbox()
    assert box.run(script, SANDBOX_FAIL="build").returncode != 0
    aws_world.messages()
    result = box.run(None)
    assert result.returncode == 0, result.stdout[-3000:]
    assert not box.path("/var/lib/cloud/scripts/per-boot/vopr-bootstrap.sh").exists()
    assert UNIT in box.systemd()["enabled"]
    redone = {c["cmd"] for c in destructive(box.calls())}
    assert not redone & {"useradd", "fallocate", "mkswap", "swapon", "rustup-init", "curl", "git"}, "finished steps are not redone"
    assert aws_world.messages() == []


def test_out_of_memory_build_says_so(sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_FAIL="build-oom")
    assert result.returncode != 0
    assert "the kernel killed a process for lack of memory during the build" in box.log()
    assert "Build out of memory" in failure_alert(aws_world)["Message"]


def test_plain_build_failure_does_not_blame_memory(sandbox, aws_world):
    box, script = sandbox()
    box.run(script, SANDBOX_FAIL="build")
    assert "lack of memory" not in box.log()


def test_failed_rerun_disables_a_running_service(booted, aws_world):
    box, script = booted
    assert UNIT in box.systemd()["enabled"]
    result = box.run(script, SANDBOX_FAIL="build")
    assert result.returncode != 0
    assert [c["argv"] for c in box.calls("systemctl") if UNIT in c["argv"]] == [["disable", "--now", UNIT]]
    assert UNIT not in box.systemd()["enabled"] and UNIT not in box.systemd()["active"]
    assert "failed in step 'build'" in failure_alert(aws_world)["Message"]


def test_smoke_check_rejects_output_that_is_not_the_protocol(sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_SIM="garbage")
    assert result.returncode != 0
    assert steps_logged(box)[-1] == "smoke-check"
    assert "stdout line 1 is not a vopr-json line" in box.log()
    assert "failed in step 'smoke-check'" in failure_alert(aws_world)["Message"]
    assert [c["argv"][:2] for c in box.calls("aws") if c["argv"][0] != "cloudwatch"] == [["sns", "publish"]], "the runner step never ran"


def test_smoke_check_accepts_a_failing_seed_zero(sandbox, aws_world):
    box, script = sandbox()
    assert box.run(script, SANDBOX_SIM="fail").returncode == 0
    assert "smoke-check: ok (seed 0 fails: the runner will record it)" in box.log()


def test_exit_code_protocol_records_the_status_and_goes_on(sandbox, aws_world):
    cfg = make_config(simulator={
        "command": "target/release/vopr-exit --max-events 100 {seed}",
        "protocol": "exit-code",
        "build_command": "cargo build --release --bin vopr-exit",
    })
    box, script = sandbox(cfg)
    result = box.run(script, SANDBOX_SIM_EXIT="3")
    assert result.returncode == 0, result.stdout[-3000:]
    (smoke,) = box.calls("simulator")
    assert smoke["argv"] == ["--max-events", "100", "0"]
    assert "smoke-check: exit status 3" in box.log()
    env = parse_env_file(box.path("/etc/vopr/runner.env").read_text())
    assert env["VOPR_SIMULATOR_PROTOCOL"] == "exit-code"
    assert env["VOPR_SIMULATOR_COMMAND"] == "target/release/vopr-exit --max-events 100 {seed}"


def test_missing_exit_code_binary_fails_the_smoke_check(sandbox, aws_world):
    cfg = make_config(simulator={"command": "target/release/not-built {seed}", "protocol": "exit-code"})
    box, script = sandbox(cfg)
    assert box.run(script).returncode != 0
    assert "smoke-check: cannot start target/release/not-built" in box.log()
    assert "failed in step 'smoke-check'" in failure_alert(aws_world)["Message"]


def test_repository_toolchain_file_wins(sandbox, fixture_repo):
    box, script = sandbox(make_config(simulator={"git_ref": "pinned"}))
    assert box.run(script).returncode == 0
    installs = [c for c in box.calls("rustup") if c["argv"][:2] == ["toolchain", "install"]]
    assert [(c["argv"], c["cwd"], c["user"]) for c in installs] == [(["toolchain", "install"], str(box.path("/opt/vopr/src")), "vopr")]
    log = box.log()
    assert "the repository's rust-toolchain file overrides 1.85.0" in log
    assert "toolchain: 1.88-aarch64-unknown-linux-gnu (overridden by" in log
    assert "rustc 1.88 (sandbox)" in log
    env = parse_env_file(box.path("/etc/vopr/runner.env").read_text())
    assert env["VOPR_SIMULATOR_COMMIT"] == fixture_repo.commits["pinned"]


def test_big_instance_needs_no_swap_and_builds_in_parallel(sandbox):
    cfg = make_config(instance={"type": "m7g.4xlarge"}, runner={"workers": 16})
    box, script = sandbox(cfg, mem_kib=64 * GIB_KIB, nproc=16)
    assert box.run(script).returncode == 0
    assert not box.calls("fallocate") and not box.calls("mkswap") and not box.calls("swapon")
    assert "swap" not in box.path("/etc/fstab").read_text()
    (build,) = [c for c in box.calls("cargo") if c["argv"][:1] == ["build"]]
    assert build["env"]["CARGO_BUILD_JOBS"] == "16"
    assert parse_env_file(box.path("/etc/vopr/runner.env").read_text())["VOPR_RUNNER_WORKERS"] == "16"


def test_mid_size_instance_limits_jobs_by_memory(sandbox):
    box, script = sandbox(mem_kib=7 * GIB_KIB, nproc=8)
    assert box.run(script).returncode == 0
    assert not box.calls("fallocate")
    (build,) = [c for c in box.calls("cargo") if c["argv"][:1] == ["build"]]
    assert build["env"]["CARGO_BUILD_JOBS"] == "4"


@pytest.mark.parametrize("ref", ["v1.2.3", "release/2026.1", "commit"])
def test_refs_resolve_to_the_exact_commit(sandbox, fixture_repo, ref):
    git_ref = fixture_repo.commits["v1.2.3"] if ref == "commit" else ref
    box, script = sandbox(make_config(simulator={"git_ref": git_ref}))
    assert box.run(script).returncode == 0, box.log()[-2000:]
    env = parse_env_file(box.path("/etc/vopr/runner.env").read_text())
    want = fixture_repo.commits["v1.2.3" if ref == "commit" else ref]
    assert env["VOPR_SIMULATOR_COMMIT"] == want and env["VOPR_SIMULATOR_GIT_REF"] == git_ref


def test_unknown_ref_fails_at_checkout(sandbox, aws_world):
    box, script = sandbox(make_config(simulator={"git_ref": "no-such-branch"}))
    assert box.run(script).returncode != 0
    assert steps_logged(box)[-1] == "checkout"
    assert "failed in step 'checkout'" in failure_alert(aws_world)["Message"]


@pytest.fixture
def short_dir():
    """A temporary directory with a short path: the deployment name appears about ten times in the script."""
    path = Path(tempfile.mkdtemp(prefix="vi", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_injected_values_stay_data(sandbox, aws_world, short_dir):
    marks = [short_dir / f"pwned-{i}" for i in range(6)]
    cfg = make_config(
        deployment={"name": f"x';touch {marks[0]};'"},
        simulator={
            "repo_url": f"https://example.com/r$(touch {marks[1]})`touch {marks[2]}`.git",
            "rust_toolchain": f"1.85.0$(touch {marks[3]})",
            "command": f"target/release/vopr $(touch {marks[4]}) ;touch {marks[5]}",
        },
    )
    box, script = sandbox(cfg, validate=False)
    result = box.run(script)
    assert result.returncode == 0, box.log()[-3000:]
    assert not [m for m in marks if m.exists()]
    env_text = box.path("/etc/vopr/runner.env").read_text()
    env = parse_env_file(env_text)
    assert env["VOPR_DEPLOYMENT_NAME"] == cfg.deployment.name
    assert env["VOPR_SIMULATOR_REPO_URL"] == cfg.simulator.repo_url
    assert env["VOPR_SIMULATOR_COMMAND"] == cfg.simulator.command
    sourced = subprocess.run(["bash", "-c", 'set -a; . "$1"; printf "%s\\0" "$VOPR_SIMULATOR_REPO_URL" "$VOPR_SIMULATOR_COMMAND"', "-",
                              str(box.path("/etc/vopr/runner.env"))], capture_output=True, text=True, check=True)
    assert sourced.stdout.split("\0")[:2] == [cfg.simulator.repo_url, cfg.simulator.command]
    assert not [m for m in marks if m.exists()]
    (init,) = box.calls("rustup-init")
    assert init["argv"][-1] == cfg.simulator.rust_toolchain
    agent = json.loads(box.path("/etc/vopr/cloudwatch-agent.json").read_text())
    assert agent["logs"]["logs_collected"]["files"]["collect_list"][0]["log_group_name"] == cfg.log_group


def test_injected_ref_fails_without_executing(sandbox, aws_world, tmp_path):
    mark = tmp_path / "pwned-ref"
    box, script = sandbox(make_config(simulator={"git_ref": f"main$(touch {mark});touch {mark}"}), validate=False)
    assert box.run(script).returncode != 0
    assert not mark.exists()
    assert "failed in step 'checkout'" in failure_alert(aws_world)["Message"]


def test_missing_instance_tags_fail_at_metadata_without_alert(sandbox, aws_world):
    box, script = sandbox()
    box.imds["tags"] = {}
    box.write_imds()
    result = box.run(script)
    assert result.returncode != 0
    assert steps_logged(box) == ["metadata"]
    assert "cannot read instance metadata meta-data/tags/instance/VoprBucket" in box.log()
    assert "alert topic unknown: no alert sent" in box.log()
    assert aws_world.messages() == []


def test_invalid_tag_value_is_rejected(sandbox, aws_world):
    box, script = sandbox()
    box.imds["tags"]["VoprBucket"] = "bucket;reboot"
    box.write_imds()
    assert box.run(script).returncode != 0
    assert "VoprBucket 'bucket;reboot' is not valid" in box.log()
    assert aws_world.messages() == [], "the topic is trusted only after every tag checked out"


def test_missing_runner_artifact_fails_in_runner_step(sandbox, aws_world):
    box, script = sandbox()
    assert box.run(script, SANDBOX_FAIL="s3").returncode != 0
    assert steps_logged(box)[-1] == "runner"
    assert UNIT not in box.systemd()["enabled"]
    assert "failed in step 'runner'" in failure_alert(aws_world)["Message"]


def test_a_second_concurrent_run_is_refused(booted):
    box, script = booted
    with open(box.path("/run/vopr-bootstrap.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = box.run(script)
    assert result.returncode == 75
    assert "another run holds" in result.stderr
    assert box.calls() == []
