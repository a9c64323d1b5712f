"""`vopr status`: gather the deployment's state into one dict (also `--json`) and render it on one screen.

Sources: the runner's checkpoint (S3 or a local results directory), EC2, CloudWatch alarms, the SNS subscription.
"""

from __future__ import annotations

import datetime as dt

from vopr import display

STALE_CHECKPOINT_AFTER_S = 600
LAST_HOUR_S = 3600


def seeds_last_hour(samples, total: int | None, now: dt.datetime) -> int | None:
    """Seeds completed in the hour before `now`, from the checkpoint's `[time, iterations]` samples."""
    points = sorted(
        (when, int(n)) for when, n in ((display.parse_time(s[0]), s[1]) for s in samples or [] if len(s) >= 2) if when
    )
    if not points:
        return None
    latest = points[-1][1] if total is None else max(points[-1][1], int(total))
    cutoff = now - dt.timedelta(seconds=LAST_HOUR_S)
    if points[-1][0] < cutoff:
        return 0
    before = [n for when, n in points if when <= cutoff]
    baseline = before[-1] if before else points[0][1]
    return max(0, latest - baseline)


def progress(cp: dict | None, now: dt.datetime) -> dict | None:
    if not cp:
        return None
    totals = cp.get("totals") or {}
    sim = cp.get("simulator") or {}
    updated = display.parse_time(cp.get("updated_at"))
    age = (now - updated).total_seconds() if updated else None
    return {
        "commit": sim.get("commit"),
        "git_ref": sim.get("git_ref"),
        "repo_url": sim.get("repo_url"),
        "protocol": sim.get("protocol"),
        "command": sim.get("command"),
        "next_seed": cp.get("next_seed"),
        "seeds_total": totals.get("iterations"),
        "seeds_last_hour": seeds_last_hour(cp.get("progress"), totals.get("iterations"), now),
        "seeds_per_second": cp.get("seeds_per_second"),
        "failures": totals.get("failures"),
        "signatures": totals.get("signatures"),
        "infra_faults": totals.get("infra_faults"),
        "gaps": totals.get("gaps"),
        "runner_version": cp.get("runner_version"),
        "runner_started_at": cp.get("started_at"),
        "checkpoint_updated_at": cp.get("updated_at"),
        "checkpoint_age_s": None if age is None else round(age, 1),
        "checkpoint_stale": age is None or age > STALE_CHECKPOINT_AFTER_S,
        "host": cp.get("host"),
    }


def instance_info(ec2, instance_id: str, now: dt.datetime) -> dict:
    from vopr import instance as inst

    desc = inst.describe(ec2, instance_id)
    state = desc["State"]["Name"]
    launched = display.parse_time(desc.get("LaunchTime"))
    info = {
        "id": instance_id,
        "state": state,
        "type": desc.get("InstanceType"),
        "availability_zone": (desc.get("Placement") or {}).get("AvailabilityZone"),
        "lifecycle": desc.get("InstanceLifecycle") or "on-demand",
        "launch_time": display.iso(launched),
        "uptime_s": round((now - launched).total_seconds()) if launched and state == "running" else None,
        "state_reason": (desc.get("StateReason") or {}).get("Message") or desc.get("StateTransitionReason") or None,
        "spot_request": None,
    }
    request = inst.spot_request(ec2, desc)
    if request:
        info["spot_request"] = {
            "id": request["SpotInstanceRequestId"],
            "state": request.get("State"),
            "status": (request.get("Status") or {}).get("Code"),
            "type": request.get("Type"),
        }
    info["_raw"] = desc
    return info


def alarms_info(cloudwatch, names: list[str]) -> list[dict]:
    if not names:
        return []
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", [])}
    out = []
    for name in names:
        alarm = found.get(name)
        out.append(
            {
                "name": name,
                "state": alarm["StateValue"] if alarm else "MISSING",
                "actions_enabled": bool(alarm.get("ActionsEnabled")) if alarm else None,
                "reason": alarm.get("StateReason") if alarm else None,
            }
        )
    return out


def subscriptions_info(sns, topic_arn: str) -> dict:
    subs = []
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    for page in pages:
        for sub in page.get("Subscriptions", []):
            arn = sub.get("SubscriptionArn", "")
            subs.append(
                {
                    "protocol": sub.get("Protocol"),
                    "endpoint": sub.get("Endpoint"),
                    "confirmed": arn.startswith("arn:"),
                }
            )
    return {"topic_arn": topic_arn, "subscriptions": subs, "confirmed": any(s["confirmed"] for s in subs)}


def collect(results, dep=None, aws=None, cfg=None, now: dt.datetime | None = None) -> dict:
    """The whole status as JSON-ready data; AWS sections are present only for a deployment."""
    now = now or display.utcnow()
    data: dict = {
        "generated_at": display.iso(now),
        "deployment": dep.deployment_name if dep else None,
        "region": dep.region if dep else None,
        "store": results.url,
        "instance": None,
        "alarms": [],
        "alerts": None,
        "dashboard_url": dep.dashboard_url if dep else None,
        "cost_this_month": None,
        "progress": None,
        "warnings": [],
    }
    cp = results.checkpoint()
    data["progress"] = progress(cp, now)
    if cp and not data["deployment"]:
        data["deployment"] = cp.get("deployment")
    raw_instance = None
    if dep and aws:
        data["instance"] = instance_info(aws.client("ec2"), dep.instance_id, now)
        raw_instance = data["instance"].pop("_raw")
        data["alarms"] = alarms_info(aws.client("cloudwatch"), dep.alarm_names)
        if dep.topic_arn:
            data["alerts"] = subscriptions_info(aws.client("sns"), dep.topic_arn)
        from vopr import spend

        data["cost_this_month"] = spend.estimate(aws, raw_instance, cfg, now)
    data["warnings"] = warnings(data, dep)
    return data


def warnings(data: dict, dep=None) -> list[str]:
    out = []
    inst = data.get("instance")
    prog = data.get("progress")
    stopped = bool(inst and inst["state"] in ("stopped", "stopping"))
    if inst and inst["state"] in ("stopped", "stopping"):
        reason = f" ({inst['state_reason']})" if inst.get("state_reason") else ""
        out.append(f"instance is {inst['state']}{reason}: run `vopr start` to resume testing")
    elif inst and inst["state"] in ("terminated", "shutting-down"):
        out.append(f"instance is {inst['state']}: run `vopr deploy` to create a new one")
    if prog is None and data["store"].startswith("s3://"):
        out.append(
            f"no checkpoint yet in {data['store']}: a new instance writes its first one after the bootstrap "
            f"(clone + build: 35-70 minutes on a c7g.medium); `vopr logs --stream bootstrap` shows how far it got"
        )
    elif prog is None:
        out.append(
            f"no checkpoint yet in {data['store']}: a runner writes its first one about 10 s after it starts (one stopped "
            f"sooner resumes from its own state in .runner/); run `vopr run --store {data['store']}`"
        )
    elif prog["checkpoint_stale"] and not stopped:
        age = display.duration(prog["checkpoint_age_s"]) if prog["checkpoint_age_s"] is not None else "unknown"
        out.append(
            f"last checkpoint is {age} old (stale after {display.duration(STALE_CHECKPOINT_AFTER_S)}): "
            f"the runner is not making progress; check `vopr logs`"
        )
    for alarm in data.get("alarms") or []:
        if alarm["state"] == "MISSING":
            out.append(f"alarm {alarm['name']} does not exist: run `vopr deploy` to restore it")
        elif alarm["state"] == "ALARM" and not stopped:
            out.append(f"alarm {alarm['name']} is in ALARM: {alarm.get('reason') or 'see the CloudWatch console'}")
        if alarm["actions_enabled"] is False and not stopped and dep and alarm["name"] == dep.no_progress_alarm_name:
            if prog is None:
                out.append(f"alarm {alarm['name']} has its actions disabled while the instance bootstraps: "
                           f"the bootstrap enables them once the runner's first seeds are counted")
            else:
                out.append(f"alarm {alarm['name']} has its actions disabled although the instance is not stopped: "
                           f"`vopr start` re-enables them")
    alerts = data.get("alerts")
    if alerts is not None and not alerts["confirmed"]:
        pending = ", ".join(s["endpoint"] or "?" for s in alerts["subscriptions"]) or "no subscriber"
        out.append(
            f"alert email not confirmed ({pending}): click the link in the 'AWS Notification - Subscription Confirmation' "
            f"email; no alert is delivered until then"
        )
    spot = (inst or {}).get("spot_request")
    if spot and spot.get("state") not in ("active", "disabled", None):
        out.append(f"spot request {spot['id']} is {spot['state']} ({spot.get('status')}): see Troubleshooting in docs/VOPR_DEPLOYMENT.md")
    return out


def render(data: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label, value):
        grid.add_row(label, value if value not in (None, "") else "-")

    title = data.get("deployment") or "vopr"
    row("deployment", f"{escape(str(title))}" + (f"  ({data['region']})" if data.get("region") else ""))
    row("store", escape(data["store"]))
    inst = data.get("instance")
    if inst:
        state_style = {"running": "green", "stopped": "yellow", "stopping": "yellow"}.get(inst["state"], "red")
        line = f"{inst['id']}  [{state_style}]{inst['state']}[/{state_style}]  {inst.get('type') or ''} {inst.get('lifecycle')}"
        if inst.get("uptime_s") is not None:
            line += f"  up {display.duration(inst['uptime_s'])}"
        row("instance", line)
        spot = inst.get("spot_request")
        if spot:
            row("spot request", f"{spot['id']}  {spot.get('state')} ({spot.get('status')}, {spot.get('type')})")
    prog = data.get("progress")
    if prog:
        commit = prog.get("commit") or ""
        sim = commit[:12] if commit and commit != "unknown" else f"unknown commit: {prog.get('command') or '?'}"
        if prog.get("git_ref"):
            sim += f" ({prog['git_ref']})"
        row("simulator", escape(sim))
        row("seeds done", f"{display.count(prog['seeds_total'])}  (last hour {display.count(prog['seeds_last_hour'])})")
        row("rate", display.rate(prog.get("seeds_per_second")))
        row("contiguous", f"every seed below {display.count(prog.get('next_seed'))} is done")
        fail_style = "red" if prog.get("failures") else "green"
        row(
            "failures",
            f"[{fail_style}]{display.count(prog.get('failures'))}[/{fail_style}] in "
            f"{display.count(prog.get('signatures'))} distinct signature(s)",
        )
        age = prog.get("checkpoint_age_s")
        stale = prog.get("checkpoint_stale")
        age_text = display.duration(age) + " ago" if age is not None else "unknown"
        row("checkpoint", f"[{'yellow' if stale else 'green'}]{age_text}[/]  ({prog.get('checkpoint_updated_at')})")
    else:
        row("checkpoint", "[yellow]none yet[/yellow]")
    for alarm in data.get("alarms") or []:
        style = {"OK": "green", "ALARM": "red"}.get(alarm["state"], "yellow")
        actions = "" if alarm["actions_enabled"] in (True, None) else "  (actions disabled)"
        row("alarm", f"{escape(alarm['name'])}  [{style}]{alarm['state']}[/{style}]{actions}")
    alerts = data.get("alerts")
    if alerts is not None:
        subs = alerts["subscriptions"]
        text = ", ".join(
            f"{escape(s['endpoint'] or '?')} " + ("[green]confirmed[/green]" if s["confirmed"] else "[yellow]pending confirmation[/yellow]")
            for s in subs
        ) or "[yellow]no subscription[/yellow]"
        row("alert email", text)
    cost = data.get("cost_this_month")
    if cost:
        row("cost (estimate)", f"${cost['total_usd']:.2f} so far this month  [dim]({escape(cost['basis'])})[/dim]")
    console.print(grid)
    if data.get("dashboard_url"):
        console.print(f"[bold]dashboard[/bold]        {escape(data['dashboard_url'])}", soft_wrap=True)
    for warning in data.get("warnings") or []:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
