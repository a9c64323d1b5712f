"""`vopr ssh` up to the exec: the session command, the running-instance check and the missing-tool errors."""

from __future__ import annotations

import os

import pytest

from vopr import ssh
from vopr.errors import VoprError


@pytest.fixture
def tools(fake_bin, monkeypatch):
    """`aws` and `session-manager-plugin` on PATH (never run: exec is intercepted)."""
    fake_bin.script("aws", "#!/bin/sh\nexit 99\n")
    fake_bin.script("session-manager-plugin", "#!/bin/sh\nexit 99\n")
    monkeypatch.setenv("PATH", str(fake_bin.dir))
    return fake_bin


@pytest.fixture
def exec_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execvpe", lambda file, argv, env: calls.append((file, argv, env)))
    return calls


def test_ssh_execs_aws_ssm_start_session(deployed, tools, exec_calls, invoke, tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    result = invoke("ssh", "--profile", "ops")
    assert result.exit_code == 0, result.output
    [(file, argv, env)] = exec_calls
    assert file == str(tools.dir / "aws")
    assert argv == [str(tools.dir / "aws"), "ssm", "start-session", "--target", deployed.instance_id,
                    "--region", "us-east-1", "--profile", "ops"]
    assert env["AWS_PROFILE"] == "ops" and env["AWS_REGION"] == "us-east-1"
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_ssh_command_uses_the_interactive_command_document(deployed, tools, exec_calls, invoke):
    result = invoke("ssh", "--command", "sudo tail -f /var/log/vopr/runner.log")
    assert result.exit_code == 0, result.output
    argv = exec_calls[0][1]
    assert argv[argv.index("--document-name") + 1] == "AWS-StartInteractiveCommand"
    assert argv[argv.index("--parameters") + 1] == "command=sudo tail -f /var/log/vopr/runner.log"


def test_ssh_missing_plugin_names_the_install(deployed, fake_bin, exec_calls, monkeypatch, invoke):
    fake_bin.script("aws", "#!/bin/sh\nexit 99\n")
    monkeypatch.setenv("PATH", str(fake_bin.dir))
    result = invoke("ssh")
    assert result.exit_code == 1
    assert exec_calls == []
    line = result.stderr.strip()
    assert "\n" not in line
    assert "session-manager-plugin" in line and "session-manager-working-with-install-plugin" in line


def test_ssh_missing_aws_cli_names_the_install(deployed, fake_bin, exec_calls, monkeypatch, invoke):
    fake_bin.script("session-manager-plugin", "#!/bin/sh\nexit 99\n")
    monkeypatch.setenv("PATH", str(fake_bin.dir))
    result = invoke("ssh")
    assert result.exit_code == 1 and exec_calls == []
    assert "AWS CLI" in result.stderr and "getting-started-install" in result.stderr


def test_ssh_to_a_stopped_instance_says_start_it(deployed, tools, exec_calls, invoke):
    deployed.ec2.stop_instances(InstanceIds=[deployed.instance_id])
    result = invoke("ssh")
    assert result.exit_code == 1 and exec_calls == []
    assert f"instance {deployed.instance_id} is stopped" in result.stderr and "vopr start" in result.stderr


def test_find_tools_checks_both():
    with pytest.raises(VoprError, match="session-manager-plugin"):
        ssh.find_tools(lambda name: "/x/aws" if name == "aws" else None)
    assert ssh.find_tools(lambda name: f"/x/{name}") == "/x/aws"
