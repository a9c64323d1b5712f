"""After `terraform destroy`: make sure no instance or spot request of the deployment is left running or open.

Spot requests are cancelled first (a persistent request would launch a replacement), then instances terminated.
"""

from __future__ import annotations

from typing import Callable

PROJECT_TAG = "vopr-aws"
OPEN_REQUEST_STATES = ("open", "active", "disabled")
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
TERMINATE_WAIT_S = 600
TERMINATE_POLL_S = 5


def _tag_filters(name: str) -> list[dict]:
    return [
        {"Name": "tag:Project", "Values": [PROJECT_TAG]},
        {"Name": "tag:Deployment", "Values": [name]},
    ]


def leftovers(ec2, name: str, instance_ids: tuple[str, ...] = ()) -> tuple[list[dict], list[dict]]:
    """(open spot requests, live instances) of deployment `name`, found by tags, by the known instance ids, and by
    the spot request ids of any of its instances (EC2 does not copy an instance's tags to its spot request)."""
    from vopr.aws import error_code

    seen: dict[str, dict] = {}
    for page in ec2.get_paginator("describe_instances").paginate(Filters=_tag_filters(name)):
        for reservation in page["Reservations"]:
            for inst in reservation["Instances"]:
                seen[inst["InstanceId"]] = inst
    _describe_into(ec2, seen, instance_ids)
    requests: dict[str, dict] = {}
    tagged = ec2.describe_spot_instance_requests(Filters=_tag_filters(name))["SpotInstanceRequests"]
    for req in tagged:
        requests[req["SpotInstanceRequestId"]] = req
    linked = sorted({i.get("SpotInstanceRequestId") for i in seen.values()} - {None} - set(requests))
    for request_id in linked:
        try:
            for req in ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])["SpotInstanceRequests"]:
                requests[req["SpotInstanceRequestId"]] = req
        except Exception as exc:
            if error_code(exc) != "InvalidSpotInstanceRequestID.NotFound":
                raise
    open_requests = [r for r in requests.values() if r.get("State") in OPEN_REQUEST_STATES]
    _describe_into(ec2, seen, tuple(r.get("InstanceId") for r in open_requests))
    instances = [i for i in seen.values() if i["State"]["Name"] in LIVE_INSTANCE_STATES]
    return open_requests, sorted(instances, key=lambda i: i["InstanceId"])


def _describe_into(ec2, seen: dict, instance_ids) -> None:
    from vopr.aws import error_code

    for instance_id in sorted({i for i in instance_ids if i} - set(seen)):
        try:
            for reservation in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]:
                for inst in reservation["Instances"]:
                    seen[inst["InstanceId"]] = inst
        except Exception as exc:
            if error_code(exc) not in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                raise


def sweep(ec2, name: str, instance_ids: tuple[str, ...] = (), echo: Callable[[str], None] = print,
          wait: bool = True) -> dict:
    """Cancel the deployment's open spot requests, then terminate its live instances; returns what was done."""
    requests, instances = leftovers(ec2, name, instance_ids)
    request_ids = [r["SpotInstanceRequestId"] for r in requests]
    instance_ids_live = [i["InstanceId"] for i in instances]
    if request_ids:
        echo(f"cancelling spot request(s) left open: {', '.join(request_ids)}")
        ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=request_ids)
    if instance_ids_live:
        echo(f"terminating instance(s) left behind: {', '.join(instance_ids_live)}")
        ec2.terminate_instances(InstanceIds=instance_ids_live)
        if wait:
            ec2.get_waiter("instance_terminated").wait(
                InstanceIds=instance_ids_live,
                WaiterConfig={"Delay": TERMINATE_POLL_S, "MaxAttempts": TERMINATE_WAIT_S // TERMINATE_POLL_S},
            )
    remaining_requests, remaining_instances = leftovers(ec2, name, tuple(instance_ids_live))
    return {
        "cancelled_spot_requests": request_ids,
        "terminated_instances": instance_ids_live,
        "still_open_spot_requests": [r["SpotInstanceRequestId"] for r in remaining_requests],
        "still_live_instances": [i["InstanceId"] for i in remaining_instances if i["State"]["Name"] != "shutting-down"],
    }
