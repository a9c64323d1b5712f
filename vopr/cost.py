"""Estimate what a deployment costs per month, resource by resource, from its Config alone (no AWS calls).

All prices and usage assumptions live in PRICES / USAGE below, with where they came from; `estimate()` applies them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal

from vopr.config import Config

HOURS_PER_MONTH = 730
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60

# us-east-1 list prices in USD, as published on the AWS pricing pages (EC2 on-demand, EBS, VPC public IPv4,
# CloudWatch, S3, SNS) in mid-2025. Spot prices move hourly; check yours with
# `aws ec2 describe-spot-price-history --instance-types c7g.medium --product-descriptions Linux/UNIX`.
PRICES_AS_OF = "2025-06, us-east-1 list prices"
PRICES = {
    "public_ipv4_usd_per_hour": 0.005,
    "ebs_gp3_usd_per_gib_month": 0.08,
    "logs_ingest_usd_per_gb": 0.50,
    "logs_storage_usd_per_gb_month": 0.03,
    "custom_metric_usd_per_month": 0.30,
    "put_metric_data_usd_per_1000_requests": 0.01,
    "standard_alarm_usd_per_month": 0.10,
    "dashboard_usd_per_month": 3.00,
    "s3_standard_usd_per_gb_month": 0.023,
    "s3_put_usd_per_1000_requests": 0.005,
    "sns_email_usd_per_100000": 2.00,
}
# On-demand USD/hour of each Graviton family's `.medium` (1 vCPU); other sizes scale with SIZE_FACTORS.
ON_DEMAND_MEDIUM_USD_PER_HOUR = {
    "a1": 0.0255, "t4g": 0.0336,
    "c6g": 0.0340, "c6gd": 0.0384, "c6gn": 0.0432, "c7g": 0.0363, "c7gd": 0.0454, "c7gn": 0.0624, "c8g": 0.0399,
    "m6g": 0.0385, "m6gd": 0.0452, "m7g": 0.0408, "m7gd": 0.0534, "m8g": 0.0449,
    "r6g": 0.0504, "r6gd": 0.0576, "r7g": 0.0536, "r7gd": 0.0681, "r8g": 0.0589, "x2gd": 0.0835,
}  # fmt: skip
SIZE_FACTORS = {
    "nano": 0.125, "micro": 0.25, "small": 0.5, "medium": 1, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16,
    "8xlarge": 32, "12xlarge": 48, "16xlarge": 64, "24xlarge": 96, "48xlarge": 192,
}  # fmt: skip
# Assumed typical spot price (USD/hour) for the types people pick for this job; any other type is priced at
# on-demand, the most a spot instance with no max price can cost.
SPOT_USD_PER_HOUR = {
    "t4g.small": 0.0060, "t4g.medium": 0.0120, "t4g.large": 0.0240,
    "c6g.medium": 0.0140, "c6g.large": 0.0280, "c6g.xlarge": 0.0560,
    "c7g.medium": 0.0150, "c7g.large": 0.0300, "c7g.xlarge": 0.0600, "c7g.2xlarge": 0.1200,
    "c8g.medium": 0.0170, "c8g.large": 0.0340,
    "m6g.medium": 0.0160, "m6g.large": 0.0320, "m7g.medium": 0.0170, "m7g.large": 0.0340,
}  # fmt: skip
# What the deployment does in a month, by design of the runner, the bootstrap and the stack.
USAGE = {
    "log_ingest_gb_per_month": 0.5,  # runner JSON lines (one per batch and per event) plus one bootstrap log
    "s3_stored_gb": 1.0,  # checkpoints, 30 daily copies, failure records, 7 days of replaced versions
    # runner/service.py: checkpoints/latest.json each minute, the daily copy every 10 minutes, the signature
    # index only when it changed (rounded up to 1.2 a minute for failure records and index updates)
    "s3_puts_per_minute": 1.2,
    "runner_metrics": 4,  # IterationsCompleted, FailuresDetected, NewFailureSignatures, SeedsPerSecond
    "metric_filter_metrics": 2,  # RunnerErrors, SimulatorCrashes
    "agent_metrics": 3,  # CloudWatch agent (scripts/user_data.sh.j2): memory, swap and disk use, namespace VOPR
    "put_metric_data_per_minute": 2,  # the runner's and the agent's 60-second publishes
    "alarms": 2,
    "dashboards": 1,
    "alert_emails_per_month": 100,
}
# AWS's always-free tier (not the 12-month one) covers this much CloudWatch, account-wide.
ALWAYS_FREE = {"custom_metrics": 10, "alarms": 10, "dashboards": 3, "logs_gb": 5, "api_requests": 1_000_000, "sns_emails": 1000}


@dataclass(frozen=True)
class CostLine:
    service: str
    item: str
    quantity: str
    monthly_usd: float | None  # None: no price data for this item
    free_tier_usd: float = 0.0  # how much of it AWS's always-free tier covers if the account has room


@dataclass(frozen=True)
class CostEstimate:
    lines: tuple[CostLine, ...]
    total_usd: float
    total_after_free_tier_usd: float
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return asdict(self)


def _usd(value: float) -> float:
    return round(value + 1e-9, 2)


def on_demand_usd_per_hour(instance_type: str) -> float | None:
    family, _, size = instance_type.partition(".")
    if family not in ON_DEMAND_MEDIUM_USD_PER_HOUR or size not in SIZE_FACTORS:
        return None
    return ON_DEMAND_MEDIUM_USD_PER_HOUR[family] * SIZE_FACTORS[size]


def _compute(cfg: Config, assumptions: list[str]) -> CostLine:
    itype = cfg.instance.type
    on_demand = on_demand_usd_per_hour(itype)
    spot = SPOT_USD_PER_HOUR.get(itype)
    if spot is not None:
        rate, basis = spot, "assumed spot price"
    elif on_demand is not None:
        rate, basis = on_demand, "on-demand price (no spot assumption for this type)"
        assumptions.append(f"{itype}: no spot price assumed, so the estimate uses the on-demand price, the spot ceiling")
    else:
        assumptions.append(f"{itype}: no price data, so compute is left out of the total; see aws.amazon.com/ec2/spot/pricing")
        return CostLine("EC2", f"spot instance {itype}", "no price data", None)
    if cfg.instance.spot_max_price:
        cap = float(Decimal(cfg.instance.spot_max_price))
        if cap < rate:
            assumptions.append(
                f"instance.spot_max_price {cap} is below the assumed price {rate}: the instance may seldom run"
            )
            rate, basis = cap, "your spot_max_price (below the assumed price)"
    return CostLine("EC2", f"spot instance {itype}", f"{HOURS_PER_MONTH} h x ${rate:.4f}/h ({basis})", _usd(HOURS_PER_MONTH * rate))


def estimate(cfg: Config) -> CostEstimate:
    """The monthly cost of `cfg`'s deployment, line by line, with every assumption spelled out."""
    p, u = PRICES, USAGE
    assumptions = [
        f"prices: {PRICES_AS_OF}; taxes excluded",
        f"the instance runs all month ({HOURS_PER_MONTH} h); a stopped spot instance costs only its EBS volume and nothing for IPv4",
        f"logs: {u['log_ingest_gb_per_month']} GB ingested a month, kept {cfg.deployment.log_retention_days} days",
        f"S3: {u['s3_stored_gb']} GB stored, {u['s3_puts_per_minute']} PUTs a minute (checkpoint each minute, daily copy, index)",
        "data transfer: inbound (git, crates, PyPI) is free and S3/CloudWatch traffic stays in the region",
    ]
    if cfg.deployment.region != "us-east-1":
        assumptions.append(f"{cfg.deployment.region} is priced like us-east-1; most regions cost 0-30% more")
    gib = cfg.instance.root_volume_gib
    log_gb = u["log_ingest_gb_per_month"]
    stored_log_gb = log_gb * cfg.deployment.log_retention_days / 30
    metrics = u["runner_metrics"] + u["metric_filter_metrics"] + u["agent_metrics"]
    requests = u["put_metric_data_per_minute"] * MINUTES_PER_MONTH
    puts = u["s3_puts_per_minute"] * MINUTES_PER_MONTH
    logs_free_gb = max(0.0, ALWAYS_FREE["logs_gb"] - log_gb)

    def line(service: str, item: str, quantity: str, usd: float, free_usd: float = 0.0) -> CostLine:
        return CostLine(service, item, quantity, _usd(usd), _usd(min(usd, free_usd)))

    lines = [
        _compute(cfg, assumptions),
        line("VPC", "public IPv4 address", f"{HOURS_PER_MONTH} h x ${p['public_ipv4_usd_per_hour']}/h", HOURS_PER_MONTH * p["public_ipv4_usd_per_hour"]),
        line("EBS", f"gp3 root volume {gib} GiB", f"{gib} GiB x ${p['ebs_gp3_usd_per_gib_month']}", gib * p["ebs_gp3_usd_per_gib_month"]),
        line("CloudWatch", "logs ingestion", f"{log_gb} GB x ${p['logs_ingest_usd_per_gb']}", log_gb * p["logs_ingest_usd_per_gb"],
             min(log_gb, ALWAYS_FREE["logs_gb"]) * p["logs_ingest_usd_per_gb"]),
        line("CloudWatch", "logs storage", f"{stored_log_gb:.2f} GB x ${p['logs_storage_usd_per_gb_month']}",
             stored_log_gb * p["logs_storage_usd_per_gb_month"], min(stored_log_gb, logs_free_gb) * p["logs_storage_usd_per_gb_month"]),
        line("CloudWatch", "custom metrics", f"{metrics} metrics x ${p['custom_metric_usd_per_month']}",
             metrics * p["custom_metric_usd_per_month"], min(metrics, ALWAYS_FREE["custom_metrics"]) * p["custom_metric_usd_per_month"]),
        line("CloudWatch", "PutMetricData requests", f"{requests:,} requests x ${p['put_metric_data_usd_per_1000_requests']}/1000",
             requests / 1000 * p["put_metric_data_usd_per_1000_requests"],
             min(requests, ALWAYS_FREE["api_requests"]) / 1000 * p["put_metric_data_usd_per_1000_requests"]),
        line("CloudWatch", "alarms", f"{u['alarms']} alarms x ${p['standard_alarm_usd_per_month']}",
             u["alarms"] * p["standard_alarm_usd_per_month"], min(u["alarms"], ALWAYS_FREE["alarms"]) * p["standard_alarm_usd_per_month"]),
        line("CloudWatch", "dashboard", f"{u['dashboards']} dashboard x ${p['dashboard_usd_per_month']}",
             u["dashboards"] * p["dashboard_usd_per_month"], min(u["dashboards"], ALWAYS_FREE["dashboards"]) * p["dashboard_usd_per_month"]),
        line("S3", "storage (Standard)", f"{u['s3_stored_gb']} GB x ${p['s3_standard_usd_per_gb_month']}", u["s3_stored_gb"] * p["s3_standard_usd_per_gb_month"]),
        line("S3", "PUT requests", f"{puts:,.0f} PUTs x ${p['s3_put_usd_per_1000_requests']}/1000", puts / 1000 * p["s3_put_usd_per_1000_requests"]),
        line("SNS", "alert emails", f"{u['alert_emails_per_month']} emails (first {ALWAYS_FREE['sns_emails']:,} free)",
             max(0, u["alert_emails_per_month"] - ALWAYS_FREE["sns_emails"]) / 100_000 * p["sns_email_usd_per_100000"]),
    ]  # fmt: skip
    priced = [ln for ln in lines if ln.monthly_usd is not None]
    total = _usd(sum(ln.monthly_usd for ln in priced))
    free = _usd(sum(ln.free_tier_usd for ln in priced))
    assumptions.append(
        f"AWS's always-free tier ({ALWAYS_FREE['custom_metrics']} metrics, {ALWAYS_FREE['alarms']} alarms, "
        f"{ALWAYS_FREE['dashboards']} dashboards, {ALWAYS_FREE['logs_gb']} GB logs, 1M API requests) would cover "
        f"${free:.2f} of this if nothing else in the account uses it"
    )
    return CostEstimate(tuple(lines), total, _usd(total - free), tuple(assumptions))
