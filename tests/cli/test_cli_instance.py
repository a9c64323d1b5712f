"""`vopr stop` / `vopr start` against moto: the instance state, the no-progress alarm's actions, spot start retries."""

from __future__ import annotations

import pytest
from botocore.awsrequest import AWSResponse

from vopr import instance
from vopr.aws import Aws
from vopr.errors import VoprError


def _state(res) -> str:
    return res.ec2.describe_instances(InstanceIds=[res.instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _actions_enabled(res, name: str) -> bool:
    return res.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ActionsEnabled"]


def test_stop_then_start_waits_and_toggles_the_no_progress_alarm(deployed, invoke):
    result = invoke("stop")
    assert result.exit_code == 0, result.output
    assert _state(deployed) == "stopped"
    assert _actions_enabled(deployed, "vopr-no-progress") is False
    assert _actions_enabled(deployed, "vopr-failures-detected") is True
    assert "is stopped" in result.stdout and "actions disabled" in result.stdout

    result = invoke("start")
    assert result.exit_code == 0, result.output
    assert _state(deployed) == "running"
    assert _actions_enabled(deployed, "vopr-no-progress") is True
    assert "is running" in result.stdout and "actions enabled" in result.stdout


def test_stop_when_already_stopped_still_silences_the_alarm(deployed, invoke):
    deployed.ec2.stop_instances(InstanceIds=[deployed.instance_id])
    result = invoke("stop")
    assert result.exit_code == 0, result.output
    assert "already stopped" in result.stdout
    assert _actions_enabled(deployed, "vopr-no-progress") is False


def _refuse_starts(client, times: int | None, code: str = "IncorrectSpotRequestState"):
    """EC2's answer right after a spot stop, which moto cannot produce: the first `times` StartInstances fail."""
    calls = {"n": 0}

    def handler(**kwargs):
        calls["n"] += 1
        if times is None or calls["n"] <= times:
            body = (
                f'<?xml version="1.0"?><Response><Errors><Error><Code>{code}</Code><Message>Request sir-x is in state '
                f'disabled</Message></Error></Errors><RequestID>r</RequestID></Response>'
            ).encode()
            response = AWSResponse("https://ec2", 400, {}, None)
            response._content = body
            return response, {"Error": {"Code": code, "Message": "Request sir-x is in state disabled"},
                              "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    client.meta.events.register("before-call.ec2.StartInstances", handler)
    return calls


def test_start_retries_while_the_spot_request_settles(deployed):
    deployed.ec2.stop_instances(InstanceIds=[deployed.instance_id])
    aws = Aws(region="us-east-1")
    calls = _refuse_starts(aws.client("ec2"), times=2)
    slept, lines = [], []
    state = instance.start(aws, deployed.dep, retry_window_s=60, retry_interval_s=10, echo=lines.append,
                           sleep=slept.append, clock=lambda: sum(slept))
    assert state == "running"
    assert calls["n"] == 3
    assert slept == [10, 10]
    assert _state(deployed) == "running"
    assert any("IncorrectSpotRequestState" in l and "retrying" in l for l in lines)
    assert _actions_enabled(deployed, "vopr-no-progress") is True


def test_start_gives_up_after_the_retry_window(deployed):
    deployed.ec2.stop_instances(InstanceIds=[deployed.instance_id])
    deployed.cw.disable_alarm_actions(AlarmNames=["vopr-no-progress"])
    aws = Aws(region="us-east-1")
    calls = _refuse_starts(aws.client("ec2"), times=None)
    slept: list[float] = []
    with pytest.raises(VoprError) as err:
        instance.start(aws, deployed.dep, retry_window_s=30, retry_interval_s=10, echo=lambda _: None,
                       sleep=slept.append, clock=lambda: sum(slept))
    assert "still refuses to start" in str(err.value) and "after 30 s" in str(err.value)
    assert calls["n"] == 4 and sum(slept) == 30
    assert _state(deployed) == "stopped"
    assert _actions_enabled(deployed, "vopr-no-progress") is False


def test_start_does_not_retry_other_errors(deployed):
    deployed.ec2.stop_instances(InstanceIds=[deployed.instance_id])
    aws = Aws(region="us-east-1")
    calls = _refuse_starts(aws.client("ec2"), times=None, code="UnauthorizedOperation")
    with pytest.raises(Exception) as err:
        instance.start(aws, deployed.dep, echo=lambda _: None, sleep=lambda _: None)
    assert calls["n"] == 1
    from vopr.errors import one_line

    message, code = one_line(err.value)
    assert "denied StartInstances" in message and code == 1


def test_start_on_a_terminated_instance_says_redeploy(deployed, invoke):
    deployed.ec2.terminate_instances(InstanceIds=[deployed.instance_id])
    result = invoke("start")
    assert result.exit_code == 1
    assert "vopr deploy" in result.stderr and "Traceback" not in result.output


def test_stop_without_a_deployment_file_is_one_line(aws, workdir, invoke):
    result = invoke("stop")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "no deployment file .vopr/deployment-vopr.json" in result.stderr and "vopr deploy" in result.stderr


def test_region_flag_is_honoured(deployed, invoke):
    result = invoke("stop", "--region", "eu-west-1")
    assert result.exit_code == 1
    assert "not found" in result.stderr
    assert _state(deployed) == "running"
