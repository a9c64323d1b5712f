"""Read what the runner wrote (checkpoint, signature index, failure records) from S3 or a local results directory.

Uses the runner's own store classes and layout keys; adds the Glacier case for archived failure records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from runner import layout
from runner.store import LocalStore, S3Store, StoreError

from vopr.errors import VoprError

RESTORE_TIERS = ("Expedited", "Standard", "Bulk")
_RESTORE_HOURS = {
    ("GLACIER", "Expedited"): "1-5 minutes",
    ("GLACIER", "Standard"): "3-5 hours",
    ("GLACIER", "Bulk"): "5-12 hours",
    ("DEEP_ARCHIVE", "Standard"): "up to 12 hours",
    ("DEEP_ARCHIVE", "Bulk"): "up to 48 hours",
}
ARCHIVED_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


class RecordArchived(VoprError):
    """The failure record is in an archive storage class and must be restored before it can be read."""


@dataclass
class Results:
    store: object
    url: str
    bucket: str = ""
    prefix: str = ""
    s3: object = None
    flags: str = ""  # " --store X" when the store was named on the command line: hints must repeat it

    def read_json(self, key: str) -> dict | None:
        data = self.store.get(key)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            raise VoprError(f"{self.store.where(key)} is not valid JSON: a running runner rewrites it within a minute; if none is running, its next start restores from its local or a daily copy (check the runner's log)") from None
        if not isinstance(value, dict):
            raise VoprError(f"{self.store.where(key)} is not a JSON object: check the runner version writing this store")
        return value

    def checkpoint(self) -> dict | None:
        return self.read_json(layout.CHECKPOINT_LATEST)

    def signature_index(self) -> dict | None:
        return self.read_json(layout.SIGNATURE_INDEX)

    def failure_seeds(self) -> list[int]:
        seeds = []
        for key in self.store.list(layout.FAILURES_PREFIX):
            stem = key[len(layout.FAILURES_PREFIX):].removesuffix(".json")
            if stem.isdigit():
                seeds.append(int(stem))
        return sorted(seeds)

    def failure_record(self, seed: int) -> dict:
        key = layout.failure_key(seed)
        try:
            record = self.read_json(key)
        except StoreError:
            if self.s3 is not None:
                self._raise_if_archived(seed, key)
            raise
        if record is None:
            raise VoprError(f"no failure record for seed {seed} in {self.url}: `vopr failures` lists the recorded seeds")
        return record

    def _head(self, key: str) -> dict:
        return self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)

    def _raise_if_archived(self, seed: int, key: str) -> None:
        try:
            head = self._head(key)
        except Exception:
            return
        storage_class = head.get("StorageClass", "STANDARD")
        if storage_class not in ARCHIVED_CLASSES:
            return
        restore = head.get("Restore") or ""
        if 'ongoing-request="true"' in restore:
            raise RecordArchived(
                f"failure record for seed {seed} is archived in {storage_class} and its restore is in progress: "
                f"retry `vopr failures show {seed}{self.flags}` when it completes"
            )
        raise RecordArchived(
            f"failure record for seed {seed} is archived in {storage_class} (failure records move there after the "
            f"archive period): run `vopr failures show {seed} --restore{self.flags}` to request a readable copy, or "
            f"`aws s3api restore-object --bucket {self.bucket} --key {self.prefix}{key} "
            f"--restore-request 'Days=7,GlacierJobParameters={{Tier=Standard}}'`, then retry"
        )

    def restore_record(self, seed: int, days: int = 7, tier: str = "Standard") -> str:
        """Request a temporary readable copy of an archived record; returns a line saying what happens next."""
        key = layout.failure_key(seed)
        if self.s3 is None:
            raise VoprError(f"{self.url} is a local directory: nothing is archived there, run `vopr failures show {seed}{self.flags}`")
        if tier not in RESTORE_TIERS:
            raise VoprError(f"--tier {tier!r} is not a restore tier: use Expedited, Standard or Bulk", exit_code=2)
        head = self._head(key)
        storage_class = head.get("StorageClass", "STANDARD")
        if storage_class not in ARCHIVED_CLASSES:
            return f"seed {seed}'s record is in {storage_class}, not archived: it can be read now"
        restore = head.get("Restore") or ""
        if 'ongoing-request="true"' in restore:
            return f"a restore of seed {seed}'s record is already in progress; retry `vopr failures show {seed}{self.flags}` later"
        if 'ongoing-request="false"' in restore:
            return f"seed {seed}'s record is already restored ({restore}); `vopr failures show {seed}{self.flags}` reads it"
        self.s3.restore_object(
            Bucket=self.bucket,
            Key=self.prefix + key,
            RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
        )
        wait = _RESTORE_HOURS.get((storage_class, tier), "a few hours")
        return (
            f"restore of seed {seed}'s record from {storage_class} requested ({tier}, readable for {days} days); "
            f"it usually takes {wait}: then run `vopr failures show {seed}{self.flags}`"
        )


def open_results(url: str, aws=None) -> Results:
    """`s3://bucket[/prefix]` (through the CLI's AWS client) or a local results directory that must exist."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise VoprError(f"store URL {url!r} names no bucket: use s3://BUCKET[/PREFIX]")
        if aws is None:
            from vopr.aws import Aws

            aws = Aws()
        client = aws.client("s3")
        store = S3Store(bucket, prefix, client=client)
        return Results(store=store, url=store.url, bucket=bucket, prefix=store.prefix, s3=client)
    path = Path(url).expanduser()
    if not path.is_dir():
        raise VoprError(f"no results directory {path}: run `vopr run` to create one, or pass --store with the right path")
    store = LocalStore(path)
    return Results(store=store, url=store.url)
