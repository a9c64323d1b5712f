"""Load and validate the project's one configuration file, `vopr.toml`.

Precedence: built-in defaults < vopr.toml < VOPR_* environment variables < explicit overrides (CLI flags).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

CONFIG_ENV = "VOPR_CONFIG"
DEFAULT_CONFIG_FILE = "vopr.toml"
PROTOCOLS = ("vopr-json", "exit-code")
REGION_PARTITIONS = ("aws", "aws-us-gov")
STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING")
LOG_RETENTION_DAYS_ALLOWED = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
AMI_MIN_ROOT_VOLUME_GIB = 8
# S3 refuses lifecycle transitions to STANDARD_IA / ONEZONE_IA earlier than this.
INFREQUENT_ACCESS_MIN_DAYS = 30

_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_BUCKET_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,24}$")
_GRAVITON_RE = re.compile(
    r"^(?:a1|[a-z]+[0-9]+[a-z-]*g[a-z-]*)\.(?:nano|micro|small|medium|large|xlarge|[0-9]+xlarge|metal(?:-[0-9]+xl)?)$"
)
_REPO_URL_RE = re.compile(r"^(?:https://|ssh://|git@)[A-Za-z0-9._~:/@%+-]+$")
_GIT_REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")
_TOOLCHAIN_RE = re.compile(r"^(?:stable|beta|nightly|[0-9]+\.[0-9]+(?:\.[0-9]+)?)(?:-[0-9]{4}-[0-9]{2}-[0-9]{2})?$")


class ConfigError(ValueError):
    """A configuration problem, phrased as one line that names the field and the fix."""


@dataclass(frozen=True)
class DeploymentConfig:
    name: str = "vopr"
    region: str = "us-east-1"
    alert_email: str = ""
    bucket_prefix: str = "vopr-simulation-results"
    log_retention_days: int = 7
    failures_storage_class: str = "GLACIER"
    failures_archive_after_days: int = 90
    daily_checkpoint_expiry_days: int = 30


@dataclass(frozen=True)
class InstanceConfig:
    type: str = "c7g.medium"
    spot_max_price: str = ""
    root_volume_gib: int = 20


@dataclass(frozen=True)
class SimulatorConfig:
    repo_url: str = "https://github.com/kimberlitedb/kimberlite.git"
    git_ref: str = "main"
    rust_toolchain: str = "1.85.0"
    build_command: str = "cargo build --release -p kimberlite-sim --bin vopr"
    command: str = "target/release/vopr"
    protocol: str = "vopr-json"


@dataclass(frozen=True)
class RunnerConfig:
    batch_size: int = 1000
    seed_timeout_s: int = 600
    workers: int = 0


@dataclass(frozen=True)
class Config:
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    source: str = "defaults"

    def get(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        return getattr(getattr(self, section), key)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}

    @property
    def log_group(self) -> str:
        return f"/vopr/{self.deployment.name}"

    @property
    def topic_name(self) -> str:
        return f"{self.deployment.name}-alerts"

    @property
    def stack_name(self) -> str:
        return f"vopr-{self.deployment.name}"

    @property
    def instance_name(self) -> str:
        return f"{self.deployment.name}-vopr"

    @property
    def no_progress_alarm_name(self) -> str:
        return f"{self.deployment.name}-no-progress"

    @property
    def failures_alarm_name(self) -> str:
        return f"{self.deployment.name}-failures-detected"

    @property
    def dashboard_name(self) -> str:
        return self.deployment.name


SECTIONS: dict[str, type] = {
    "deployment": DeploymentConfig,
    "instance": InstanceConfig,
    "simulator": SimulatorConfig,
    "runner": RunnerConfig,
}


def field_names() -> list[str]:
    """Every field as `section.key`, in declaration order."""
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def env_var(dotted: str) -> str:
    """The environment variable that overrides a field: `instance.type` -> `VOPR_INSTANCE_TYPE`."""
    return "VOPR_" + dotted.replace(".", "_").upper()


def _coerce(dotted: str, value: Any, origin: str) -> Any:
    section, key = dotted.split(".", 1)
    kind = {f.name: f.type for f in dataclasses.fields(SECTIONS[section])}[key]
    if kind in ("int", int):
        if isinstance(value, bool):
            raise ConfigError(f"{dotted}: expected a whole number, got {value!r} ({origin}); write e.g. {dotted.split('.')[1]} = 1000")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{dotted}: expected a whole number, got {value!r} ({origin}); write e.g. {key} = 1000") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and dotted == "instance.spot_max_price":
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"{dotted}: expected a string, got {value!r} ({origin}); quote it in vopr.toml")
    return value.strip()


def resolve_path(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read: the explicit path, else $VOPR_CONFIG, else ./vopr.toml if it exists."""
    environ = os.environ if environ is None else environ
    if path:
        return Path(path)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: create it from vopr.example.toml or pass --config PATH") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the line it names") from None
    values: dict[str, Any] = {}
    known = set(field_names())
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown section [{section}]; the sections are {', '.join('[' + s + ']' for s in SECTIONS)}")
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if dotted not in known:
                choices = ", ".join(f.name for f in dataclasses.fields(SECTIONS[section]))
                raise ConfigError(f"{path}: unknown key {dotted}; keys of [{section}] are {choices}")
            values[dotted] = _coerce(dotted, value, str(path))
    return values


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn CLI `--set section.key=value` pairs into an overrides mapping."""
    known = set(field_names())
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ConfigError(f"--set {pair!r}: expected section.key=value with a known key, e.g. --set instance.type=c7g.large")
        out[key] = value
    return out


def load(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    validate: bool = True,
) -> Config:
    """Build the effective Config from defaults, file, environment and overrides, then validate it."""
    environ = os.environ if environ is None else environ
    resolved = resolve_path(path, environ)
    values: dict[str, Any] = {}
    sources = ["defaults"]
    if resolved is not None:
        values.update(_read_toml(resolved))
        sources.append(str(resolved))
    for dotted in field_names():
        name = env_var(dotted)
        if name in environ:
            values[dotted] = _coerce(dotted, environ[name], f"from ${name}")
            sources.append(f"${name}")
    for dotted, value in (overrides or {}).items():
        if dotted not in set(field_names()):
            raise ConfigError(f"unknown setting {dotted}; known settings: {', '.join(field_names())}")
        values[dotted] = _coerce(dotted, value, "from the command line")
        sources.append("command line")
    sections = {}
    for section, cls in SECTIONS.items():
        kwargs = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(section + ".")}
        sections[section] = cls(**kwargs)
    cfg = Config(**sections, source=" < ".join(dict.fromkeys(sources)))
    if validate:
        validate_config(cfg)
    return cfg


@functools.lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """AWS commercial and GovCloud regions, read from botocore's bundled endpoints.json (no network, no botocore import)."""
    spec = importlib.util.find_spec("botocore")
    endpoints = json.loads((Path(spec.origin).parent / "data" / "endpoints.json").read_text())
    return frozenset(
        region for partition in endpoints["partitions"] if partition["partition"] in REGION_PARTITIONS for region in partition["regions"]
    )


EXAMPLE_ALERT_EMAIL = "you@example.com"  # vopr.example.toml's placeholder


def check_for_deploy(cfg: Config) -> None:
    """What `vopr deploy` needs beyond a valid config: an alert address that is not the example's placeholder."""
    validate_config(cfg, require_email=True)
    if cfg.deployment.alert_email.lower() == EXAMPLE_ALERT_EMAIL:
        raise ConfigError(f"deployment.alert_email is still the example's {EXAMPLE_ALERT_EMAIL}, which receives no mail: "
                          "set your own address in vopr.toml so alerts reach you")


def validate_config(cfg: Config, require_email: bool = False) -> None:
    """Raise ConfigError with one line naming the first bad field and how to fix it."""
    d, i, s, r = cfg.deployment, cfg.instance, cfg.simulator, cfg.runner
    if not _NAME_RE.match(d.name):
        raise ConfigError(
            f"deployment.name {d.name!r} is not valid: use 1-20 lowercase letters, digits or '-', starting with a letter (e.g. vopr)"
        )
    if d.region not in known_regions():
        raise ConfigError(f"deployment.region {d.region!r} is not an AWS region: use e.g. us-east-1, eu-west-1, ap-southeast-2")
    if d.alert_email and not _EMAIL_RE.match(d.alert_email):
        raise ConfigError(
            f"deployment.alert_email {d.alert_email!r} is not an email address: set it to where alerts go, e.g. oncall@example.com"
        )
    if require_email and not d.alert_email:
        raise ConfigError(
            "deployment.alert_email is empty: set it in vopr.toml ([deployment] alert_email = \"you@example.com\") or VOPR_DEPLOYMENT_ALERT_EMAIL"
        )
    if not _BUCKET_PREFIX_RE.match(d.bucket_prefix):
        raise ConfigError(
            f"deployment.bucket_prefix {d.bucket_prefix!r} is not valid: use 2-25 lowercase letters, digits or '-' (the account and region are appended)"
        )
    if d.log_retention_days not in LOG_RETENTION_DAYS_ALLOWED:
        raise ConfigError(
            f"deployment.log_retention_days {d.log_retention_days} is not a CloudWatch retention: use one of "
            + ", ".join(map(str, LOG_RETENTION_DAYS_ALLOWED))
        )
    if d.failures_storage_class not in STORAGE_CLASSES:
        raise ConfigError(f"deployment.failures_storage_class {d.failures_storage_class!r} is unknown: use one of {', '.join(STORAGE_CLASSES)}")
    for key in ("failures_archive_after_days", "daily_checkpoint_expiry_days"):
        if getattr(d, key) <= 0:
            raise ConfigError(f"deployment.{key} must be a positive number of days, got {getattr(d, key)}")
    min_days = INFREQUENT_ACCESS_MIN_DAYS if d.failures_storage_class in ("STANDARD_IA", "ONEZONE_IA") else 0
    if d.failures_archive_after_days < min_days:
        raise ConfigError(
            f"deployment.failures_archive_after_days {d.failures_archive_after_days} is too soon for {d.failures_storage_class}: "
            f"S3 needs at least {min_days} days, use {min_days} or more"
        )
    if not _GRAVITON_RE.match(i.type):
        raise ConfigError(
            f"instance.type {i.type!r} is not an ARM64 (Graviton) instance type, and the AMI is arm64: use e.g. c7g.medium, t4g.small or m7g.large"
        )
    if i.spot_max_price:
        try:
            price = Decimal(i.spot_max_price)
        except InvalidOperation:
            price = None
        if price is None or not price.is_finite() or price <= 0:
            raise ConfigError(
                f"instance.spot_max_price {i.spot_max_price!r} is not a price: write USD per hour like \"0.02\", or leave it empty for the on-demand cap"
            )
    if i.root_volume_gib <= 0:
        raise ConfigError(f"instance.root_volume_gib must be positive, got {i.root_volume_gib}: use e.g. 20")
    if i.root_volume_gib < AMI_MIN_ROOT_VOLUME_GIB:
        raise ConfigError(
            f"instance.root_volume_gib {i.root_volume_gib} is smaller than the Amazon Linux 2023 image ({AMI_MIN_ROOT_VOLUME_GIB} GiB): use 20 or more for a Rust build"
        )
    if not _REPO_URL_RE.match(s.repo_url):
        raise ConfigError(
            f"simulator.repo_url {s.repo_url!r} is not a plain git URL: use https://host/owner/repo.git or git@host:owner/repo.git (no spaces or shell characters)"
        )
    if not _GIT_REF_RE.match(s.git_ref) or ".." in s.git_ref:
        raise ConfigError(f"simulator.git_ref {s.git_ref!r} is not a branch, tag or commit: use letters, digits, '.', '_', '/', '-' only")
    if not _TOOLCHAIN_RE.match(s.rust_toolchain):
        raise ConfigError(f"simulator.rust_toolchain {s.rust_toolchain!r} is not a toolchain name: use e.g. 1.85.0, stable or nightly-2026-01-01")
    if not s.build_command:
        raise ConfigError("simulator.build_command is empty: set the command that builds the simulator, e.g. cargo build --release --bin vopr")
    if not s.command:
        raise ConfigError("simulator.command is empty: set the simulator binary, e.g. target/release/vopr")
    if s.protocol not in PROTOCOLS:
        raise ConfigError(f"simulator.protocol {s.protocol!r} is unknown: use vopr-json or exit-code")
    if s.protocol == "exit-code" and "{seed}" not in s.command:
        raise ConfigError(
            f"simulator.command {s.command!r} has no {{seed}} placeholder, which the exit-code protocol needs: e.g. \"./vopr {{seed}}\""
        )
    for key in ("batch_size", "seed_timeout_s"):
        if getattr(r, key) <= 0:
            raise ConfigError(f"runner.{key} must be positive, got {getattr(r, key)}")
    if r.workers < 0:
        raise ConfigError(f"runner.workers must be 0 (one per core) or positive, got {r.workers}")
