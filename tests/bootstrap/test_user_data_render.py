"""Rendering the first-boot script: valid bash, zero shellcheck findings, under 16 KB, values quoted exactly."""

from __future__ import annotations

import subprocess

import pytest

from bootstrap_sandbox import make_config
from stacks.monitoring import NO_PROGRESS_PERIOD_S, NO_PROGRESS_PERIODS
from stacks.user_data import TEMPLATE_PATH, USER_DATA_LIMIT_BYTES, UserDataTooLarge, render_user_data
from vopr.config import ConfigError, load

ARTIFACT_KEY = "artifacts/runner-" + "0123456789abcdef" * 4 + ".tar.gz"
# What the default config leaves for longer simulator.build_command and simulator.command values (docs: "Limits").
MIN_COMMAND_ROOM_BYTES = 950
LONG_FEATURES = " ".join(f"--features sim-canary-{i:03d}" for i in range(22))

CONFIGS = {
    "default": make_config(),
    "exit-code": make_config(simulator={
        "command": "target/release/vopr-exit --max-events 100 {seed}",
        "protocol": "exit-code",
        "build_command": "cargo build --release --bin vopr-exit",
    }),
    "release-branch": make_config(simulator={"git_ref": "release/2026.1"}),
    "tag": make_config(simulator={"git_ref": "v1.2.3"}),
    "commit": make_config(simulator={"git_ref": "4c241cb015e5c5e26c592441a7478ca8b3d07323"}),
    "odd-ref": make_config(simulator={"git_ref": "feature_x-y.z/under_score"}),
    "scp-url": make_config(simulator={"repo_url": "git@github.com:kimberlitedb/kimberlite.git"}),
    "ssh-url": make_config(simulator={"repo_url": "ssh://git@git.example.com:2222/team/sim.git"}),
    "odd-url": make_config(simulator={"repo_url": "https://user@example.com/~team/sim%20x+y.git"}),
    "long-commands": make_config(simulator={
        "build_command": f"cargo build --release --locked -p kimberlite-sim --bin vopr {LONG_FEATURES}",
        "command": "target/release/vopr --max-events 100000 " + "--faults network,storage " * 12,
    }),
    "quotes-in-commands": make_config(simulator={
        "build_command": "cargo build --release --config 'profile.release.lto=\"thin\"' && echo \"built in $PWD\" `true`",
        "command": "target/release/vopr --scenario 'two words' --tag \"a\\b\"",
    }),
    "nightly": make_config(simulator={"rust_toolchain": "nightly-2026-01-01"}),
    "stable": make_config(simulator={"rust_toolchain": "stable"}),
    "big-instance": make_config(
        deployment={"name": "perf-lab-2", "region": "eu-west-1"},
        instance={"type": "m7g.8xlarge", "root_volume_gib": 100},
        runner={"batch_size": 100000, "seed_timeout_s": 3600, "workers": 32},
    ),
}
VALUES = {
    "NAME": lambda c: c.deployment.name,
    "ALARM": lambda c: c.no_progress_alarm_name,
    "LOG_GROUP": lambda c: c.log_group,
    "REPO_URL": lambda c: c.simulator.repo_url,
    "GIT_REF": lambda c: c.simulator.git_ref,
    "TOOLCHAIN": lambda c: c.simulator.rust_toolchain,
    "BUILD_COMMAND": lambda c: c.simulator.build_command,
    "SIM_COMMAND": lambda c: c.simulator.command,
    "PROTOCOL": lambda c: c.simulator.protocol,
    "BATCH_SIZE": lambda c: str(c.runner.batch_size),
    "SEED_TIMEOUT_S": lambda c: str(c.runner.seed_timeout_s),
    "WORKERS": lambda c: str(c.runner.workers),
    "ARTIFACT_KEY": lambda c: ARTIFACT_KEY,
    "BOTO3_VERSION": lambda c: "1.44.8",
}


def assignments(script: str) -> str:
    """The block of rendered value assignments at the top of the script."""
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NAME="))
    end = next(i for i, line in enumerate(lines) if line.startswith("ALARM_POLLS="))
    return "\n".join(lines[start:end + 1])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rendering_is_clean_bash_under_the_limit(name, tmp_path):
    script = render_user_data(CONFIGS[name], ARTIFACT_KEY)
    path = tmp_path / "user_data.sh"
    path.write_text(script)
    assert len(script.encode()) < USER_DATA_LIMIT_BYTES
    assert script.startswith("#!/bin/bash\n")
    assert "{{" not in script and "{%" not in script and "{#" not in script
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(["shellcheck", "--shell=bash", "--severity=style", str(path)], capture_output=True, text=True)
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_values_reach_the_script_exactly(name):
    cfg = CONFIGS[name]
    probe = assignments(render_user_data(cfg, ARTIFACT_KEY)) + "\nprintf '%s\\0' " + " ".join(f'"${k}"' for k in VALUES)
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split("\0")[:-1] == [get(cfg) for get in VALUES.values()]


def test_shellcheck_disables_are_targeted():
    for line in TEMPLATE_PATH.read_text().splitlines():
        if "shellcheck disable" in line:
            assert "=SC" in line and "#" in line.split("disable", 1)[1], f"blanket or unexplained disable: {line}"


def test_the_default_config_leaves_room_for_longer_commands():
    size = len(render_user_data(make_config(), ARTIFACT_KEY).encode())
    longest = max(len(render_user_data(cfg, ARTIFACT_KEY).encode()) for cfg in CONFIGS.values())
    assert USER_DATA_LIMIT_BYTES - size >= MIN_COMMAND_ROOM_BYTES, f"{size} bytes leave too little room for commands"
    assert longest - size >= 900, "the long-commands config must stay long"


def test_template_notes_are_jinja_comments_that_cost_no_user_data_bytes():
    template = TEMPLATE_PATH.read_text()
    script = render_user_data(make_config(), ARTIFACT_KEY)
    assert "CloudWatch acts only on transitions" in template and "CloudWatch acts only on transitions" not in script
    assert script.startswith("#!/bin/bash\n# vopr-aws first boot")
    assert "\n\n\n" not in script, "a dropped comment left a blank line behind"


def test_alarm_retries_and_wait_outlast_the_alarm_window():
    probe = assignments(render_user_data(make_config(), ARTIFACT_KEY)) + (
        '\nprintf "%s\\n" "${CW_RETRY_S[*]}" "$ALARM_POLL_S" "$ALARM_POLLS"'
    )
    retry, poll_s, polls = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [int(d) for d in retry.split()] == [5, 15, 45, 135], "backoff: 5 tries over 200 s"
    window_s = NO_PROGRESS_PERIOD_S * NO_PROGRESS_PERIODS
    assert int(poll_s) * int(polls) >= window_s + NO_PROGRESS_PERIOD_S, "wait for the first seeds longer than the alarm needs"
    assert int(poll_s) * int(polls) <= 2 * window_s, "a runner with no seeds is reported within about half an hour"


def test_oversized_rendering_raises_one_clear_line():
    cfg = make_config(simulator={"build_command": "cargo build --release " + "--features x " * 300})
    with pytest.raises(UserDataTooLarge) as err:
        render_user_data(cfg, ARTIFACT_KEY)
    message = str(err.value)
    assert "\n" not in message
    assert "16384-byte limit" in message and "simulator.build_command" in message
    assert int(message.split(" is ")[1].split(" bytes")[0]) > USER_DATA_LIMIT_BYTES


def test_a_command_just_under_the_limit_still_renders():
    base = len(render_user_data(make_config(), ARTIFACT_KEY).encode())
    room = USER_DATA_LIMIT_BYTES - base
    cfg = make_config(simulator={"build_command": "cargo build --release -p kimberlite-sim --bin vopr" + " " * room})
    assert len(render_user_data(cfg, ARTIFACT_KEY).encode()) == USER_DATA_LIMIT_BYTES
    cfg = make_config(simulator={"build_command": "cargo build --release -p kimberlite-sim --bin vopr" + " " * (room + 1)})
    with pytest.raises(UserDataTooLarge):
        render_user_data(cfg, ARTIFACT_KEY)


INJECTIONS = {
    "simulator.repo_url": "https://example.com/x.git; touch /tmp/pwned",
    "simulator.git_ref": "main$(touch /tmp/pwned)",
    "simulator.rust_toolchain": "1.85.0`touch /tmp/pwned`",
    "deployment.name": "vopr'; touch /tmp/pwned; '",
}


@pytest.mark.parametrize("dotted", sorted(INJECTIONS))
def test_config_layer_rejects_shell_metacharacters(dotted, tmp_path):
    empty = tmp_path / "vopr.toml"
    empty.write_text("")
    with pytest.raises(ConfigError) as err:
        load(path=empty, overrides={dotted: INJECTIONS[dotted]}, environ={})
    assert dotted in str(err.value)


@pytest.mark.parametrize("dotted", sorted(INJECTIONS))
def test_renderer_validates_by_default(dotted):
    section, key = dotted.split(".")
    cfg = make_config(**{section: {key: INJECTIONS[dotted]}})
    with pytest.raises(ConfigError):
        render_user_data(cfg, ARTIFACT_KEY)
    assert "touch /tmp/pwned" in render_user_data(cfg, ARTIFACT_KEY, validate=False)


@pytest.mark.parametrize("dotted", sorted(INJECTIONS))
def test_unvalidated_values_stay_literal_in_bash(dotted):
    section, key = dotted.split(".")
    cfg = make_config(**{section: {key: INJECTIONS[dotted]}})
    script = render_user_data(cfg, ARTIFACT_KEY, validate=False)
    probe = assignments(script) + "\nprintf '%s\\0' \"$NAME\" \"$REPO_URL\" \"$GIT_REF\" \"$TOOLCHAIN\""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split("\0")[:-1] == [cfg.deployment.name, cfg.simulator.repo_url, cfg.simulator.git_ref, cfg.simulator.rust_toolchain]


@pytest.mark.parametrize("value", ["cargo build\ntouch /tmp/pwned", "cargo build\rx", "cargo\x00build", "cargo\tbuild"])
def test_control_characters_are_rejected_even_unvalidated(value):
    cfg = make_config(simulator={"build_command": value})
    with pytest.raises(ConfigError) as err:
        render_user_data(cfg, ARTIFACT_KEY, validate=False)
    assert "simulator.build_command" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("key", ["artifacts/runner.tar.gz; rm -rf /", "runner-abc.tar.gz", "artifacts/../x.tar.gz/", "artifacts/$(x).tar.gz"])
def test_artifact_key_is_checked(key):
    with pytest.raises(ConfigError) as err:
        render_user_data(make_config(), key)
    assert "artifact key" in str(err.value)
