"""The results bucket's settings, TLS-only policy and lifecycle rules, and the runner archive it carries."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from stack_helpers import only, ref

from stacks import runner_artifact


def _bucket_ref(tf):
    name, _ = only(tf, "aws_s3_bucket")
    return ref("aws_s3_bucket", name, "id")


def test_bucket_name_is_prefix_account_region_and_never_force_destroyed(tf):
    _, bucket = only(tf, "aws_s3_bucket")
    account = next(iter(tf["data"]["aws_caller_identity"]))
    assert bucket == {
        "bucket": "vopr-simulation-results-${data.aws_caller_identity." + account + ".account_id}-us-east-1",
        "force_destroy": False,
    }


def test_versioning_encryption_public_access_block_and_owner_enforced(tf):
    bucket = _bucket_ref(tf)
    assert only(tf, "aws_s3_bucket_versioning")[1] == {"bucket": bucket, "versioning_configuration": {"status": "Enabled"}}
    assert only(tf, "aws_s3_bucket_server_side_encryption_configuration")[1] == {
        "bucket": bucket,
        "rule": [{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
    }
    assert only(tf, "aws_s3_bucket_public_access_block")[1] == {
        "bucket": bucket,
        "block_public_acls": True,
        "block_public_policy": True,
        "ignore_public_acls": True,
        "restrict_public_buckets": True,
    }
    assert only(tf, "aws_s3_bucket_ownership_controls")[1] == {
        "bucket": bucket,
        "rule": {"object_ownership": "BucketOwnerEnforced"},
    }


def test_bucket_policy_denies_every_request_without_tls(tf):
    name, _ = only(tf, "aws_s3_bucket")
    arn = ref("aws_s3_bucket", name, "arn")
    pab, _ = only(tf, "aws_s3_bucket_public_access_block")
    _, policy = only(tf, "aws_s3_bucket_policy")
    assert policy["bucket"] == _bucket_ref(tf)
    assert policy["depends_on"] == [f"aws_s3_bucket_public_access_block.{pab}"]
    assert json.loads(policy["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def test_lifecycle_rules_each_have_an_explicit_prefix_and_the_right_days(tf):
    _, lifecycle = only(tf, "aws_s3_bucket_lifecycle_configuration")
    assert lifecycle["bucket"] == _bucket_ref(tf)
    assert lifecycle["transition_default_minimum_object_size"] == "varies_by_storage_class"
    assert lifecycle["rule"] == [
        {
            "id": "expire-daily-checkpoints",
            "status": "Enabled",
            "filter": [{"prefix": "checkpoints/daily/"}],
            "expiration": [{"days": 30}],
        },
        {
            "id": "archive-failures",
            "status": "Enabled",
            "filter": [{"prefix": "failures/"}],
            "transition": [{"days": 90, "storage_class": "GLACIER"}],
        },
        {
            "id": "abort-incomplete-multipart-uploads",
            "status": "Enabled",
            "filter": [{"prefix": ""}],
            "abort_incomplete_multipart_upload": [{"days_after_initiation": 7}],
        },
        {
            "id": "expire-replaced-checkpoint-versions",
            "status": "Enabled",
            "filter": [{"prefix": "checkpoints/"}],
            "noncurrent_version_expiration": [{"noncurrent_days": 7}],
        },
        {
            "id": "expire-replaced-signature-index-versions",
            "status": "Enabled",
            "filter": [{"prefix": "signatures/"}],
            "noncurrent_version_expiration": [{"noncurrent_days": 7}],
        },
    ]
    for rule in lifecycle["rule"]:
        assert "prefix" not in rule, "a rule-level prefix is deprecated; use filter.prefix"
        assert set(rule["filter"][0]) == {"prefix"}


def test_runner_archive_is_uploaded_under_artifacts_with_its_sha256(synth, tf):
    _, obj = only(tf, "aws_s3_object")
    assert obj["bucket"] == _bucket_ref(tf)
    assert obj["content_type"] == "application/gzip"
    source = synth.stack_dir / obj["source"]
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert obj["key"] == f"artifacts/runner-{digest}.tar.gz"
    assert source.name == f"runner-{digest}.tar.gz"
    assert data == runner_artifact.archive_bytes(), "the uploaded archive must be today's runner/ sources, reproducibly"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert "runner/__init__.py" in names and "runner/layout.py" in names
    assert all(n == "runner" or n.startswith("runner/") for n in names)
