"""Render scripts/user_data.sh.j2, the instance's first-boot script, from the validated config.

Every value reaches the script shell-quoted (or JSON-encoded); the result must fit EC2's 16 KB user_data limit.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jinja2

from vopr.config import Config, ConfigError, validate_config

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "scripts" / "user_data.sh.j2"
USER_DATA_LIMIT_BYTES = 16 * 1024

# The runner's one dependency, installed into /opt/vopr/venv from PyPI (the project's pin).
RUNNER_BOTO3_VERSION = "1.44.8"
# boto3 1.44 needs Python >= 3.10; Amazon Linux 2023's default python3 is 3.9, so the venv uses this one.
INSTANCE_PYTHON = "python3.11"
# rustc is easily out-of-memory killed on 2 GiB: below this much memory the script adds a swap file.
SWAP_BELOW_KIB = 4 * 1024 * 1024
SWAP_SIZE = "4G"
# Parallel rustc jobs get this much memory each (CARGO_BUILD_JOBS = memory / this, at least 1, at most CPUs).
KIB_PER_BUILD_JOB = 1536 * 1024
# Seconds between the tries of an `aws cloudwatch` call on the no-progress alarm (5 tries over 200 s).
CW_RETRY_S = (5, 15, 45, 135)
# After starting the runner, poll the alarm this often, this many times (20 minutes), for the OK that the
# runner's first seeds bring before arming it: its evaluation needs 3 x 5 minutes plus CloudWatch's delay at worst.
ALARM_POLL_S = 30
ALARM_POLLS = 40

_ARTIFACT_KEY_RE = re.compile(r"^artifacts/[A-Za-z0-9._-]+\.tar\.gz$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class UserDataTooLarge(ConfigError):
    """The rendered script would not fit in EC2 user_data."""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_PATH.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env


def check_template_values(cfg: Config, runner_artifact_key: str) -> None:
    """The checks the script itself relies on, applied even when config validation is skipped."""
    if not _ARTIFACT_KEY_RE.match(runner_artifact_key):
        raise ConfigError(
            f"runner artifact key {runner_artifact_key!r} is not valid: expected artifacts/<name>.tar.gz (letters, digits, '.', '_', '-')"
        )
    for section, values in cfg.as_dict().items():
        for key, value in values.items():
            if isinstance(value, str) and _CONTROL_RE.search(value):
                raise ConfigError(f"{section}.{key} contains a control character (e.g. a newline): write it on one line")


def render_user_data(cfg: Config, runner_artifact_key: str, *, validate: bool = True) -> str:
    """The first-boot script for this config; raises ConfigError on bad values, UserDataTooLarge over 16 KB.

    `validate=False` skips vopr.config.validate_config (tests use it to prove the quoting alone is safe);
    the checks in check_template_values always run.
    """
    if validate:
        validate_config(cfg)
    check_template_values(cfg, runner_artifact_key)
    script = _environment().get_template(TEMPLATE_PATH.name).render(
        cfg=cfg,
        deployment=cfg.deployment,
        instance=cfg.instance,
        simulator=cfg.simulator,
        runner=cfg.runner,
        log_group=cfg.log_group,
        runner_artifact_key=runner_artifact_key,
        boto3_version=RUNNER_BOTO3_VERSION,
        instance_python=INSTANCE_PYTHON,
        swap_below_kib=SWAP_BELOW_KIB,
        swap_size=SWAP_SIZE,
        kib_per_build_job=KIB_PER_BUILD_JOB,
        cw_retry_s=CW_RETRY_S,
        alarm_poll_s=ALARM_POLL_S,
        alarm_polls=ALARM_POLLS,
    )
    size = len(script.encode())
    if size > USER_DATA_LIMIT_BYTES:
        raise UserDataTooLarge(
            f"the rendered user_data is {size} bytes, over EC2's {USER_DATA_LIMIT_BYTES}-byte limit: "
            "shorten simulator.build_command and simulator.command (they are embedded in the script)"
        )
    return script
