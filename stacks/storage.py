"""The results bucket: versioned, encrypted, private, TLS-only, with lifecycle rules that keep it cheap.

Every lifecycle rule names its prefix explicitly; the prefixes come from runner/layout.py.
"""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
    S3BucketLifecycleConfigurationRuleTransition,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import S3BucketOwnershipControls, S3BucketOwnershipControlsRule
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA, S3BucketVersioningVersioningConfiguration
from cdktf_cdktf_provider_aws.s3_object import S3Object
from constructs import Construct

from stacks import policies
from stacks.runner_layout import layout
from vopr.config import Config

INCOMPLETE_UPLOAD_ABORT_DAYS = 7
# checkpoints/latest.json and signatures/index.json are overwritten every minute; with versioning on, old
# versions would pile up (about 1,440 a day each), so they expire a week after being replaced.
NONCURRENT_STATE_VERSION_DAYS = 7
ALL_OBJECTS_PREFIX = ""
# Failure records are a few KB; S3's default (all_storage_classes_128K) never transitions objects under 128 KB.
# This setting lets them move to GLACIER / DEEP_ARCHIVE as configured (other classes still skip small objects).
SMALL_OBJECT_TRANSITIONS = "varies_by_storage_class"


def _rule(rule_id: str, prefix: str, **actions) -> S3BucketLifecycleConfigurationRule:
    return S3BucketLifecycleConfigurationRule(
        id=rule_id, status="Enabled", filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=prefix)], **actions
    )


class Storage(Construct):
    """The bucket `<bucket_prefix>-<account>-<region>` and its settings; `upload()` adds an object."""

    def __init__(self, scope: Construct, id_: str, *, cfg: Config, account_id: str):
        super().__init__(scope, id_)
        d = cfg.deployment
        names = layout()
        self.bucket = S3Bucket(self, "bucket", bucket=f"{d.bucket_prefix}-{account_id}-{d.region}", force_destroy=False)
        bucket_id = self.bucket.id
        S3BucketVersioningA(
            self, "versioning", bucket=bucket_id, versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled")
        )
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=bucket_id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                        sse_algorithm="AES256"
                    )
                )
            ],
        )
        public_access = S3BucketPublicAccessBlock(
            self,
            "public_access_block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        S3BucketOwnershipControls(
            self, "ownership", bucket=bucket_id, rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced")
        )
        S3BucketPolicy(
            self,
            "tls_only",
            bucket=bucket_id,
            policy=json.dumps(policies.tls_only_bucket(self.bucket.arn), sort_keys=True),
            depends_on=[public_access],
        )
        S3BucketLifecycleConfiguration(
            self,
            "lifecycle",
            bucket=bucket_id,
            transition_default_minimum_object_size=SMALL_OBJECT_TRANSITIONS,
            rule=[
                _rule(
                    "expire-daily-checkpoints",
                    names["CHECKPOINT_DAILY_PREFIX"],
                    expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=d.daily_checkpoint_expiry_days)],
                ),
                _rule(
                    "archive-failures",
                    names["FAILURES_PREFIX"],
                    transition=[
                        S3BucketLifecycleConfigurationRuleTransition(
                            days=d.failures_archive_after_days, storage_class=d.failures_storage_class
                        )
                    ],
                ),
                _rule(
                    "abort-incomplete-multipart-uploads",
                    ALL_OBJECTS_PREFIX,
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=INCOMPLETE_UPLOAD_ABORT_DAYS
                        )
                    ],
                ),
                _rule(
                    "expire-replaced-checkpoint-versions",
                    names["CHECKPOINT_LATEST"].rsplit("/", 1)[0] + "/",
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=NONCURRENT_STATE_VERSION_DAYS)
                    ],
                ),
                _rule(
                    "expire-replaced-signature-index-versions",
                    names["SIGNATURE_INDEX"].rsplit("/", 1)[0] + "/",
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=NONCURRENT_STATE_VERSION_DAYS)
                    ],
                ),
            ],
        )

    def upload(self, id_: str, *, key: str, source: str, content_type: str) -> S3Object:
        return S3Object(self, id_, bucket=self.bucket.id, key=key, source=source, content_type=content_type)
