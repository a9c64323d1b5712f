"""Logs, metric filters, alarms and the dashboard: how a silent runner or a new failing seed becomes an email.

Metric names and the namespace are the runner's (runner/layout.py and docs/VOPR_DEPLOYMENT.md, "Metrics").
"""

from __future__ import annotations

import json
from typing import Any

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_log_metric_filter import (
    CloudwatchLogMetricFilter,
    CloudwatchLogMetricFilterMetricTransformation,
)
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from constructs import Construct

from stacks.runner_layout import layout
from vopr.config import Config

NO_PROGRESS_PERIOD_S = 300
NO_PROGRESS_PERIODS = 3  # 3 x 5 minutes: no seed completed for 15 minutes
FAILURES_PERIOD_S = 3600  # one evaluation window an hour: a steady failure rate emails at most about hourly
DASHBOARD_SEEDS_PERIOD_S = 60
DASHBOARD_PERIOD_S = 300
DASHBOARD_SIGNATURES_PERIOD_S = 3600

# Log pattern -> metric name; the runner's JSON log lines carry `level`, `event`, `kind` and `deployment`.
METRIC_FILTERS = {
    "runner_errors": ('{ $.level = "error" }', "RunnerErrors"),
    "simulator_crashes": ('{ $.event = "failure" && $.kind = "crash" }', "SimulatorCrashes"),
}


class Monitoring(Construct):
    """The log group `/vopr/<name>`, its metric filters, and the two alarms that notify the topic."""

    def __init__(self, scope: Construct, id_: str, *, cfg: Config, topic_arn: str, bucket_name: str):
        super().__init__(scope, id_)
        names = layout()
        namespace, dimension = names["METRICS_NAMESPACE"], names["METRICS_DIMENSION"]
        name = cfg.deployment.name
        self.log_group = CloudwatchLogGroup(
            self, "log_group", name=cfg.log_group, retention_in_days=cfg.deployment.log_retention_days
        )
        for filter_id, (pattern, metric) in METRIC_FILTERS.items():
            CloudwatchLogMetricFilter(
                self,
                filter_id,
                name=f"{name}-{filter_id.replace('_', '-')}",
                log_group_name=self.log_group.name,
                pattern=pattern,
                metric_transformation=CloudwatchLogMetricFilterMetricTransformation(
                    name=metric, namespace=namespace, value="1", unit="Count", dimensions={dimension: "$.deployment"}
                ),
            )
        dimensions = {dimension: name}
        self.failures_alarm = CloudwatchMetricAlarm(
            self,
            "failures_alarm",
            alarm_name=cfg.failures_alarm_name,
            alarm_description=(
                f"VOPR deployment {name} recorded failing seeds within the last hour. Each failure's record, with the exact "
                f"commands that reproduce it, is s3://{bucket_name}/failures/<seed>.json; `vopr failures` lists them and "
                "`vopr reproduce SEED` prints the commands. "
                "This alarm stays in ALARM while failures keep coming, so it emails once per episode, not per seed."
            ),
            namespace=namespace,
            metric_name="FailuresDetected",
            dimensions=dimensions,
            statistic="Sum",
            period=FAILURES_PERIOD_S,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
        )
        self.no_progress_alarm = CloudwatchMetricAlarm(
            self,
            "no_progress_alarm",
            alarm_name=cfg.no_progress_alarm_name,
            alarm_description=(
                f"VOPR deployment {name} completed no seeds for 15 minutes: the runner or the instance is down (a spot "
                f"interruption stops the instance until capacity returns). Check `vopr status`, then `vopr logs` (log group "
                f"{cfg.log_group}). Its actions start disabled; the instance's bootstrap enables them once the runner's "
                "first seeds are counted (and on a failed bootstrap); `vopr stop` disables them, `vopr start` enables them."
            ),
            namespace=namespace,
            metric_name="IterationsCompleted",
            dimensions=dimensions,
            statistic="Sum",
            period=NO_PROGRESS_PERIOD_S,
            evaluation_periods=NO_PROGRESS_PERIODS,
            datapoints_to_alarm=NO_PROGRESS_PERIODS,
            threshold=1,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            # A new alarm sees no data and goes to ALARM at once: created silent, so a fresh deploy does not email
            # during its 35-70 minute build. From then on the bootstrap and `vopr stop`/`start` own the switch.
            actions_enabled=False,
            lifecycle=TerraformResourceLifecycle(ignore_changes=["actions_enabled"]),
        )


def dashboard_body(cfg: Config, instance_id: str) -> dict[str, Any]:
    """Four graphs: seeds per minute, failures (with crashes and runner errors), new signatures, instance CPU."""
    names = layout()
    namespace, dimension = names["METRICS_NAMESPACE"], names["METRICS_DIMENSION"]
    name, region = cfg.deployment.name, cfg.deployment.region

    def widget(x: int, y: int, title: str, metrics: list[list[Any]], stat: str, period_s: int) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stacked": False,
                "stat": stat,
                "period": period_s,
                "metrics": metrics,
            },
        }

    def vopr(metric: str, label: str) -> list[Any]:
        return [namespace, metric, dimension, name, {"label": label}]

    return {
        "widgets": [
            widget(0, 0, "Seeds per minute", [vopr("IterationsCompleted", "seeds / minute")], "Sum", DASHBOARD_SEEDS_PERIOD_S),
            widget(
                12,
                0,
                "Failures",
                [
                    vopr("FailuresDetected", "failing seeds"),
                    vopr("SimulatorCrashes", "simulator crashes"),
                    vopr("RunnerErrors", "runner errors"),
                ],
                "Sum",
                DASHBOARD_PERIOD_S,
            ),
            widget(
                0,
                6,
                "New failure signatures",
                [vopr("NewFailureSignatures", "new distinct signatures")],
                "Sum",
                DASHBOARD_SIGNATURES_PERIOD_S,
            ),
            widget(
                12,
                6,
                "Instance CPU",
                [["AWS/EC2", "CPUUtilization", "InstanceId", instance_id, {"label": "CPU %"}]],
                "Average",
                DASHBOARD_PERIOD_S,
            ),
        ]
    }


class Dashboard(Construct):
    """The CloudWatch dashboard `<name>`."""

    def __init__(self, scope: Construct, id_: str, *, cfg: Config, instance_id: str):
        super().__init__(scope, id_)
        self.dashboard = CloudwatchDashboard(
            self,
            "dashboard",
            dashboard_name=cfg.dashboard_name,
            dashboard_body=json.dumps(dashboard_body(cfg, instance_id), sort_keys=True),
        )
