"""Stop and start the deployment's instance, waiting for the state, and silence the no-progress alarm while stopped.

A persistent spot instance may refuse a start for a while right after a stop; `start` retries that for a bounded time.
"""

from __future__ import annotations

import time
from typing import Callable

from vopr.aws import error_code
from vopr.errors import VoprError

START_RETRY_WINDOW_S = 300
START_RETRY_INTERVAL_S = 10
STATE_WAIT_TIMEOUT_S = 600
STATE_POLL_INTERVAL_S = 5
# Codes EC2 returns while a just-stopped spot instance (or its request) is still settling.
START_RETRYABLE_CODES = ("IncorrectSpotRequestState", "IncorrectInstanceState", "InsufficientInstanceCapacity")


def describe(ec2, instance_id: str) -> dict:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    for reservation in reservations:
        for instance in reservation["Instances"]:
            return instance
    raise VoprError(f"instance {instance_id} is not found: it may have been destroyed; run `vopr deploy`")


def state(ec2, instance_id: str) -> str:
    return describe(ec2, instance_id)["State"]["Name"]


def spot_request(ec2, instance: dict) -> dict | None:
    request_id = instance.get("SpotInstanceRequestId")
    if not request_id:
        return None
    requests = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])["SpotInstanceRequests"]
    return requests[0] if requests else None


def set_alarm_actions(cloudwatch, alarm_name: str, enabled: bool) -> None:
    if not alarm_name:
        return
    if enabled:
        cloudwatch.enable_alarm_actions(AlarmNames=[alarm_name])
    else:
        cloudwatch.disable_alarm_actions(AlarmNames=[alarm_name])


def _wait(ec2, instance_id: str, waiter_name: str, timeout_s: int, poll_s: int) -> None:
    from botocore.exceptions import WaiterError

    waiter = ec2.get_waiter(waiter_name)
    try:
        waiter.wait(
            InstanceIds=[instance_id],
            WaiterConfig={"Delay": poll_s, "MaxAttempts": max(1, timeout_s // max(poll_s, 1))},
        )
    except WaiterError:
        now = state(ec2, instance_id)
        want = waiter_name.removeprefix("instance_")
        raise VoprError(
            f"instance {instance_id} is {now}, not {want}, after {timeout_s} s: check the EC2 console or `vopr status`, then retry"
        ) from None


def stop(aws, dep, wait: bool = True, timeout_s: int = STATE_WAIT_TIMEOUT_S, poll_s: int = STATE_POLL_INTERVAL_S,
         echo: Callable[[str], None] = print) -> str:
    """Disable the no-progress alarm's actions, stop the instance, wait until it is stopped; returns the final state."""
    ec2, cloudwatch = aws.client("ec2"), aws.client("cloudwatch")
    set_alarm_actions(cloudwatch, dep.no_progress_alarm_name, enabled=False)
    echo(f"no-progress alarm {dep.no_progress_alarm_name}: actions disabled while stopped")
    current = state(ec2, dep.instance_id)
    if current in ("stopped", "stopping") and not wait:
        return current
    if current == "stopped":
        echo(f"instance {dep.instance_id} is already stopped")
        return current
    if current in ("terminated", "shutting-down"):
        raise VoprError(f"instance {dep.instance_id} is {current}: nothing to stop; `vopr deploy` recreates it")
    if current != "stopping":
        try:
            ec2.stop_instances(InstanceIds=[dep.instance_id])
        except Exception:
            set_alarm_actions(cloudwatch, dep.no_progress_alarm_name, enabled=True)
            raise
        echo(f"stopping {dep.instance_id} ...")
    if not wait:
        return "stopping"
    _wait(ec2, dep.instance_id, "instance_stopped", timeout_s, poll_s)
    echo(f"instance {dep.instance_id} is stopped (the EBS volume and results are kept; `vopr start` resumes)")
    return "stopped"


def start(aws, dep, wait: bool = True, retry_window_s: int = START_RETRY_WINDOW_S,
          retry_interval_s: int = START_RETRY_INTERVAL_S, timeout_s: int = STATE_WAIT_TIMEOUT_S,
          poll_s: int = STATE_POLL_INTERVAL_S, echo: Callable[[str], None] = print,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str:
    """Start the instance (retrying the spot settling errors up to retry_window_s), wait, then re-enable the alarm."""
    from botocore.exceptions import ClientError

    ec2, cloudwatch = aws.client("ec2"), aws.client("cloudwatch")
    current = state(ec2, dep.instance_id)
    if current in ("terminated", "shutting-down"):
        raise VoprError(f"instance {dep.instance_id} is {current}: it cannot be started; run `vopr deploy` to create a new one")
    if current in ("running", "pending"):
        echo(f"instance {dep.instance_id} is already {current}")
    else:
        deadline = clock() + retry_window_s
        attempt = 0
        while True:
            attempt += 1
            try:
                ec2.start_instances(InstanceIds=[dep.instance_id])
                break
            except ClientError as exc:
                code = error_code(exc)
                if code not in START_RETRYABLE_CODES:
                    raise
                if clock() + retry_interval_s > deadline:
                    raise VoprError(
                        f"EC2 still refuses to start {dep.instance_id} ({code}) after {retry_window_s} s and {attempt} attempts: "
                        f"a persistent spot instance can take a few minutes after a stop, or spot capacity is short; "
                        f"retry `vopr start` later, or try another instance.type"
                    ) from None
                echo(f"EC2 is not ready to start {dep.instance_id} yet ({code}); retrying in {retry_interval_s} s")
                sleep(retry_interval_s)
        echo(f"starting {dep.instance_id} ...")
    if wait:
        _wait(ec2, dep.instance_id, "instance_running", timeout_s, poll_s)
        echo(f"instance {dep.instance_id} is running; the runner resumes from its last checkpoint")
    set_alarm_actions(cloudwatch, dep.no_progress_alarm_name, enabled=True)
    echo(f"no-progress alarm {dep.no_progress_alarm_name}: actions enabled")
    return "running" if wait else "pending"
