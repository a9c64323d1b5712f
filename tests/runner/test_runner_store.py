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


def test_a_store_checkpoint_without_an_index_gets_one_rebuilt_from_the_records(tmp_path):
    from runner import checkpoint, layout, records

    class Log:
        def __init__(self):
            self.lines = []

        def warning(self, event, **fields):
            self.lines.append((event, fields))

        error = info = warning

    store = LocalStore(tmp_path)
    simulator = {"repo_url": "r", "git_ref": "main", "commit": "c", "protocol": "vopr-json", "command": "./vopr",
                 "build_command": "make"}
    for seed, sig in ((9, "a: x"), (10, "a: x"), (12, "b: y")):
        rec = records.new_record(deployment="d", seed=seed, kind="invariant", signature=sig, simulator=simulator,
                                 host={}, batch=(0, 20), detected_at=f"2026-12-04T00:00:{seed:02d}Z", determinism=None)
        store.put(layout.failure_key(seed), records.dumps(rec))
    store.put(layout.failure_key(13), b"{not json")
    store.put(layout.CHECKPOINT_LATEST, records.dumps({**checkpoint.fresh("d", 20), "local": None}))
    log = Log()
    doc, key, corrupt = checkpoint.load_from_store(store, log)
    assert key == layout.CHECKPOINT_LATEST and corrupt == []
    index = doc["local"]["signature_index"]
    assert sorted((e["signature"], e["count"], e["example_seeds"]) for e in index.values()) == [("a: x", 2, [9, 10]), ("b: y", 1, [12])]
    assert ("signature_index_rebuilt", {"records": 4, "detail": "store index missing or unreadable; rebuilt from failure records"}) in log.lines
    assert any(event == "record_unreadable" for event, _ in log.lines)
