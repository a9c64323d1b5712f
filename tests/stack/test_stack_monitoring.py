"""Alerting and monitoring: topic and email, log group, metric filters, both alarms, the dashboard."""

from __future__ import annotations

import json

from stack_helpers import only, ref, resources_of


def test_topic_and_email_subscription(tf):
    topic, body = only(tf, "aws_sns_topic")
    assert body == {"name": "vopr-alerts", "display_name": "VOPR vopr"}
    assert only(tf, "aws_sns_topic_subscription")[1] == {
        "topic_arn": ref("aws_sns_topic", topic, "arn"),
        "protocol": "email",
        "endpoint": "oncall@example.com",
    }


def test_log_group_name_and_retention(tf):
    assert only(tf, "aws_cloudwatch_log_group")[1] == {"name": "/vopr/vopr", "retention_in_days": 7}


def test_metric_filters_turn_runner_errors_and_simulator_crashes_into_metrics(tf):
    log_group, _ = only(tf, "aws_cloudwatch_log_group")
    filters = sorted(resources_of(tf, "aws_cloudwatch_log_metric_filter").values(), key=lambda f: f["name"])
    transformation = {"namespace": "VOPR", "value": "1", "unit": "Count", "dimensions": {"Deployment": "$.deployment"}}
    assert filters == [
        {
            "name": "vopr-runner-errors",
            "log_group_name": ref("aws_cloudwatch_log_group", log_group, "name"),
            "pattern": '{ $.level = "error" }',
            "metric_transformation": {"name": "RunnerErrors", **transformation},
        },
        {
            "name": "vopr-simulator-crashes",
            "log_group_name": ref("aws_cloudwatch_log_group", log_group, "name"),
            "pattern": '{ $.event = "failure" && $.kind = "crash" }',
            "metric_transformation": {"name": "SimulatorCrashes", **transformation},
        },
    ]


def _alarms(tf):
    return {body["alarm_name"]: body for body in resources_of(tf, "aws_cloudwatch_metric_alarm").values()}


def test_failures_alarm_emails_at_most_about_hourly_and_ignores_missing_data(tf):
    topic, _ = only(tf, "aws_sns_topic")
    alarm = dict(_alarms(tf)["vopr-failures-detected"])
    description = alarm.pop("alarm_description")
    assert alarm == {
        "alarm_name": "vopr-failures-detected",
        "namespace": "VOPR",
        "metric_name": "FailuresDetected",
        "dimensions": {"Deployment": "vopr"},
        "statistic": "Sum",
        "period": 3600,
        "evaluation_periods": 1,
        "threshold": 0,
        "comparison_operator": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching",
        "alarm_actions": [ref("aws_sns_topic", topic, "arn")],
        "ok_actions": [ref("aws_sns_topic", topic, "arn")],
    }
    assert "failures/<seed>.json" in description and "`vopr reproduce SEED`" in description


def test_no_progress_alarm_fires_after_15_quiet_minutes_and_on_missing_data(tf):
    topic, _ = only(tf, "aws_sns_topic")
    alarm = dict(_alarms(tf)["vopr-no-progress"])
    description = alarm.pop("alarm_description")
    assert alarm == {
        "alarm_name": "vopr-no-progress",
        "namespace": "VOPR",
        "metric_name": "IterationsCompleted",
        "dimensions": {"Deployment": "vopr"},
        "statistic": "Sum",
        "period": 300,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 3,
        "threshold": 1,
        "comparison_operator": "LessThanThreshold",
        "treat_missing_data": "breaching",
        "alarm_actions": [ref("aws_sns_topic", topic, "arn")],
        "ok_actions": [ref("aws_sns_topic", topic, "arn")],
        "actions_enabled": False,
        "lifecycle": {"ignore_changes": ["actions_enabled"]},
    }
    assert alarm["period"] * alarm["evaluation_periods"] == 15 * 60
    assert "15 minutes" in description and "`vopr logs` (log group /vopr/vopr)" in description
    assert "bootstrap enables them once the runner's first seeds are counted" in description
    assert len(description) <= 1024, "CloudWatch's limit for AlarmDescription"


def test_no_progress_alarm_is_created_silent_and_terraform_never_flips_its_switch(tf):
    """A new alarm with no data goes to ALARM at once; the bootstrap, `vopr stop` and `vopr start` own the switch."""
    alarms = _alarms(tf)
    assert alarms["vopr-no-progress"]["actions_enabled"] is False
    assert alarms["vopr-no-progress"]["lifecycle"] == {"ignore_changes": ["actions_enabled"]}
    assert "actions_enabled" not in alarms["vopr-failures-detected"], "the failures alarm is armed from the start"
    assert "lifecycle" not in alarms["vopr-failures-detected"]


def test_dashboard_graphs_seeds_failures_signatures_and_cpu(tf):
    instance, _ = only(tf, "aws_instance")
    _, dashboard = only(tf, "aws_cloudwatch_dashboard")
    assert dashboard["dashboard_name"] == "vopr"
    widgets = json.loads(dashboard["dashboard_body"])["widgets"]
    by_title = {w["properties"]["title"]: w for w in widgets}
    assert list(by_title) == ["Seeds per minute", "Failures", "New failure signatures", "Instance CPU"]
    for w in widgets:
        assert w["type"] == "metric" and w["properties"]["region"] == "us-east-1"

    def metrics(title):
        return [m[:4] for m in by_title[title]["properties"]["metrics"]]

    def stat_period(title):
        return by_title[title]["properties"]["stat"], by_title[title]["properties"]["period"]

    assert metrics("Seeds per minute") == [["VOPR", "IterationsCompleted", "Deployment", "vopr"]]
    assert stat_period("Seeds per minute") == ("Sum", 60)
    assert metrics("Failures") == [
        ["VOPR", "FailuresDetected", "Deployment", "vopr"],
        ["VOPR", "SimulatorCrashes", "Deployment", "vopr"],
        ["VOPR", "RunnerErrors", "Deployment", "vopr"],
    ]
    assert metrics("New failure signatures") == [["VOPR", "NewFailureSignatures", "Deployment", "vopr"]]
    assert metrics("Instance CPU") == [["AWS/EC2", "CPUUtilization", "InstanceId", ref("aws_instance", instance, "id")]]
    assert stat_period("Instance CPU") == ("Average", 300)
