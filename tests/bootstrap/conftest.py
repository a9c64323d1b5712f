"""Fixtures for the bootstrap tests: configs to render, and a sandbox instance backed by moto for S3 and SNS."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass

import boto3
import pytest

from bootstrap_sandbox import GIB_KIB, REGION, Sandbox, install_shims, make_config, make_fixture_repo, runner_tarball
from stacks.user_data import render_user_data
from vopr.config import Config

BUCKET = "vopr-simulation-results-123456789012-us-east-1"


@pytest.fixture(scope="session")
def runner_tar() -> bytes:
    return runner_tarball()


@pytest.fixture(scope="session")
def artifact_key(runner_tar) -> str:
    return f"artifacts/runner-{hashlib.sha256(runner_tar).hexdigest()}.tar.gz"


@pytest.fixture(scope="session")
def shim_dir(tmp_path_factory):
    return install_shims(tmp_path_factory.mktemp("shims"))


@pytest.fixture(scope="session")
def fixture_repo(tmp_path_factory):
    return make_fixture_repo(tmp_path_factory.mktemp("remote") / "kimberlite")


class AwsWorld:
    """The deployment's bucket (with the runner artifact), alert topic and no-progress alarm in moto, plus a queue on the topic."""

    def __init__(self, runner_tar: bytes, artifact_key: str, alarm_name: str = "vopr-no-progress"):
        self.bucket = BUCKET
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=artifact_key, Body=runner_tar)
        sns = boto3.client("sns", region_name=REGION)
        self.topic_arn = sns.create_topic(Name="vopr-alerts")["TopicArn"]
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        self.add_alarm(alarm_name)

    def add_alarm(self, name: str) -> None:
        """The no-progress alarm as the stack creates it (actions off) after CloudWatch's first evaluation (ALARM)."""
        self.alarm_name = name
        self.cloudwatch.put_metric_alarm(
            AlarmName=name, Namespace="VOPR", MetricName="IterationsCompleted", Dimensions=[{"Name": "Deployment", "Value": "vopr"}],
            Statistic="Sum", Period=300, EvaluationPeriods=3, DatapointsToAlarm=3, Threshold=1,
            ComparisonOperator="LessThanThreshold", TreatMissingData="breaching", ActionsEnabled=False,
            AlarmActions=[self.topic_arn], OKActions=[self.topic_arn],
        )
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="no data: missing data is breaching")

    def alarm(self) -> dict:
        (alarm,) = self.cloudwatch.describe_alarms(AlarmNames=[self.alarm_name])["MetricAlarms"]
        return alarm

    def messages(self) -> list[dict]:
        """Every SNS message published to the topic so far (drains the queue)."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return out
            for m in got["Messages"]:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def aws_world(aws, runner_tar, artifact_key) -> AwsWorld:
    return AwsWorld(runner_tar, artifact_key)


@pytest.fixture
def sandbox(tmp_path, shim_dir, fixture_repo, aws, aws_world, artifact_key):
    """make(cfg=None, mem_kib=2 GiB, nproc=2) -> (Sandbox, rendered script); validate=False renders unvalidated."""

    boxes: list = []

    def make(cfg: Config | None = None, mem_kib: int = 2 * GIB_KIB, nproc: int = 2, validate: bool = True):
        cfg = cfg or make_config()
        script = render_user_data(cfg, artifact_key, validate=validate)
        if cfg.no_progress_alarm_name != aws_world.alarm_name:
            aws_world.add_alarm(cfg.no_progress_alarm_name)
        boxes.append(None)
        box = Sandbox(tmp_path / f"box{len(boxes)}", shim_dir, fixture_repo, aws, cfg.simulator.repo_url, aws_world.bucket,
                      aws_world.topic_arn, mem_kib=mem_kib, nproc=nproc)
        return box, script

    return make


@dataclass(frozen=True)
class Booted:
    box: Sandbox
    script: str
    world: AwsWorld
    alerts: list
    alarm: dict


@pytest.fixture(scope="module")
def booted_once(moto_endpoint, shim_dir, fixture_repo, runner_tar, artifact_key, tmp_path_factory) -> Booted:
    """One successful default bootstrap shared by the read-only tests of a module (moto state is not kept)."""
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10).read()
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        world = AwsWorld(runner_tar, artifact_key)
        cfg = make_config()
        script = render_user_data(cfg, artifact_key)
        box = Sandbox(tmp_path_factory.mktemp("booted"), shim_dir, fixture_repo, dict(os.environ), cfg.simulator.repo_url,
                      world.bucket, world.topic_arn)
        result = box.run(script)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        return Booted(box, script, world, world.messages(), world.alarm())
