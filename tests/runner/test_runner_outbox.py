"""The outbox on its own, with a local store: delivery order (no checkpoint before the records it counts),
coalescing, nothing lost while delivery fails, metric batches within the PutMetricData limit, bounded backlog."""

from __future__ import annotations

import io
import json
import os
import time

from runner.logs import Logger
from runner.outbox import METRIC_DATUMS_PER_CALL, METRIC_FILES_KEPT, Outbox
from runner.store import LocalStore, StoreError


class FlakyStore(LocalStore):
    """A real local store that refuses keys under `failing` until told otherwise."""

    def __init__(self, root):
        super().__init__(root)
        self.failing: tuple[str, ...] = ()
        self.order: list[str] = []

    def put(self, key, data):
        if key.startswith(self.failing):
            raise StoreError(f"cannot write {key}: unreachable")
        self.order.append(key)
        super().put(key, data)


def _outbox(tmp_path, **kw):
    log = io.StringIO()
    store = FlakyStore(tmp_path / "store")
    box = Outbox(tmp_path / "outbox", store, Logger("vopr", stream=log), **kw)
    return box, store, log


def test_runner_outbox_holds_the_checkpoint_until_the_records_it_counts_are_stored(tmp_path):
    box, store, log = _outbox(tmp_path)
    store.failing = ("failures/",)
    box.put("failures/7.json", b'{"seed": 7}')
    box.put("checkpoints/latest.json", b'{"next_seed": 8}')
    assert box._pass(force=False) == 2
    assert store.order == [] and box.pending() == 2
    assert '"event":"outbox_retry"' in log.getvalue()
    store.failing = ()
    assert box._pass(force=True) == 0
    assert store.order == ["failures/7.json", "checkpoints/latest.json"]
    assert json.loads((tmp_path / "store" / "failures" / "7.json").read_text()) == {"seed": 7}
    assert '"event":"outbox_recovered"' in log.getvalue()


def test_runner_outbox_coalesces_a_key_and_survives_a_restart(tmp_path):
    box, store, _ = _outbox(tmp_path)
    store.failing = ("checkpoints/",)
    for seed in range(5):
        box.put("checkpoints/latest.json", json.dumps({"next_seed": seed}).encode())
    box._pass(force=True)
    assert box.pending() == 1
    again, store2, _ = _outbox(tmp_path)  # a new process over the same directory
    again._pass(force=True)
    assert json.loads((tmp_path / "store" / "checkpoints" / "latest.json").read_text()) == {"next_seed": 4}
    assert again.pending() == 0 and store2.order == ["checkpoints/latest.json"]


def test_runner_outbox_metrics_batched_within_limits_and_backlog_bounded(tmp_path):
    calls: list[int] = []
    failing = [True]

    def put_metrics(data):
        if failing[0]:
            raise ConnectionError("CloudWatch unreachable")
        assert len(data) <= METRIC_DATUMS_PER_CALL
        calls.append(len(data))

    box, _, log = _outbox(tmp_path, put_metrics=put_metrics)
    datum = {"MetricName": "IterationsCompleted", "Value": 1.0, "Unit": "Count", "Timestamp": "2026-12-03T17:00:00+00:00",
             "Dimensions": [{"Name": "Deployment", "Value": "vopr"}]}
    for _ in range(METRIC_FILES_KEPT + 10):
        box.metrics([datum] * 4)
    box._pass(force=True)
    assert box.pending() == METRIC_FILES_KEPT  # the oldest were dropped, with a log line
    assert '"event":"metrics_dropped"' in log.getvalue()
    failing[0] = False
    box._pass(force=True)
    assert box.pending() == 0 and sum(calls) == 4 * METRIC_FILES_KEPT and max(calls) <= METRIC_DATUMS_PER_CALL


def test_runner_outbox_thread_delivers_promptly_and_close_is_bounded(tmp_path):
    box, store, _ = _outbox(tmp_path)
    box.start()
    box.put("failures/1.json", b"{}")
    deadline = time.monotonic() + 10
    while box.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.order == ["failures/1.json"]
    store.failing = ("failures/",)
    box.put("failures/2.json", b"{}")
    assert box.close(timeout_s=5) == 1  # gives up after fruitless rounds; the file stays for the next start
    assert (tmp_path / "outbox" / "10-put-failures~2.json").exists()


def test_runner_outbox_never_stores_a_checkpoint_before_a_record_queued_ahead_of_it(tmp_path):
    box, store, _ = _outbox(tmp_path)
    box.put("checkpoints/daily/2026-12-03.json", b'{"next_seed": 8}')
    box.put("checkpoints/latest.json", b'{"next_seed": 8}')
    stored: list[tuple[str, bytes]] = []
    put = store.put

    def put_while_the_loop_runs(key, data):
        put(key, data)
        stored.append((key, data))
        if key.startswith("checkpoints/daily/") and len(stored) == 1:
            # meanwhile the loop finds seed 9 failing: its record, then a checkpoint counting it, are queued
            box.put("failures/9.json", b'{"seed": 9}')
            box.put("checkpoints/latest.json", b'{"next_seed": 10}')

    store.put = put_while_the_loop_runs
    for _ in range(3):
        box._pass(force=True)
    assert box.pending() == 0
    record_at = stored.index(("failures/9.json", b'{"seed": 9}'))
    assert stored.index(("checkpoints/latest.json", b'{"next_seed": 10}')) > record_at
    assert json.loads((tmp_path / "store" / "checkpoints" / "latest.json").read_text()) == {"next_seed": 10}


def _old_entry(folder, name: str, key: str, body: str, mtime_s: float) -> None:
    path = folder / name
    path.write_text(json.dumps({"op": "put", "key": key, "body": body}, sort_keys=True))
    os.utime(path, (mtime_s, mtime_s))


def test_runner_outbox_names_are_clean_and_entries_queued_under_old_names_are_still_delivered(tmp_path):
    box, _, _ = _outbox(tmp_path / "a")
    box.put("failures/7.json", b"{}")
    box.put("checkpoints/latest.json", b"{}")
    assert sorted(os.listdir(tmp_path / "a" / "outbox")) == ["10-put-failures~7.json", "30-put-checkpoints~latest.json"]
    # what a runner up to 0.1.0 left behind (`.json.json`), then a newer write of the same checkpoint after the upgrade
    outbox = tmp_path / "b" / "outbox"
    outbox.mkdir(parents=True)
    now = time.time()
    _old_entry(outbox, "10-put-failures~9.json.json", "failures/9.json", '{"seed": 9}', now - 60)
    _old_entry(outbox, "30-put-checkpoints~latest.json.json", "checkpoints/latest.json", '{"next_seed": 5}', now - 60)
    _old_entry(outbox, "30-put-signatures~index.json.json", "signatures/index.json", '{"old": true}', now - 10)
    _old_entry(outbox, "30-put-signatures~index.json", "signatures/index.json", '{"old": false}', now - 60)
    box, store, _ = _outbox(tmp_path / "b")
    box.put("checkpoints/latest.json", b'{"next_seed": 10}')
    assert box._pass(force=True) == 0
    assert sorted(store.order) == ["checkpoints/latest.json", "failures/9.json", "signatures/index.json"]
    written = tmp_path / "b" / "store"
    assert json.loads((written / "failures" / "9.json").read_text()) == {"seed": 9}
    assert json.loads((written / "checkpoints" / "latest.json").read_text()) == {"next_seed": 10}
    assert json.loads((written / "signatures" / "index.json").read_text()) == {"old": True}  # the newer file won
    assert os.listdir(outbox) == []
