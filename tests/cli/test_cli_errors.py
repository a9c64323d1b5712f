"""Bad input and AWS failures: one `error:` line naming the problem and the fix, a non-zero exit, no traceback,
no credentials in the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vopr.cli import app
from vopr.errors import one_line, redact

VOPR = str(Path(sys.executable).with_name("vopr"))
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _run(args, cwd, env):
    return subprocess.run([VOPR, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _assert_one_line(proc, code: int, needle: str):
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert SECRET not in proc.stderr + proc.stdout


def test_pretty_exceptions_never_show_locals():
    assert app.pretty_exceptions_show_locals is False


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("[deployment]\nname = 'Bad Name'\n", "deployment.name 'Bad Name' is not valid"),
        ("[deployment\n", "is not valid TOML"),
        ("[deployment]\nregion = 'mars-1'\n", "deployment.region 'mars-1' is not an AWS region"),
        ("[runner]\nbatch_size = 'lots'\n", "runner.batch_size: expected a whole number"),
    ],
)
def test_bad_config_is_one_line(tmp_path, toml, needle):
    (tmp_path / "vopr.toml").write_text(toml)
    _assert_one_line(_run(["status"], tmp_path, dict(os.environ)), 2, needle)


def test_unknown_command_and_bad_option_are_usage_errors(tmp_path):
    proc = _run(["stauts"], tmp_path, dict(os.environ))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "No such command" in proc.stderr
    proc = _run(["logs", "--stream", "everything"], tmp_path, dict(os.environ))
    assert proc.returncode == 2 and "--stream 'everything' is unknown" in proc.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["failures", "show", "notanumber", "--store", "."], "Invalid value for 'SEED'"),
        (["run", "--max-seconds", "abc"], "Invalid value for '--max-seconds'"),
        (["reproduce"], "Missing argument 'SEED': see `vopr reproduce --help`"),
        (["status", "--bogus"], "No such option: --bogus: see `vopr status --help`"),
    ],
)
def test_bad_arguments_to_a_command_are_one_line(tmp_path, args, needle):
    _assert_one_line(_run(args, tmp_path, dict(os.environ)), 2, needle)


def test_no_credentials(deployed, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]})
    _assert_one_line(_run(["stop"], deployed.path.parent.parent, env), 1, "no AWS credentials found: run `aws configure`")


def test_unknown_profile(deployed, tmp_path):
    env = dict(os.environ, AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    _assert_one_line(_run(["status", "--profile", "nope"], deployed.path.parent.parent, env), 1,
                     "The config profile (nope) could not be found: check --profile / AWS_PROFILE")


def test_unreachable_endpoint_never_prints_the_secret(deployed, tmp_path):
    env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")
    proc = _run(["status"], deployed.path.parent.parent, env)
    _assert_one_line(proc, 1, "Could not connect to the endpoint URL")
    assert "check the network (and AWS_ENDPOINT_URL if set), then retry" in proc.stderr
    env["HOME"] = str(tmp_path)
    proc = _run(["stop"], deployed.path.parent.parent, env)
    _assert_one_line(proc, 1, "cannot reach AWS (AWS_ENDPOINT_URL=http://127.0.0.1:9)")


def test_rejected_credentials_are_named(deployed):
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": "InvalidClientTokenId", "Message": f"The security token {SECRET} is invalid."}},
                      "DescribeInstances")
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET
    try:
        message, code = one_line(exc)
    finally:
        os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    assert code == 1
    assert message == "AWS rejected the credentials (InvalidClientTokenId): check AWS_PROFILE / --profile or your access keys"


def test_redact_removes_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert SECRET not in redact(f"failed with key {SECRET}")
    assert redact("aws_secret_access_key = abcdEFGH1234") == "aws_secret_access_key = ****"
    assert redact("AWS_SESSION_TOKEN=xyz123456") == "AWS_SESSION_TOKEN=****"


def test_a_malformed_deployment_file_is_one_line(aws, workdir, invoke):
    (workdir / ".vopr").mkdir()
    (workdir / ".vopr" / "deployment-vopr.json").write_text("{broken")
    result = invoke("status")
    assert result.exit_code == 1
    assert "cannot read .vopr/deployment-vopr.json" in result.stderr and "run `vopr deploy`" in result.stderr
