"""Estimate what the deployment has cost so far this month, for `vopr status`.

Running hours this month (from the instance's launch time and state) x the hourly price (the latest spot price from
EC2's price history, else vopr.cost's table) plus the public IPv4 charge, plus vopr.cost's fixed monthly items prorated.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from vopr import display

_STOP_TIME_RE = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")
PER_RUNNING_HOUR_SERVICES = ("EC2", "VPC")


def month_start(now: dt.datetime) -> dt.datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def hours_in_month(now: dt.datetime) -> float:
    return calendar.monthrange(now.year, now.month)[1] * 24.0


def stopped_at(instance: dict) -> dt.datetime | None:
    """When a stopped instance stopped, from `StateTransitionReason` ("User initiated (2026-12-03 18:30:29 GMT)")."""
    match = _STOP_TIME_RE.search(instance.get("StateTransitionReason") or "")
    if not match:
        return None
    return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)


def running_hours_this_month(instance: dict, now: dt.datetime) -> float:
    """Hours since the later of the last start and the month's start, up to now (running) or the stop time."""
    state = instance["State"]["Name"]
    launched = display.parse_time(instance.get("LaunchTime"))
    if launched is None:
        return 0.0
    begin = max(launched, month_start(now))
    if state in ("pending", "running"):
        end = now
    elif state in ("stopping", "stopped", "shutting-down", "terminated"):
        end = stopped_at(instance) or begin
    else:
        end = begin
    return max(0.0, (end - begin).total_seconds() / 3600)


def spot_price(ec2, instance_type: str, availability_zone: str | None, now: dt.datetime) -> float | None:
    """The latest Linux spot price for this type (in this AZ when known), from EC2's price history."""
    kwargs = {"InstanceTypes": [instance_type], "ProductDescriptions": ["Linux/UNIX"], "StartTime": now, "MaxResults": 50}
    if availability_zone:
        kwargs["AvailabilityZone"] = availability_zone
    history = ec2.describe_spot_price_history(**kwargs).get("SpotPriceHistory", [])
    prices = [float(h["SpotPrice"]) for h in history if h.get("SpotPrice")]
    return min(prices) if prices else None


def _usd_per_hour(price: float) -> str:
    return f"${price:.4f}" if price >= 0.0001 or price == 0 else f"${price:g}"


def estimate(aws, instance: dict | None, cfg, now: dt.datetime) -> dict | None:
    """The month-to-date estimate as JSON-ready data, or None without an instance."""
    if instance is None:
        return None
    from vopr import cost

    itype = instance.get("InstanceType") or cfg.instance.type
    lifecycle = instance.get("InstanceLifecycle") or "on-demand"
    price, source = None, ""
    if lifecycle == "spot":
        price = spot_price(aws.client("ec2"), itype, (instance.get("Placement") or {}).get("AvailabilityZone"), now)
        source = "EC2 spot price history"
    if price is None:
        table = cost.SPOT_USD_PER_HOUR.get(itype) if lifecycle == "spot" else None
        price = table if table is not None else cost.on_demand_usd_per_hour(itype)
        source = "vopr.cost table" if price is not None else "no price data"
        price = price or 0.0
    ipv4 = cost.PRICES["public_ipv4_usd_per_hour"]
    hours = running_hours_this_month(instance, now)
    monthly = cost.estimate(cfg)
    fixed_monthly = sum(
        line.monthly_usd for line in monthly.lines if line.monthly_usd is not None and line.service not in PER_RUNNING_HOUR_SERVICES
    )
    elapsed_fraction = (now - month_start(now)).total_seconds() / 3600 / hours_in_month(now)
    running_usd = hours * (price + ipv4)
    fixed_usd = fixed_monthly * elapsed_fraction
    return {
        "estimate": True,
        "total_usd": round(running_usd + fixed_usd, 2),
        "running_hours": round(hours, 1),
        "hourly_price_usd": round(price, 5),
        "price_source": source,
        "public_ipv4_usd_per_hour": ipv4,
        "fixed_monthly_usd": round(fixed_monthly, 2),
        "fixed_so_far_usd": round(fixed_usd, 2),
        "basis": (
            f"{hours:.1f} h since the last start x {_usd_per_hour(price)}/h ({source}) + IPv4, "
            f"+ ${fixed_monthly:.2f}/month of disk and monitoring prorated"
        ),
    }
