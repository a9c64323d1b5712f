"""The runner's settings: flags, each with an environment variable, validated into one Settings dataclass.

`parse(argv, environ)` is used by `python -m runner` and by the CLI; bad values raise SettingsError with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

PROTOCOLS = ("vopr-json", "exit-code")
METRICS_MODES = ("cloudwatch", "log")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_TOPIC_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


class SettingsError(ValueError):
    """A bad setting, phrased as one line naming the flag (or variable) and the fix."""


@dataclass
class Settings:
    simulator_command: str
    protocol: str = "vopr-json"
    workdir: str = "."
    state_dir: str | None = None
    store: str = "./vopr-results"
    region: str | None = None
    deployment: str = "vopr"
    batch_size: int = 1000
    seed_timeout_s: float = 600.0
    workers: int = 0
    alert_topic: str | None = None
    metrics: str = "log"
    simulator_commit: str | None = None
    repo_url: str | None = None
    git_ref: str | None = None
    build_command: str | None = None
    max_batches: int | None = None
    max_seconds: float | None = None
    end_seed: int | None = None
    start_seed: int | None = None
    process_target_s: float = 20.0
    replay_backlog: int = 50
    log_file: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.store.startswith("s3://")

    @property
    def resolved_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser().resolve()
        if self.is_s3:
            return Path(".vopr-state").resolve()
        return (Path(self.store).expanduser() / ".runner").resolve()

    @property
    def worker_count(self) -> int:
        if self.workers > 0:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)

    def command_argv(self) -> list[str]:
        return shlex.split(self.simulator_command)


# flag, environment variable, Settings field, type, help
_FLAGS: list[tuple[str, str | None, str, type, str]] = [
    ("--simulator-command", "VOPR_SIMULATOR_COMMAND", "simulator_command", str,
     "the simulator (vopr-json: the runner adds --json --seed N -n K; exit-code: a {seed} template)"),
    ("--protocol", "VOPR_SIMULATOR_PROTOCOL", "protocol", str, "vopr-json or exit-code"),
    ("--workdir", "VOPR_RUNNER_WORKDIR", "workdir", str, "directory the simulator runs in"),
    ("--state-dir", "VOPR_RUNNER_STATE_DIR", "state_dir", str, "local checkpoint, records, outbox and limiter state"),
    ("--store", "VOPR_RUNNER_STORE", "store", str, "s3://bucket/prefix or a directory"),
    ("--region", "AWS_REGION", "region", str, "AWS region for S3, CloudWatch and SNS"),
    ("--deployment", "VOPR_DEPLOYMENT_NAME", "deployment", str, "deployment name (metric dimension, log field)"),
    ("--batch-size", "VOPR_RUNNER_BATCH_SIZE", "batch_size", int, "seeds in a simulator process at first (vopr-json); grows"),
    ("--seed-timeout-s", "VOPR_RUNNER_SEED_TIMEOUT_S", "seed_timeout_s", float, "a seed running longer is killed: timeout"),
    ("--workers", "VOPR_RUNNER_WORKERS", "workers", int, "simulator processes at once; 0 = one per core"),
    ("--alert-topic", "VOPR_RUNNER_ALERT_TOPIC", "alert_topic", str, "SNS topic ARN; without it alerts go to the log"),
    ("--metrics", "VOPR_RUNNER_METRICS", "metrics", str, "cloudwatch or log"),
    ("--simulator-commit", "VOPR_SIMULATOR_COMMIT", "simulator_commit", str, "commit the binary was built from"),
    ("--repo-url", "VOPR_SIMULATOR_REPO_URL", "repo_url", str, "simulator repository, for reproduction commands"),
    ("--git-ref", "VOPR_SIMULATOR_GIT_REF", "git_ref", str, "simulator branch or tag, for the record"),
    ("--build-command", "VOPR_SIMULATOR_BUILD_COMMAND", "build_command", str, "builds the simulator, for reproduction"),
    ("--max-batches", None, "max_batches", int, "stop after N simulator processes"),
    ("--max-seconds", None, "max_seconds", float, "stop after S seconds"),
    ("--end-seed", None, "end_seed", int, "run only seeds below N, then stop"),
    ("--start-seed", "VOPR_RUNNER_START_SEED", "start_seed", int, "first seed when there is no checkpoint yet"),
    ("--process-target-s", "VOPR_RUNNER_PROCESS_TARGET_S", "process_target_s", float,
     "grow seeds per process until each runs about this long; 0 = fixed --batch-size"),
    ("--replay-backlog", "VOPR_RUNNER_REPLAY_BACKLOG", "replay_backlog", int, "determinism replays queued at most"),
    ("--log-file", "VOPR_RUNNER_LOG_FILE", "log_file", str, "append JSON log lines here instead of stdout"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit; we want one line
        raise SettingsError(f"{message} (see python -m runner --help)")


def _parser() -> _Parser:
    p = _Parser(prog="python -m runner", description="Run a deterministic simulator over seeds forever; record every failure.")
    for flag, env, dest, _kind, help_text in _FLAGS:
        p.add_argument(flag, dest=dest, default=None, metavar=dest.upper(),
                       help=help_text + (f" [${env}]" if env else ""))
    return p


def _convert(flag: str, env: str | None, raw: str, kind: type, from_env: bool):
    origin = f"${env}" if from_env else flag
    if kind is str:
        return raw.strip() or None
    try:
        return kind(raw.strip())
    except ValueError:
        example = "1000" if kind is int else "600"
        raise SettingsError(f"{origin} must be a number, got {raw!r}: write e.g. {flag} {example}") from None


def parse(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags override environment variables override defaults; the result is validated."""
    environ = os.environ if environ is None else environ
    ns = vars(_parser().parse_args(argv))
    values: dict[str, object] = {}
    for flag, env, dest, kind, _help in _FLAGS:
        raw = ns.get(dest)
        if raw is not None:
            values[dest] = _convert(flag, env, raw, kind, False)
        elif env and environ.get(env, "").strip():
            values[dest] = _convert(flag, env, environ[env], kind, True)
        elif dest == "region" and environ.get("AWS_DEFAULT_REGION", "").strip():
            values[dest] = environ["AWS_DEFAULT_REGION"].strip()
    values = {k: v for k, v in values.items() if v is not None}
    if not values.get("simulator_command"):
        raise SettingsError("no simulator command: pass --simulator-command 'target/release/vopr' or set VOPR_SIMULATOR_COMMAND")
    settings = Settings(**values)  # type: ignore[arg-type]
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    """Raise SettingsError naming the first bad setting; also checks the simulator executable exists."""
    if not s.simulator_command or not s.simulator_command.strip():
        raise SettingsError("no simulator command: pass --simulator-command 'target/release/vopr' or set VOPR_SIMULATOR_COMMAND")
    if s.protocol not in PROTOCOLS:
        raise SettingsError(f"--protocol {s.protocol!r} is unknown: use vopr-json or exit-code")
    try:
        argv = s.command_argv()
    except ValueError as exc:
        raise SettingsError(f"--simulator-command {s.simulator_command!r} does not parse as a command line ({exc}): fix its quoting") from None
    if s.protocol == "exit-code" and "{seed}" not in s.simulator_command:
        raise SettingsError(f"--simulator-command {s.simulator_command!r} has no {{seed}} placeholder, which --protocol exit-code needs: e.g. './vopr {{seed}}'")
    if s.protocol == "vopr-json" and "{seed}" in s.simulator_command:
        raise SettingsError("--simulator-command has a {seed} placeholder but --protocol is vopr-json: use --protocol exit-code, or drop {seed}")
    workdir = Path(s.workdir).expanduser()
    if not workdir.is_dir():
        raise SettingsError(f"--workdir {s.workdir!r} is not a directory: create it or point at the simulator checkout")
    exe = argv[0]
    found = shutil.which(exe, path=str(workdir.resolve()) + os.pathsep + os.environ.get("PATH", "")) if "/" not in exe else None
    if "/" in exe:
        candidate = Path(exe) if Path(exe).is_absolute() else workdir / exe
        found = str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    if not found:
        raise SettingsError(f"simulator {exe!r} not found or not executable (workdir {workdir.resolve()}): build it first or fix --simulator-command")
    if not _NAME_RE.match(s.deployment or ""):
        raise SettingsError(f"--deployment {s.deployment!r} is not valid: use 1-20 lowercase letters, digits or '-', starting with a letter")
    for name, minimum in (("batch_size", 1), ("seed_timeout_s", 0.001), ("replay_backlog", 0)):
        if getattr(s, name) < minimum:
            raise SettingsError(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(s, name)}")
    if s.workers < 0:
        raise SettingsError(f"--workers must be 0 (one per core) or positive, got {s.workers}")
    if s.process_target_s < 0:
        raise SettingsError(f"--process-target-s must be 0 (fixed batch size) or positive, got {s.process_target_s}")
    for name in ("max_batches", "max_seconds"):
        value = getattr(s, name)
        if value is not None and value <= 0:
            raise SettingsError(f"--{name.replace('_', '-')} must be positive, got {value}")
    for name in ("end_seed", "start_seed"):
        value = getattr(s, name)
        if value is not None and value < 0:
            raise SettingsError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
    if s.metrics not in METRICS_MODES:
        raise SettingsError(f"--metrics {s.metrics!r} is unknown: use cloudwatch or log")
    if s.is_s3 and not s.store[len("s3://"):].split("/", 1)[0]:
        raise SettingsError(f"--store {s.store!r} names no bucket: use s3://BUCKET/PREFIX or a directory")
    if s.alert_topic and not _TOPIC_RE.match(s.alert_topic):
        raise SettingsError(f"--alert-topic {s.alert_topic!r} is not an SNS topic ARN: use arn:aws:sns:REGION:ACCOUNT:NAME")
    needs_aws = s.is_s3 or s.alert_topic or s.metrics == "cloudwatch"
    if needs_aws and not s.region:
        raise SettingsError("no AWS region for the S3 store, alerts or metrics: pass --region us-east-1 or set AWS_REGION")


def replace(s: Settings, **changes) -> Settings:
    return dataclasses.replace(s, **changes)
