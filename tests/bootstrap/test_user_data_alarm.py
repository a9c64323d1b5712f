"""The bootstrap and the no-progress alarm: silenced first, armed once seeds are counted, re-armed on failure.

Runs the rendered script in the sandbox; the alarm lives in moto and the `aws` shim plays CloudWatch's evaluation
(the alarm turns OK once vopr-runner.service is active, after $SANDBOX_ALARM_OK_AFTER polls).
"""

from __future__ import annotations

import re

import pytest

from bootstrap_sandbox import INSTANCE_ID, REGION
from stacks import user_data

UNIT = "vopr-runner.service"
ALARM = "vopr-no-progress"
RESUME = "/var/lib/cloud/scripts/per-boot/vopr-bootstrap.sh"
BACKOFF_S = ["5", "15", "45", "135"]


def cloudwatch(calls: list[dict]) -> list[str]:
    """The `aws cloudwatch` actions in the order they ran."""
    return [c["argv"][1] for c in calls if c["cmd"] == "aws" and c["argv"][0] == "cloudwatch"]


def index(calls: list[dict], predicate) -> list[int]:
    return [i for i, c in enumerate(calls) if predicate(c)]


def is_cw(action):
    return lambda c: c["cmd"] == "aws" and c["argv"][:2] == ["cloudwatch", action]


def sleeps(box) -> list[str]:
    return [c["argv"][0] for c in box.calls("sleep")]


@pytest.fixture
def fewer_polls(monkeypatch):
    """Render with 3 polls instead of 40: the same loop, fewer shim processes."""
    monkeypatch.setattr(user_data, "ALARM_POLLS", 3)


def test_fresh_boot_silences_the_alarm_first_and_arms_it_once_seeds_are_counted(booted_once):
    box = booted_once.box
    calls = box.calls()
    (disable,) = index(calls, is_cw("disable-alarm-actions"))
    first_aws = min(index(calls, lambda c: c["cmd"] in ("aws", "dnf")))
    build = index(calls, lambda c: c["cmd"] == "cargo" and c["argv"][:1] == ["build"])[0]
    restart = index(calls, lambda c: c["cmd"] == "systemctl" and c["argv"] == ["restart", UNIT])[0]
    enable_unit = index(calls, lambda c: c["cmd"] == "systemctl" and c["argv"] == ["enable", UNIT])[0]
    polls = index(calls, is_cw("describe-alarms"))
    (enable,) = index(calls, is_cw("enable-alarm-actions"))
    assert disable == first_aws < build, "the first AWS call, before any package or build"
    assert enable_unit < restart < polls[0] and polls[-1] < enable, "armed only after the runner was started"
    assert cloudwatch(calls) == ["disable-alarm-actions", "describe-alarms", "describe-alarms", "enable-alarm-actions"]
    assert sleeps(box) == ["30"], "polled every 30 s until CloudWatch counted the runner's seeds"
    for c in calls:
        if c["cmd"] == "aws" and c["argv"][0] == "cloudwatch":
            assert c["argv"][c["argv"].index("--region") + 1] == REGION
            assert c["argv"][c["argv"].index("--alarm-names") + 1] == ALARM
    assert booted_once.alarm["ActionsEnabled"] is True and booted_once.alarm["StateValue"] == "OK"
    assert booted_once.alerts == []
    log = box.log()
    assert log.index("step alarm-on") < log.index("vopr-no-progress: enable-alarm-actions ok") < log.index("bootstrap complete")
    assert not box.path(RESUME).exists()


def test_a_runner_that_counts_no_seeds_is_armed_from_ok_so_the_next_evaluation_emails(fewer_polls, sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_ALARM_OK_AFTER="never")
    assert result.returncode == 0, box.log()[-3000:]
    assert cloudwatch(box.calls()) == ["disable-alarm-actions", *["describe-alarms"] * 3,
                                       "disable-alarm-actions", "set-alarm-state", "enable-alarm-actions"]
    assert sleeps(box) == ["30"] * 3
    (set_state,) = [c["argv"] for c in box.calls("aws") if c["argv"][1:2] == ["set-alarm-state"]]
    assert set_state[set_state.index("--state-value") + 1] == "OK"
    alarm = aws_world.alarm()
    assert (alarm["StateValue"], alarm["StateReason"], alarm["ActionsEnabled"]) == ("OK", "vopr bootstrap: no seeds yet", True)
    assert f"{ALARM} still ALARM: set OK, so it emails if no seeds come" in box.log()
    assert aws_world.messages() == [], "CloudWatch itself emails ALARM at its next evaluation"


def test_failing_cloudwatch_calls_are_retried_with_backoff(sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_CW_FAIL="2")
    assert result.returncode == 0, box.log()[-3000:]
    assert cloudwatch(box.calls())[:3] == ["disable-alarm-actions"] * 3
    assert sleeps(box)[:2] == ["5", "15"]
    log = box.log()
    assert "disable-alarm-actions failed, retry in 5s" in log and "disable-alarm-actions failed, retry in 15s" in log
    assert "An error occurred (AccessDenied) when calling the DisableAlarmActions operation" in log
    assert aws_world.alarm()["ActionsEnabled"] is True
    assert aws_world.messages() == []


def test_an_alarm_that_cannot_be_re_armed_is_reported_and_does_not_fail_the_bootstrap(fewer_polls, sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_CW_FAIL="always")
    assert result.returncode == 0, box.log()[-3000:]
    assert UNIT in box.systemd()["enabled"] and UNIT in box.systemd()["active"]
    tries = cloudwatch(box.calls())
    assert [tries.count(a) for a in ("disable-alarm-actions", "set-alarm-state", "enable-alarm-actions")] == [10, 5, 5]
    assert sleeps(box) == BACKOFF_S + ["30"] * 3 + BACKOFF_S * 3, "5 tries over 200 s for each call"
    assert f"{ALARM}: enable-alarm-actions failed 5 times" in box.log()
    (message,) = aws_world.messages()
    assert message["Subject"] == f"VOPR alarm left silenced: vopr {INSTANCE_ID}"
    assert f"could not re-arm the no-progress alarm {ALARM}" in message["Message"]
    assert "Run vopr start." in message["Message"]
    assert aws_world.alarm()["ActionsEnabled"] is False
    assert not box.path(RESUME).exists(), "the bootstrap itself succeeded"


def test_a_failed_build_re_enables_the_alarm_and_says_so(sandbox, aws_world):
    box, script = sandbox()
    assert box.run(script, SANDBOX_FAIL="build").returncode == 101
    calls = box.calls()
    build = index(calls, lambda c: c["cmd"] == "cargo" and c["argv"][:1] == ["build"])[0]
    publish = index(calls, lambda c: c["cmd"] == "aws" and c["argv"][:2] == ["sns", "publish"])[0]
    assert index(calls, is_cw("disable-alarm-actions"))[0] < build < index(calls, is_cw("enable-alarm-actions"))[0] < publish
    assert cloudwatch(calls) == ["disable-alarm-actions", "enable-alarm-actions"]
    assert aws_world.alarm()["ActionsEnabled"] is True
    (message,) = aws_world.messages()
    assert f"Alarm {ALARM} is armed again." in message["Message"] and "failed in step 'build'" in message["Message"]


def test_a_failing_alarm_call_does_not_hide_a_failed_build(sandbox, aws_world):
    box, script = sandbox()
    assert box.run(script, SANDBOX_FAIL="build", SANDBOX_CW_FAIL="always").returncode == 101
    assert cloudwatch(box.calls()) == ["disable-alarm-actions"] * 5 + ["enable-alarm-actions"] * 5
    (message,) = aws_world.messages()
    assert message["Subject"] == f"VOPR bootstrap failed: vopr {INSTANCE_ID}"
    assert f"Alarm {ALARM} could NOT be re-armed: run vopr start." in message["Message"]
    assert aws_world.alarm()["ActionsEnabled"] is False


def test_a_stop_during_the_build_leaves_the_alarm_silenced_and_the_next_boot_arms_it(sandbox, aws_world):
    box, script = sandbox()
    result = box.run(script, SANDBOX_FAIL="build-signal")
    assert result.returncode == 143
    assert cloudwatch(box.calls()) == ["disable-alarm-actions"], "a deliberate `vopr stop` must stay silent"
    assert not [c for c in box.calls("systemctl") if UNIT in c["argv"]]
    assert re.search(r"interrupted in step build: the next boot resumes; vopr-no-progress stays silenced", box.log())
    assert "FAILED" not in box.log()
    assert aws_world.messages() == [] and aws_world.alarm()["ActionsEnabled"] is False
    assert box.path(RESUME).read_text() == script

    aws_world.cloudwatch.enable_alarm_actions(AlarmNames=[ALARM])  # `vopr start` enables the actions
    result = box.run(None)
    assert result.returncode == 0, box.log()[-3000:]
    calls = box.calls()
    assert index(calls, is_cw("disable-alarm-actions"))[0] < index(calls, lambda c: c["cmd"] == "cargo")[0]
    assert cloudwatch(calls)[0] == "disable-alarm-actions" and cloudwatch(calls)[-1] == "enable-alarm-actions"
    assert aws_world.alarm()["ActionsEnabled"] is True and aws_world.alarm()["StateValue"] == "OK"
    assert aws_world.messages() == []
    assert not box.path(RESUME).exists()


def test_a_rerun_on_a_healthy_instance_arms_the_alarm_at_once(sandbox, aws_world):
    box, script = sandbox()
    assert box.run(script).returncode == 0
    result = box.run(script)
    assert result.returncode == 0, box.log()[-3000:]
    assert cloudwatch(box.calls()) == ["disable-alarm-actions", "describe-alarms", "enable-alarm-actions"]
    assert sleeps(box) == [], "the alarm is already OK: the runner kept counting seeds"
    assert aws_world.alarm()["ActionsEnabled"] is True
