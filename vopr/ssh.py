"""`vopr ssh`: a shell on the instance through SSM Session Manager (`aws ssm start-session`), no inbound port.

Checks the instance is running and both the AWS CLI and the session-manager-plugin are installed, then execs.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Callable

from vopr.errors import VoprError

PLUGIN = "session-manager-plugin"
PLUGIN_INSTALL_HINT = (
    "install it: https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html "
    "(macOS: `brew install --cask session-manager-plugin`)"
)
AWS_CLI_INSTALL_HINT = "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"


def find_tools(which: Callable[[str], str | None] | None = None) -> str:
    """Path of the `aws` CLI; raises a one-line VoprError with the install hint when it or the plugin is missing."""
    which = which or shutil.which
    aws_cli = which("aws")
    if not aws_cli:
        raise VoprError(f"the AWS CLI (`aws`) is not on PATH, and `vopr ssh` runs `aws ssm start-session`: {AWS_CLI_INSTALL_HINT}")
    if not which(PLUGIN):
        raise VoprError(f"the Session Manager plugin (`{PLUGIN}`) is not on PATH: {PLUGIN_INSTALL_HINT}")
    return aws_cli


def session_argv(aws_cli: str, instance_id: str, region: str | None, profile: str | None,
                 command: str | None = None) -> list[str]:
    argv = [aws_cli, "ssm", "start-session", "--target", instance_id]
    if command:
        argv += ["--document-name", "AWS-StartInteractiveCommand", "--parameters", f"command={command}"]
    if region:
        argv += ["--region", region]
    if profile:
        argv += ["--profile", profile]
    return argv


def check_running(ec2, instance_id: str) -> None:
    from vopr import instance

    current = instance.state(ec2, instance_id)
    if current != "running":
        hint = "run `vopr start` first" if current in ("stopped", "stopping") else "check `vopr status`"
        raise VoprError(f"instance {instance_id} is {current}, so there is no shell to open: {hint}")


def ssh(aws, dep, command: str | None = None, which: Callable[[str], str | None] | None = None,
        execvpe: Callable | None = None) -> None:
    """Replace this process with the Session Manager session (returns only if execvpe is a test double)."""
    execvpe = execvpe or os.execvpe
    aws_cli = find_tools(which)
    check_running(aws.client("ec2"), dep.instance_id)
    argv = session_argv(aws_cli, dep.instance_id, aws.region, aws.profile, command)
    sys.stdout.flush()
    sys.stderr.flush()
    execvpe(aws_cli, argv, aws.env())
