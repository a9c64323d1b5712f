"""The outbox: every store write, SNS publish and metric batch is first a file on disk, then delivered by a
background thread with backoff, so the loop never waits on AWS and nothing queued is lost across restarts.

Files are named `<class>-<op>-<name>.json` (`30-put-checkpoints~latest.json`) and delivered in class order:
failure records (10), alerts (20), checkpoint and index (30: each waits for the records queued before it,
which it may count), metrics (40). A write to a key that is already queued replaces it (the checkpoint coalesces).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from runner.store import StoreError, atomic_write, describe_aws_error

RECORDS, ALERTS, STATE, METRICS = "10", "20", "30", "40"
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
OUTAGE_ERROR_AFTER_S = 300.0
METRIC_FILES_KEPT = 1440
METRIC_MAX_AGE_S = 14 * 24 * 3600 - 3600
METRIC_DATUMS_PER_CALL = 1000


class Outbox:
    def __init__(self, directory: Path, store, log, publish: Callable[[str, str], None] | None = None,
                 put_metrics: Callable[[list[dict]], None] | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.log = log
        self._publish = publish
        self._put_metrics = put_metrics
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._deadline = 0.0
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._outage_since: dict[str, float] = {}
        self._outage_reported: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="vopr-outbox", daemon=True)
        self.delivered = 0
        self._rename_old_entries()

    def _rename_old_entries(self) -> None:
        """Runners up to 0.1.0 named store writes `<...>.json.json`: give them today's names so a newer write to the
        same key replaces them (where both exist, the newer file wins) and nothing queued is lost."""
        for name in os.listdir(self.dir):
            if name.endswith(".json.json") and not name.startswith("."):
                old, new = self.dir / name, self.dir / name[: -len(".json")]
                try:
                    if new.exists() and new.stat().st_mtime_ns >= old.stat().st_mtime_ns:
                        old.unlink()
                    else:
                        os.replace(old, new)
                except FileNotFoundError:
                    pass

    # -- enqueue (main thread) -------------------------------------------------------------------------------

    def put(self, key: str, body: bytes) -> None:
        cls = RECORDS if key.startswith("failures/") else STATE
        name = key.replace("/", "~")
        item = {"op": "put", "key": key, "body": body.decode("utf-8")}
        if cls == STATE:
            item["after"] = self._queued(RECORDS)
        self._write(f"{cls}-put-{name[: -len('.json')] if name.endswith('.json') else name}", item)

    def alert(self, subject: str, message: str) -> None:
        self._write(f"{ALERTS}-sns-{time.time_ns()}", {"op": "publish", "subject": subject, "message": message})

    def metrics(self, datums: list[dict]) -> None:
        self._write(f"{METRICS}-cw-{time.time_ns()}", {"op": "metrics", "data": datums})

    def _write(self, name: str, item: dict) -> None:
        data = json.dumps(item, sort_keys=True).encode("utf-8")
        with self._lock:
            atomic_write(self.dir / (name + ".json"), data)
        self._wake.set()

    def pending(self) -> int:
        try:
            return sum(1 for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith("."))
        except OSError:
            return 0

    # -- delivery (background thread) ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._wake.set()

    def close(self, timeout_s: float) -> int:
        """Deliver what is queued, ignoring backoff, for at most `timeout_s`; returns how many remain."""
        self._deadline = time.monotonic() + timeout_s
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 1)
        return self.pending()

    def _run(self) -> None:
        while True:
            waits = [t - time.monotonic() for t in self._retry_at.values()]
            self._wake.wait(max(0.05, min(waits + [30.0])))
            self._wake.clear()
            if self._stopping:
                self._final_flush()
                return
            try:
                self._pass(force=False)
            except Exception as exc:  # the thread must survive anything: the files stay for the next pass
                self.log.error("error", where="outbox", error=f"{type(exc).__name__}: {exc}")
                time.sleep(1)

    def _final_flush(self) -> None:
        """Ignore backoff; give up (the files stay for the next start) at the deadline or after two rounds
        that delivered nothing."""
        fruitless = 0
        while time.monotonic() < self._deadline and fruitless < 2:
            before = self.delivered
            if self._pass(force=True) == 0:
                return
            fruitless = fruitless + 1 if self.delivered == before else 0
            time.sleep(0.5)

    def _pass(self, force: bool) -> int:
        """One delivery round; returns how many items are still queued."""
        now = time.monotonic()
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith("."))
        except OSError:
            return 1
        self._trim_metrics(names)
        records_blocked = False
        metric_names: list[str] = []
        remaining = 0
        failed_now: set[str] = set()
        for name in names:
            cls = name[:2]
            if self._stopping and time.monotonic() > self._deadline:
                return 1
            if (cls == STATE and records_blocked) or cls in failed_now:
                remaining += 1
                continue
            if not force and self._retry_at.get(cls, 0.0) > now:
                records_blocked |= cls == RECORDS
                remaining += 1
                continue
            if cls == METRICS:
                metric_names.append(name)
                continue
            path = self.dir / name
            item = self._read(path)
            if item is None:
                continue
            if cls == STATE and self._waits_for_records(item):
                records_blocked = True
                remaining += 1
                continue
            try:
                self._deliver(item)
            except Exception as exc:
                self._failed(cls, exc, len(names))
                failed_now.add(cls)
                records_blocked |= cls == RECORDS
                remaining += 1
                continue
            self._succeeded(cls)
            self._remove_if_unchanged(path, item["_stat"])
        if metric_names:
            remaining += self._deliver_metrics(metric_names, len(names))
        return remaining

    def _queued(self, cls: str) -> list[str]:
        return sorted(n for n in os.listdir(self.dir) if n.startswith(cls + "-") and n.endswith(".json"))

    def _waits_for_records(self, item: dict) -> bool:
        """A checkpoint (or index) is not stored before the records queued ahead of it: it may count them."""
        queued = self._queued(RECORDS)
        return bool(queued) and (item.get("after") is None or not set(item["after"]).isdisjoint(queued))

    def _read(self, path: Path) -> dict | None:
        try:
            st = path.stat()
            item = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.log.error("error", where="outbox", error=f"unreadable outbox file {path.name}: {exc}; moved aside")
            os.replace(path, path.with_name("." + path.name + ".bad"))
            return None
        item["_stat"] = (st.st_ino, st.st_mtime_ns)
        return item

    def _remove_if_unchanged(self, path: Path, stat: tuple[int, int]) -> None:
        with self._lock:
            try:
                st = path.stat()
                if (st.st_ino, st.st_mtime_ns) == stat:
                    path.unlink()
            except FileNotFoundError:
                pass
        self.delivered += 1

    def _deliver(self, item: dict) -> None:
        if item["op"] == "put":
            self.store.put(item["key"], item["body"].encode("utf-8"))
        elif item["op"] == "publish":
            if self._publish is None:
                raise RuntimeError("no alert topic configured")
            self._publish(item["subject"], item["message"])
        else:
            raise ValueError(f"unknown outbox operation {item['op']!r}")

    def _deliver_metrics(self, names: list[str], queued: int) -> int:
        """PutMetricData in batches of at most 1000 datums (the API limit); returns how many files remain."""
        if self._put_metrics is None:
            return len(names)
        items = [(name, item) for name in names if (item := self._read(self.dir / name)) is not None]
        while items:
            batch, datums = [], 0
            while items and (not batch or datums + len(items[0][1]["data"]) <= METRIC_DATUMS_PER_CALL):
                batch.append(items.pop(0))
                datums += len(batch[-1][1]["data"])
            try:
                self._put_metrics([d for _, item in batch for d in item["data"]])
            except Exception as exc:
                self._failed(METRICS, exc, queued)
                return len(items) + len(batch)
            self._succeeded(METRICS)
            for name, item in batch:
                self._remove_if_unchanged(self.dir / name, item["_stat"])
        return 0

    def _trim_metrics(self, names: list[str]) -> None:
        metric_files = [n for n in names if n.startswith(METRICS)]
        cutoff_ns = time.time_ns() - int(METRIC_MAX_AGE_S * 1e9)
        stale = [n for n in metric_files if int(n.split("-")[2].split(".")[0]) < cutoff_ns]
        excess = metric_files[: max(0, len(metric_files) - METRIC_FILES_KEPT)]
        drop = sorted(set(stale) | set(excess))
        for name in drop:
            try:
                (self.dir / name).unlink()
                names.remove(name)
            except (FileNotFoundError, ValueError):
                pass
        if drop:
            self.log.warning("metrics_dropped", count=len(drop),
                             reason="CloudWatch unreachable too long: kept the newest 24 h of metric data")

    def _failed(self, cls: str, exc: BaseException, queued: int) -> None:
        now = time.monotonic()
        count = self._failures.get(cls, 0) + 1
        self._failures[cls] = count
        self._retry_at[cls] = now + min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (count - 1))
        error = str(exc) if isinstance(exc, StoreError) else describe_aws_error(exc)
        what = {RECORDS: "failure records", ALERTS: "alerts", STATE: "checkpoint", METRICS: "metrics"}[cls]
        since = self._outage_since.setdefault(cls, now)
        if count == 1:
            self.log.warning("outbox_retry", what=what, error=error, queued=queued,
                             retry_in_s=round(self._retry_at[cls] - now, 1))
        elif now - since >= OUTAGE_ERROR_AFTER_S and cls not in self._outage_reported:
            self._outage_reported.add(cls)
            self.log.error("error", where="outbox", what=what, error=error, queued=queued,
                           failing_for_s=round(now - since), detail="still retrying; nothing is dropped")

    def _succeeded(self, cls: str) -> None:
        if self._failures.pop(cls, 0):
            since = self._outage_since.pop(cls, time.monotonic())
            self._outage_reported.discard(cls)
            self.log.info("outbox_recovered", what=cls, outage_s=round(time.monotonic() - since, 1))
        self._retry_at.pop(cls, None)


def metric_timestamp(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).isoformat()
