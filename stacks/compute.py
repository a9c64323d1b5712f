"""The tester itself: one persistent Graviton spot instance with a least-privilege role and no inbound access.

Operators reach it through SSM Session Manager only; it finds its bucket and topic in its own tags via IMDSv2.
"""

from __future__ import annotations

import json

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.instance import (
    Instance,
    InstanceInstanceMarketOptions,
    InstanceInstanceMarketOptionsSpotOptions,
    InstanceMetadataOptions,
    InstanceRootBlockDevice,
)
from cdktf_cdktf_provider_aws.security_group import SecurityGroup, SecurityGroupEgress
from constructs import Construct

from stacks import policies
from stacks.instance_values import AMI_PARAMETER, IMDS_HOP_LIMIT, PROJECT_TAG, spot_options, user_data_base64
from stacks.runner_layout import layout
from vopr.config import Config


class Compute(Construct):
    """Instance role and profile, the no-ingress security group, and the spot instance."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        cfg: Config,
        partition: str,
        bucket_name: str,
        bucket_arn: str,
        topic_arn: str,
        log_group_arn: str,
        no_progress_alarm_arn: str,
        user_data: str,
        depends_on: list,
    ):
        super().__init__(scope, id_)
        name = cfg.deployment.name
        names = layout()
        self.role = IamRole(
            self,
            "role",
            name=f"{name}-vopr-instance",
            description=f"VOPR runner instance of deployment {name}",
            assume_role_policy=json.dumps(policies.ec2_assume_role(), sort_keys=True),
        )
        self.role_policy = IamRolePolicy(
            self,
            "role_policy",
            name=f"{name}-vopr-runner",
            role=self.role.id,
            policy=json.dumps(
                policies.instance_role(
                    bucket_arn=bucket_arn,
                    topic_arn=topic_arn,
                    log_group_arn=log_group_arn,
                    write_prefixes=names["RUNNER_WRITE_PREFIXES"],
                    read_only_prefixes=[names["ARTIFACTS_PREFIX"]],
                    metrics_namespace=names["METRICS_NAMESPACE"],
                    no_progress_alarm_arn=no_progress_alarm_arn,
                ),
                sort_keys=True,
            ),
        )
        ssm_core = IamRolePolicyAttachment(
            self, "ssm_core", role=self.role.name, policy_arn=policies.managed_policy_arn(partition)
        )
        self.profile = IamInstanceProfile(self, "profile", name=f"{name}-vopr-instance", role=self.role.name)
        self.security_group = SecurityGroup(
            self,
            "security_group",
            name=f"{name}-vopr",
            description=f"VOPR runner {name}: no inbound access; outbound for git, crates, PyPI and AWS APIs",
            ingress=[],
            egress=[
                SecurityGroupEgress(
                    description="git, crates.io, PyPI and AWS APIs over the internet",
                    protocol="-1",
                    from_port=0,
                    to_port=0,
                    cidr_blocks=["0.0.0.0/0"],
                    ipv6_cidr_blocks=["::/0"],
                    prefix_list_ids=[],
                    security_groups=[],
                    self_attribute=False,
                )
            ],
            tags={"Name": f"{name}-vopr"},
        )
        ami = DataAwsSsmParameter(self, "ami", name=AMI_PARAMETER)
        common_tags = {"Project": PROJECT_TAG, "Deployment": name}
        self.instance = Instance(
            self,
            "instance",
            ami=ami.insecure_value,
            instance_type=cfg.instance.type,
            iam_instance_profile=self.profile.name,
            vpc_security_group_ids=[self.security_group.id],
            associate_public_ip_address=True,
            ebs_optimized=True,
            instance_market_options=InstanceInstanceMarketOptions(
                market_type="spot", spot_options=InstanceInstanceMarketOptionsSpotOptions(**spot_options(cfg))
            ),
            metadata_options=InstanceMetadataOptions(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=IMDS_HOP_LIMIT,
                instance_metadata_tags="enabled",
            ),
            root_block_device=InstanceRootBlockDevice(
                volume_type="gp3",
                volume_size=cfg.instance.root_volume_gib,
                encrypted=True,
                delete_on_termination=True,
                tags={"Name": f"{cfg.instance_name}-root", **common_tags},
            ),
            user_data_base64=user_data_base64(user_data),
            user_data_replace_on_change=True,
            tags={
                "Name": cfg.instance_name,
                **common_tags,
                "VoprBucket": bucket_name,
                "VoprTopicArn": topic_arn,
            },
            lifecycle=TerraformResourceLifecycle(ignore_changes=["ami"]),
            depends_on=[self.role_policy, ssm_core, *depends_on],
        )
