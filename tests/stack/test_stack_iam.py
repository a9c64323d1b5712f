"""The instance role's least-privilege policy, its trust policy and the SSM attachment, statement by statement."""

from __future__ import annotations

import json
import re

from stack_helpers import only, ref, resources_of

from stacks.runner_layout import LAYOUT_PATH, read_constants

REPO_ROOT = LAYOUT_PATH.parents[1]


def _role_policy(tf):
    _, body = only(tf, "aws_iam_role_policy")
    return json.loads(body["policy"])


def test_instance_role_policy_is_exactly_least_privilege(tf):
    bucket, _ = only(tf, "aws_s3_bucket")
    topic, _ = only(tf, "aws_sns_topic")
    log_group, _ = only(tf, "aws_cloudwatch_log_group")
    bucket_arn = ref("aws_s3_bucket", bucket, "arn")
    log_arn = ref("aws_cloudwatch_log_group", log_group, "arn")
    assert _role_policy(tf) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWriteRunnerPrefixes",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": [f"{bucket_arn}/checkpoints/*", f"{bucket_arn}/failures/*", f"{bucket_arn}/signatures/*"],
            },
            {
                "Sid": "ReadArtifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{bucket_arn}/artifacts/*"],
            },
            {
                "Sid": "ListRunnerPrefixes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn],
                "Condition": {"StringLike": {"s3:prefix": ["checkpoints/*", "failures/*", "signatures/*", "artifacts/*"]}},
            },
            {
                "Sid": "PutMetricsInProjectNamespace",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": "VOPR"}},
            },
            {
                "Sid": "WriteOwnLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [log_arn, f"{log_arn}:*"],
            },
            {
                "Sid": "PublishAlerts",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [ref("aws_sns_topic", topic, "arn")],
            },
            {
                "Sid": "SilenceAndArmNoProgressAlarm",
                "Effect": "Allow",
                "Action": [
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:DisableAlarmActions",
                    "cloudwatch:EnableAlarmActions",
                    "cloudwatch:SetAlarmState",
                ],
                "Resource": [ref("aws_cloudwatch_metric_alarm", _no_progress_alarm(tf), "arn")],
            },
        ],
    }


def _no_progress_alarm(tf):
    (name,) = [n for n, body in resources_of(tf, "aws_cloudwatch_metric_alarm").items() if body["alarm_name"] == "vopr-no-progress"]
    return name


def test_only_the_no_progress_alarm_can_be_silenced_and_only_by_its_arn(tf):
    alarm_statements = [s for s in _role_policy(tf)["Statement"] if any(a.endswith("AlarmActions") for a in s["Action"])]
    assert [s["Resource"] for s in alarm_statements] == [["${aws_cloudwatch_metric_alarm." + _no_progress_alarm(tf) + ".arn}"]]
    failures = [n for n, b in resources_of(tf, "aws_cloudwatch_metric_alarm").items() if b["alarm_name"] == "vopr-failures-detected"]
    assert failures and failures[0] not in json.dumps(_role_policy(tf)), "the failures alarm is never silenced"


def test_write_prefixes_are_the_runners_own(tf):
    layout = read_constants()
    write = next(s for s in _role_policy(tf)["Statement"] if s["Sid"] == "ReadWriteRunnerPrefixes")
    prefixes = [re.sub(r"^\$\{[^}]+\}/", "", r).removesuffix("*") for r in write["Resource"]]
    assert prefixes == list(layout["RUNNER_WRITE_PREFIXES"])


def test_no_action_is_wildcarded_and_nothing_deletes(tf):
    for statement in _role_policy(tf)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        assert not any(a.startswith(("s3:Delete", "iam:", "ec2:")) for a in actions), statement


def _policy_documents(tf):
    docs = []
    for rtype, attribute in (("aws_iam_role_policy", "policy"), ("aws_iam_role", "assume_role_policy"), ("aws_s3_bucket_policy", "policy")):
        for name, body in tf["resource"].get(rtype, {}).items():
            docs.append((f"{rtype}.{name}", json.loads(body[attribute])))
    return docs


def test_the_only_resource_wildcard_is_put_metric_data_pinned_to_the_namespace(tf):
    wildcards = []
    for where, doc in _policy_documents(tf):
        for statement in doc["Statement"]:
            resources = statement.get("Resource", [])
            if resources == "*" or "*" in resources:
                wildcards.append((where, statement["Sid"], statement["Action"], statement.get("Condition")))
    assert len(wildcards) == 1
    (_, sid, action, condition), = wildcards
    assert (sid, action, condition) == (
        "PutMetricsInProjectNamespace",
        ["cloudwatch:PutMetricData"],
        {"StringEquals": {"cloudwatch:namespace": "VOPR"}},
    )


def test_every_resource_wildcard_in_the_stack_code_is_explained_by_a_comment():
    unexplained = []
    for path in sorted((REPO_ROOT / "stacks").glob("*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.search(r"[\"']Resource[\"']\s*:\s*[\"']\*[\"']", line):
                above = lines[max(0, i - 3) : i]
                if not any(l.strip().startswith("#") for l in above):
                    unexplained.append(f"{path.name}:{i + 1}")
    assert unexplained == []


def test_only_ec2_can_assume_the_role(tf):
    _, role = only(tf, "aws_iam_role")
    assert role["name"] == "vopr-vopr-instance"
    assert json.loads(role["assume_role_policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Ec2AssumesInstanceRole", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    assert "managed_policy_arns" not in role and "inline_policy" not in role


def test_role_policy_profile_and_ssm_attachment_are_wired_to_the_role(tf):
    role, _ = only(tf, "aws_iam_role")
    _, policy = only(tf, "aws_iam_role_policy")
    _, profile = only(tf, "aws_iam_instance_profile")
    _, attachment = only(tf, "aws_iam_role_policy_attachment")
    assert policy["role"] == ref("aws_iam_role", role, "id")
    assert profile == {"name": "vopr-vopr-instance", "role": ref("aws_iam_role", role, "name")}
    partition = next(iter(tf["data"]["aws_partition"]))
    assert attachment == {
        "role": ref("aws_iam_role", role, "name"),
        "policy_arn": "arn:${data.aws_partition." + partition + ".partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
    }
