"""The store backends: local directory and S3 (moto server) behave alike, including S3's 403-for-missing-key case."""

from __future__ import annotations

import boto3
import pytest

from runner.store import LocalStore, StoreError, open_store

BUCKET = "vopr-store-test-bucket"


def test_local_store_round_trip_and_listing(tmp_path):
    store = open_store(str(tmp_path / "results"))
    assert isinstance(store, LocalStore)
    assert store.get("checkpoints/latest.json") is None
    store.put("failures/7.json", b'{"seed": 7}')
    store.put("failures/12.json", b'{"seed": 12}')
    assert store.get("failures/7.json") == b'{"seed": 7}'
    assert store.list("failures/") == ["failures/12.json", "failures/7.json"]
    assert store.list("checkpoints/") == []


def test_local_store_refuses_a_key_outside_its_root(tmp_path):
    with pytest.raises(StoreError, match="escapes the store root"):
        open_store(str(tmp_path)).put("../outside.json", b"{}")


def test_s3_store_round_trip_under_a_prefix(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    store = open_store(f"s3://{BUCKET}/team-a")
    store.put("failures/3821.json", b'{"seed": 3821}')
    assert s3.get_object(Bucket=BUCKET, Key="team-a/failures/3821.json")["Body"].read() == b'{"seed": 3821}'
    assert store.get("failures/3821.json") == b'{"seed": 3821}'
    assert store.get("failures/1.json") is None
    assert store.list("failures/") == ["failures/3821.json"]


def test_s3_store_reads_403_on_a_missing_key_as_missing_but_not_on_a_present_one(aws):
    """With ListBucket limited by s3:prefix (the instance role), S3 answers GET of a missing key with 403.
    moto cannot enforce that policy, so the 403 is injected at botocore's before-call hook."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    store = open_store(f"s3://{BUCKET}/")
    store.put("checkpoints/daily/2026-12-01.json", b"{}")

    def deny_get(params, model, **_):
        if model.name == "GetObject":
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    store._client.meta.events.register("before-call.s3.GetObject", deny_get)
    assert store.get("checkpoints/latest.json") is None
    with pytest.raises(StoreError, match="AccessDenied: Access Denied"):
        store.get("checkpoints/daily/2026-12-01.json")


def test_s3_store_errors_are_one_line(aws):
    store = open_store("s3://no-such-bucket-vopr-test/")
    with pytest.raises(StoreError) as info:
        store.put("failures/1.json", b"{}")
    assert "\n" not in str(info.value) and "NoSuchBucket" in str(info.value)
