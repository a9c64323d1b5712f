"""The alert topic `<name>-alerts` and its email subscription: where alarms and the runner's failure alerts go.

SNS sends the address a confirmation email once; nothing is delivered until it is clicked.
"""

from __future__ import annotations

from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from vopr.config import Config


class Alerting(Construct):
    def __init__(self, scope: Construct, id_: str, *, cfg: Config):
        super().__init__(scope, id_)
        # No KMS key: CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key,
        # and a customer key costs $1/month; the .checkov.yaml skip for CKV_AWS_26 says the same.
        self.topic = SnsTopic(self, "topic", name=cfg.topic_name, display_name=f"VOPR {cfg.deployment.name}")
        self.subscription = SnsTopicSubscription(
            self, "email", topic_arn=self.topic.arn, protocol="email", endpoint=cfg.deployment.alert_email
        )
