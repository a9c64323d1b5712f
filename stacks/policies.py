"""IAM policy documents for the stack, as plain dicts: the instance role's least-privilege grants and the bucket's TLS rule.

ARNs arrive as strings (cdktf tokens in a synth, literals in tests), so this module needs no cdktf.
"""

from __future__ import annotations

from typing import Any, Iterable

POLICY_VERSION = "2012-10-17"
SSM_CORE_POLICY_NAME = "AmazonSSMManagedInstanceCore"


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": statements}


def ec2_assume_role() -> dict[str, Any]:
    """Only EC2 may assume the instance role."""
    return _document(
        [
            {
                "Sid": "Ec2AssumesInstanceRole",
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    )


def instance_role(
    *,
    bucket_arn: str,
    topic_arn: str,
    log_group_arn: str,
    write_prefixes: Iterable[str],
    read_only_prefixes: Iterable[str],
    metrics_namespace: str,
    no_progress_alarm_arn: str,
) -> dict[str, Any]:
    """What the runner, the bootstrap and the CloudWatch agent on the instance may do, and nothing more."""
    write_prefixes = list(write_prefixes)
    read_prefixes = write_prefixes + [p for p in read_only_prefixes if p not in write_prefixes]
    return _document(
        [
            {
                "Sid": "ReadWriteRunnerPrefixes",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": [f"{bucket_arn}/{prefix}*" for prefix in write_prefixes],
            },
            {
                "Sid": "ReadArtifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{bucket_arn}/{prefix}*" for prefix in read_only_prefixes],
            },
            {
                "Sid": "ListRunnerPrefixes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn],
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in read_prefixes]}},
            },
            {
                "Sid": "PutMetricsInProjectNamespace",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                # PutMetricData has no resource-level permissions (AWS accepts only "*" here); the
                # cloudwatch:namespace condition is the narrowing AWS offers, and it pins the namespace.
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace}},
            },
            {
                "Sid": "WriteOwnLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            {
                "Sid": "PublishAlerts",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [topic_arn],
            },
            {
                # The bootstrap silences this one alarm while the simulator builds and arms it once seeds are counted.
                "Sid": "SilenceAndArmNoProgressAlarm",
                "Effect": "Allow",
                "Action": [
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:DisableAlarmActions",
                    "cloudwatch:EnableAlarmActions",
                    "cloudwatch:SetAlarmState",
                ],
                "Resource": [no_progress_alarm_arn],
            },
        ]
    )


def tls_only_bucket(bucket_arn: str) -> dict[str, Any]:
    """Deny every request to the bucket or its objects that does not arrive over TLS."""
    return _document(
        [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
    )


def managed_policy_arn(partition: str, name: str = SSM_CORE_POLICY_NAME) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"
