"""The local deployment file `.vopr/deployment-<name>.json`: the stack outputs `vopr deploy` saved.

Other commands read it to find the instance, bucket, log group, topic and alarms without running Terraform.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from runner.store import atomic_write

from vopr.errors import VoprError

DEPLOYMENT_DIR_ENV = "VOPR_DEPLOYMENT_DIR"
DEFAULT_DEPLOYMENT_DIR = ".vopr"
FILE_SCHEMA = 1
OUTPUT_KEYS = (
    "deployment_name",
    "instance_id",
    "bucket_name",
    "topic_arn",
    "log_group_name",
    "region",
    "dashboard_url",
    "no_progress_alarm_name",
    "failures_alarm_name",
)


@dataclass(frozen=True)
class Deployment:
    deployment_name: str
    region: str
    instance_id: str = ""
    bucket_name: str = ""
    topic_arn: str = ""
    log_group_name: str = ""
    dashboard_url: str = ""
    no_progress_alarm_name: str = ""
    failures_alarm_name: str = ""
    spot_instance_request_id: str = ""
    stack_dir: str = ""
    state_path: str = ""
    engine: str = ""
    saved_at: str = ""

    @property
    def store_url(self) -> str:
        return f"s3://{self.bucket_name}" if self.bucket_name else ""

    @property
    def alarm_names(self) -> list[str]:
        return [n for n in (self.no_progress_alarm_name, self.failures_alarm_name) if n]

    def as_dict(self) -> dict:
        return {"schema": FILE_SCHEMA, **dataclasses.asdict(self)}


def deployment_dir() -> Path:
    return Path(os.environ.get(DEPLOYMENT_DIR_ENV) or DEFAULT_DEPLOYMENT_DIR)


def deployment_path(name: str) -> Path:
    return deployment_dir() / f"deployment-{name}.json"


def from_outputs(outputs: dict, stack_dir: str = "", engine: str = "", state_path: str = "") -> Deployment:
    """A Deployment from `terraform output -json` (values already unwrapped); every contract output is required."""
    missing = [k for k in OUTPUT_KEYS if not outputs.get(k)]
    if missing:
        raise VoprError(
            f"the stack's outputs lack {', '.join(missing)}: the stack and this CLI disagree; re-run `vopr deploy` with a matching checkout"
        )
    values = {k: str(outputs[k]) for k in OUTPUT_KEYS}
    values["spot_instance_request_id"] = str(outputs.get("spot_instance_request_id") or "")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Deployment(**values, stack_dir=str(stack_dir), state_path=str(state_path), engine=engine, saved_at=now)


def save(dep: Deployment) -> Path:
    path = deployment_path(dep.deployment_name)
    atomic_write(path, (json.dumps(dep.as_dict(), indent=2, sort_keys=True) + "\n").encode())
    return path


def load(name: str, required: bool = True) -> Deployment | None:
    """The saved deployment called `name`; raises a one-line VoprError (or returns None) when there is none."""
    path = deployment_path(name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if not required:
            return None
        raise VoprError(
            f"no deployment file {path}: run `vopr deploy` first (from this directory), "
            f"pass --config/--set deployment.name=NAME for another deployment, or --store PATH for local results"
        ) from None
    except (OSError, ValueError) as exc:
        raise VoprError(f"cannot read {path} ({exc}): delete it and run `vopr deploy` to write it again") from None
    fields = {f.name for f in dataclasses.fields(Deployment)}
    values = {k: v for k, v in data.items() if k in fields}
    if not values.get("deployment_name") or not values.get("region"):
        raise VoprError(f"{path} has no deployment_name/region: delete it and run `vopr deploy` to write it again")
    return Deployment(**values)


def remove(name: str) -> bool:
    try:
        deployment_path(name).unlink()
        return True
    except FileNotFoundError:
        return False
