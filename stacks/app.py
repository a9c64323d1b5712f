"""The one TerraformStack `vopr-<name>`, composed of the storage, alerting, monitoring and compute constructs.

`build_app` is shared by main.py (the cdktf app) and `stacks.synth.synthesize` (the cached path the CLI uses).
"""

from __future__ import annotations

from pathlib import Path

from cdktf import App, AssetType, LocalBackend, TerraformAsset, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from stacks.alerting import Alerting
from stacks.compute import Compute
from stacks.instance_values import PROJECT_TAG
from stacks.monitoring import Dashboard, Monitoring
from stacks.runner_artifact import RunnerArtifact
from stacks.storage import Storage
from stacks.user_data import render_user_data
from vopr.config import Config


def dashboard_url(region: str, dashboard_name: str) -> str:
    host = "console.amazonaws-us-gov.com" if region.startswith("us-gov-") else f"{region}.console.aws.amazon.com"
    return f"https://{host}/cloudwatch/home?region={region}#dashboards/dashboard/{dashboard_name}"


class VoprStack(TerraformStack):
    def __init__(self, scope: Construct, cfg: Config, runner_artifact: RunnerArtifact, state_path: Path):
        super().__init__(scope, cfg.stack_name)
        name, region = cfg.deployment.name, cfg.deployment.region
        LocalBackend(self, path=str(state_path))
        AwsProvider(
            self, "aws", region=region, default_tags=[AwsProviderDefaultTags(tags={"Project": PROJECT_TAG, "Deployment": name})]
        )
        account = DataAwsCallerIdentity(self, "account")
        partition = DataAwsPartition(self, "partition")

        storage = Storage(self, "storage", cfg=cfg, account_id=account.account_id)
        asset = TerraformAsset(self, "runner_asset", path=str(runner_artifact.path), type=AssetType.FILE)
        runner_object = storage.upload(
            "runner_artifact", key=runner_artifact.key, source=asset.path, content_type="application/gzip"
        )
        alerting = Alerting(self, "alerting", cfg=cfg)
        monitoring = Monitoring(self, "monitoring", cfg=cfg, topic_arn=alerting.topic.arn, bucket_name=storage.bucket.bucket)
        compute = Compute(
            self,
            "compute",
            cfg=cfg,
            partition=partition.partition,
            bucket_name=storage.bucket.bucket,
            bucket_arn=storage.bucket.arn,
            topic_arn=alerting.topic.arn,
            log_group_arn=monitoring.log_group.arn,
            no_progress_alarm_arn=monitoring.no_progress_alarm.arn,
            user_data=render_user_data(cfg, runner_artifact.key),
            # The bootstrap silences the alarm as its first AWS step: it must exist by then.
            depends_on=[runner_object, monitoring.log_group, monitoring.no_progress_alarm],
        )
        Dashboard(self, "dashboard", cfg=cfg, instance_id=compute.instance.id)

        outputs = {
            "deployment_name": name,
            "instance_id": compute.instance.id,
            "spot_instance_request_id": compute.instance.spot_instance_request_id,
            "bucket_name": storage.bucket.bucket,
            "topic_arn": alerting.topic.arn,
            "log_group_name": monitoring.log_group.name,
            "region": region,
            "dashboard_url": dashboard_url(region, cfg.dashboard_name),
            "no_progress_alarm_name": monitoring.no_progress_alarm.alarm_name,
            "failures_alarm_name": monitoring.failures_alarm.alarm_name,
            "runner_artifact_key": runner_object.key,
        }
        for output_id, value in outputs.items():
            TerraformOutput(self, output_id, value=value)


def build_app(cfg: Config, outdir: Path, runner_artifact: RunnerArtifact, state_path: Path) -> App:
    """An App holding the one stack for `cfg` (Terraform state at `state_path`); `.synth()` writes `outdir`."""
    app = App(outdir=str(outdir), stack_traces=False)
    VoprStack(app, cfg, runner_artifact, state_path)
    return app
