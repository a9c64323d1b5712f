"""vopr/config.py: defaults, the example file, precedence, unknown keys and every validation error, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from vopr.config import (
    check_for_deploy,
    ConfigError,
    env_var,
    field_names,
    load,
    parse_overrides,
    validate_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path, monkeypatch):
    """Run each test in an empty directory so a developer's ./vopr.toml cannot leak in."""
    monkeypatch.chdir(tmp_path)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vopr.toml"
    path.write_text(text)
    return path


def _error(**overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load(environ={}, overrides=overrides)
    message = str(info.value)
    assert "\n" not in message, f"errors are one line: {message!r}"
    return message


def test_defaults_are_the_documented_ones():
    cfg = load(environ={})
    assert cfg.source == "defaults"
    assert cfg.as_dict() == {
        "deployment": {
            "name": "vopr",
            "region": "us-east-1",
            "alert_email": "",
            "bucket_prefix": "vopr-simulation-results",
            "log_retention_days": 7,
            "failures_storage_class": "GLACIER",
            "failures_archive_after_days": 90,
            "daily_checkpoint_expiry_days": 30,
        },
        "instance": {"type": "c7g.medium", "spot_max_price": "", "root_volume_gib": 20},
        "simulator": {
            "repo_url": "https://github.com/kimberlitedb/kimberlite.git",
            "git_ref": "main",
            "rust_toolchain": "1.85.0",
            "build_command": "cargo build --release -p kimberlite-sim --bin vopr",
            "command": "target/release/vopr",
            "protocol": "vopr-json",
        },
        "runner": {"batch_size": 1000, "seed_timeout_s": 600, "workers": 0},
    }
    assert (cfg.stack_name, cfg.log_group, cfg.topic_name) == ("vopr-vopr", "/vopr/vopr", "vopr-alerts")
    assert (cfg.no_progress_alarm_name, cfg.failures_alarm_name, cfg.dashboard_name, cfg.instance_name) == (
        "vopr-no-progress",
        "vopr-failures-detected",
        "vopr",
        "vopr-vopr",
    )


def test_the_example_file_synthesizes_but_deploy_wants_a_real_alert_address():
    example = REPO_ROOT / "vopr.example.toml"
    cfg = load(example, environ={})
    validate_config(cfg, require_email=True)
    assert cfg.deployment.alert_email == "you@example.com"
    with pytest.raises(ConfigError, match="deployment.alert_email is still the example's you@example.com"):
        check_for_deploy(cfg)
    check_for_deploy(load(example, environ={}, overrides={"deployment.alert_email": "oncall@example.com"}))
    assert cfg.source == f"defaults < {example}"
    written = {line.split("=")[0].strip() for line in example.read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert written == {name.split(".")[1] for name in field_names()}, "the example documents every field"


def test_precedence_is_defaults_then_file_then_environment_then_overrides(tmp_path):
    path = _toml(tmp_path, '[instance]\ntype = "t4g.small"\nroot_volume_gib = 30\n\n[runner]\nbatch_size = 50\n')
    env = {"VOPR_INSTANCE_TYPE": "m7g.large", "VOPR_RUNNER_BATCH_SIZE": "70"}
    cfg = load(path, environ=env, overrides={"runner.batch_size": "90"})
    assert cfg.instance.root_volume_gib == 30  # file beats default
    assert cfg.instance.type == "m7g.large"  # environment beats file
    assert cfg.runner.batch_size == 90  # override beats environment
    assert cfg.deployment.region == "us-east-1"  # default survives
    assert cfg.source == f"defaults < {path} < $VOPR_INSTANCE_TYPE < $VOPR_RUNNER_BATCH_SIZE < command line"


def test_config_file_comes_from_vopr_config_or_the_working_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('[deployment]\nname = "from-env-path"\n')
    assert load(environ={"VOPR_CONFIG": str(elsewhere)}).deployment.name == "from-env-path"
    _toml(tmp_path, '[deployment]\nname = "from-cwd"\n')
    assert load(environ={}).deployment.name == "from-cwd"


def test_every_field_has_an_environment_variable():
    assert env_var("instance.type") == "VOPR_INSTANCE_TYPE"
    defaults = load(environ={})
    for name in field_names():
        cfg = load(environ={env_var(name): str(defaults.get(name))}, validate=False)
        assert cfg.get(name) == defaults.get(name)
        assert cfg.source == "defaults < $" + env_var(name)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[deployment]\nnmae = "x"\n', "unknown key deployment.nmae; keys of [deployment] are name, region"),
        ('[deploy]\nname = "x"\n', "unknown section [deploy]"),
        ("[deployment\n", "is not valid TOML"),
        ('[runner]\nbatch_size = "many"\n', "runner.batch_size: expected a whole number, got 'many'"),
        ("[runner]\nbatch_size = true\n", "runner.batch_size: expected a whole number"),
        ("[simulator]\ncommand = 5\n", "simulator.command: expected a string"),
    ],
)
def test_file_problems_are_one_line_errors_naming_the_key(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        load(_toml(tmp_path, text), environ={})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_unknown_overrides(tmp_path):
    with pytest.raises(ConfigError, match="not found: create it from vopr.example.toml"):
        load(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="unknown setting instance.size"):
        load(environ={}, overrides={"instance.size": "x"})
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["instance.type"])
    assert parse_overrides(["instance.type=t4g.small", "runner.batch_size=5"]) == {
        "instance.type": "t4g.small",
        "runner.batch_size": "5",
    }
    with pytest.raises(ConfigError, match="expected a whole number, got 'x' \\(from \\$VOPR_RUNNER_WORKERS\\)"):
        load(environ={"VOPR_RUNNER_WORKERS": "x"})


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"deployment.alert_email": "oncall@"}, "deployment.alert_email 'oncall@' is not an email address"),
        ({"deployment.alert_email": "a b@example.com"}, "is not an email address"),
        ({"deployment.region": "us-east-9"}, "deployment.region 'us-east-9' is not an AWS region"),
        ({"instance.type": "c7i.large"}, "instance.type 'c7i.large' is not an ARM64 (Graviton) instance type"),
        ({"instance.type": "t3.micro"}, "is not an ARM64 (Graviton)"),
        ({"instance.type": "g5.xlarge"}, "is not an ARM64 (Graviton)"),
        ({"instance.root_volume_gib": "0"}, "instance.root_volume_gib must be positive, got 0"),
        ({"instance.root_volume_gib": "4"}, "smaller than the Amazon Linux 2023 image"),
        ({"runner.batch_size": "0"}, "runner.batch_size must be positive, got 0"),
        ({"runner.seed_timeout_s": "-5"}, "runner.seed_timeout_s must be positive"),
        ({"runner.workers": "-1"}, "runner.workers must be 0"),
        ({"deployment.failures_archive_after_days": "0"}, "failures_archive_after_days must be a positive number of days"),
        ({"deployment.daily_checkpoint_expiry_days": "-1"}, "daily_checkpoint_expiry_days must be a positive number"),
        ({"instance.spot_max_price": "cheap"}, "instance.spot_max_price 'cheap' is not a price"),
        ({"instance.spot_max_price": "-0.01"}, "is not a price"),
        ({"instance.spot_max_price": "NaN"}, "is not a price"),
        ({"simulator.protocol": "tap"}, "simulator.protocol 'tap' is unknown: use vopr-json or exit-code"),
        ({"simulator.protocol": "exit-code", "simulator.command": "./vopr"}, "has no {seed} placeholder"),
        ({"deployment.name": "Bad_Name"}, "deployment.name 'Bad_Name' is not valid"),
        ({"deployment.log_retention_days": "10"}, "is not a CloudWatch retention"),
        ({"deployment.failures_storage_class": "TAPE"}, "failures_storage_class 'TAPE' is unknown"),
        (
            {"deployment.failures_storage_class": "STANDARD_IA", "deployment.failures_archive_after_days": "10"},
            "is too soon for STANDARD_IA: S3 needs at least 30 days",
        ),
        ({"simulator.repo_url": "https://x/y.git; rm -rf /"}, "simulator.repo_url"),
        ({"simulator.git_ref": "main..dev"}, "simulator.git_ref"),
        ({"simulator.rust_toolchain": "latest"}, "simulator.rust_toolchain"),
    ],
)
def test_validation_errors_name_the_field_and_the_fix(overrides, fragment):
    assert fragment in _error(**overrides)


@pytest.mark.parametrize("itype", ["c7g.medium", "t4g.small", "m7gd.large", "c6gn.xlarge", "r8g.metal-24xl", "a1.large", "x2gd.2xlarge"])
def test_graviton_types_are_accepted(itype):
    assert load(environ={}, overrides={"instance.type": itype}).instance.type == itype


def test_valid_exit_code_command_and_spot_price_pass():
    cfg = load(environ={}, overrides={"simulator.protocol": "exit-code", "simulator.command": "./sim {seed}", "instance.spot_max_price": "0.02"})
    assert (cfg.simulator.protocol, cfg.instance.spot_max_price) == ("exit-code", "0.02")


def test_synth_requires_an_alert_email():
    cfg = load(environ={})
    validate_config(cfg)
    with pytest.raises(ConfigError, match="deployment.alert_email is empty: set it in vopr.toml"):
        validate_config(cfg, require_email=True)


def test_known_regions_match_botocore_without_importing_its_session():
    import botocore.session

    from vopr.config import known_regions

    session = botocore.session.get_session()
    expected = set(session.get_available_regions("ec2")) | set(session.get_available_regions("ec2", "aws-us-gov"))
    assert known_regions() == expected
    assert {"us-east-1", "eu-west-1", "us-gov-west-1"} <= known_regions()
