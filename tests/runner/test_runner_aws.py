"""The runner against moto in server mode (real HTTP): records, checkpoints, the signature index, metrics and
SNS alerts arrive and are read back; the store going away and coming back; restore from S3; SIGTERM and a
spot interruption notice (fake IMDSv2 server) flush everything and exit 0; the alert limiter survives restarts."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import time
from urllib.parse import urlparse

import boto3
import pytest

from helpers import drain_queue
from runner_helpers import FakeImds, TcpForwarder, parse_logs, run_runner, start_runner

BUCKET = "vopr-results-test"


@pytest.fixture
def aws_world(aws, tmp_path):
    """A bucket, an alert topic with an SQS queue subscribed (to read alerts back), and runner flags for them."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="vopr-alerts")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    class World:
        env = aws
        flags = ("--store", f"s3://{BUCKET}", "--region", "us-east-1", "--alert-topic", topic, "--metrics", "cloudwatch",
                 "--state-dir", str(tmp_path / "state"))

        @staticmethod
        def get(key: str):
            try:
                return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                return None

        @staticmethod
        def keys(prefix: str = "") -> list[str]:
            return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))

        @staticmethod
        def alerts() -> list[dict]:
            return drain_queue(sqs, queue)

    return World


def _run(sim, tmp_path, world, *extra, **kw):
    return run_runner(sim, tmp_path / "unused-local-store", *world.flags, *extra, env=world.env, **kw)


def test_runner_records_checkpoints_index_metrics_and_alerts_arrive_in_aws(fake_sim, tmp_path, aws_world):
    fake_sim.set(fail={"3": {}, "5": {}, "12": {"invariant": "linearizability", "message": "Final history is not linearizable"}})
    result = _run(fake_sim, tmp_path, aws_world, "--batch-size", "10", "--max-batches", "2", "--simulator-commit", "4c241cb")
    assert result.returncode == 0, result.stderr
    assert aws_world.keys("failures/") == ["failures/12.json", "failures/3.json", "failures/5.json"]
    rec = aws_world.get("failures/3.json")
    assert rec["determinism"]["status"] == "reproduced" and rec["simulator"]["commit"] == "4c241cb"
    latest = aws_world.get("checkpoints/latest.json")
    assert latest["next_seed"] == 20 and latest["totals"]["failures"] == 3 and "local" not in latest
    today = dt.datetime.now(dt.timezone.utc).date()
    assert aws_world.get(f"checkpoints/daily/{today:%Y-%m-%d}.json")["next_seed"] == 20
    idx = aws_world.get("signatures/index.json")["signatures"]
    assert sorted(e["count"] for e in idx.values()) == [1, 2]
    assert result.events("shutdown")[0]["outbox_left"] == 0

    cw = boto3.client("cloudwatch")
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="VOPR")["Metrics"]
             if m["Dimensions"] == [{"Name": "Deployment", "Value": "vopr"}]}
    assert names == {"IterationsCompleted", "FailuresDetected", "NewFailureSignatures", "SeedsPerSecond"}
    now = dt.datetime.now(dt.timezone.utc)

    def total(metric: str) -> float:
        points = cw.get_metric_statistics(Namespace="VOPR", MetricName=metric, Statistics=["Sum"], Period=60,
                                          Dimensions=[{"Name": "Deployment", "Value": "vopr"}],
                                          StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=1))
        return sum(p["Sum"] for p in points["Datapoints"])

    assert total("IterationsCompleted") == 20 and total("FailuresDetected") == 3 and total("NewFailureSignatures") == 2

    alerts = aws_world.alerts()
    assert [a["Subject"] for a in alerts] == [  # each batch found a new signature: both go out at once
        "[vopr] New failure, seed 3: replica_consistency: Replica divergence at time <N>",
        "[vopr] New failure, seed 12: linearizability: Final history is not linearizable"]
    body = alerts[0]["Message"]
    assert re.search(r"Batch: seeds 0-9, [12] failures? in this batch", body)
    for needle in ("New signatures (1)", rec["signature_id"], "Latest failed seeds (", "  3  invariant  replica_consistency",
                   "Totals: ", f"s3://{BUCKET}/checkpoints/latest.json",
                   f"s3://{BUCKET}/failures/3.json", "git checkout 4c241cb", "--json --seed 3 -n 1 -v",
                   "Host: ", "(instance not on EC2)", "Time: 20"):
        assert needle in body, needle


def test_runner_store_down_then_back_loop_continues_and_everything_arrives(fake_sim, tmp_path, aws_world, moto_endpoint):
    proxy = TcpForwarder(urlparse(moto_endpoint).port)
    env = dict(aws_world.env, AWS_ENDPOINT_URL=proxy.url)
    log = tmp_path / "runner.log"
    fake_sim.set(delay_s=0.02, fail_every=25)
    # unreachable at start with no local checkpoint: waits, never starts from scratch blind
    proc = start_runner(fake_sim, tmp_path / "x", *aws_world.flags, "--batch-size", "20", env=env, log_path=log)
    try:
        _wait_for(lambda: any(e.get("where") == "restore" for e in parse_logs(log.read_text())), 30)
        assert fake_sim.seeds_run() == []
        proxy.up()
        _wait_for(lambda: "failures/24.json" in aws_world.keys("failures/"), 40)
        proxy.down()
        down_at = len(fake_sim.seeds_run())
        _wait_for(lambda: any(e["event"] == "outbox_retry" for e in parse_logs(log.read_text())), 60)
        _wait_for(lambda: len(fake_sim.seeds_run()) > down_at + 100, 30)  # the loop keeps going while AWS is down
        local_records = {p.name for p in (tmp_path / "state" / "failures").glob("*.json")}
        assert len(local_records) >= 3
        assert not {f"failures/{n}" for n in local_records} <= set(aws_world.keys("failures/"))
        proxy.up()
        _wait_for(lambda: {f"failures/{n}" for n in local_records} <= set(aws_world.keys("failures/")), 60)
        assert any(e["event"] == "outbox_recovered" for e in parse_logs(log.read_text()))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.down()
    final = {f"failures/{p.name}" for p in (tmp_path / "state" / "failures").glob("*.json")}
    assert final == set(aws_world.keys("failures/"))
    latest = aws_world.get("checkpoints/latest.json")
    local = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert latest["next_seed"] == local["next_seed"] and latest["totals"] == local["totals"]
    assert list((tmp_path / "state" / "outbox").glob("*.json")) == []
    assert len(aws_world.alerts()) >= 1


def test_runner_corrupt_local_checkpoint_recovered_from_s3(fake_sim, tmp_path, aws_world):
    fake_sim.set(fail={"4": {}})
    assert _run(fake_sim, tmp_path, aws_world, "--batch-size", "10", "--max-batches", "1").returncode == 0
    (tmp_path / "state" / "checkpoint.json").write_bytes(b"\x00\x00 truncated")
    second = _run(fake_sim, tmp_path, aws_world, "--batch-size", "10", "--max-batches", "1")
    assert second.returncode == 0, second.stderr
    restored = second.events("checkpoint_restored")[0]
    assert restored["source"] == f"s3://{BUCKET}/checkpoints/latest.json" and restored["next_seed"] == 10
    latest = aws_world.get("checkpoints/latest.json")
    assert latest["next_seed"] == 20 and latest["totals"]["failures"] == 1 and latest["totals"]["signatures"] == 1
    assert sorted(fake_sim.seeds_run()) == list(range(20))


def test_runner_sigterm_flushes_everything_and_exits_0(fake_sim, tmp_path, aws_world):
    fake_sim.set(delay_s=0.05, fail={"2": {}})
    log = tmp_path / "runner.log"
    proc = start_runner(fake_sim, tmp_path / "x", *aws_world.flags, "--batch-size", "1000", env=aws_world.env, log_path=log)
    _wait_for(lambda: any(e["event"] == "failure" for e in parse_logs(log.read_text())), 30)
    time.sleep(0.3)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0
    assert time.monotonic() - began < 90
    shutdown = [e for e in parse_logs(log.read_text()) if e["event"] == "shutdown"][0]
    assert shutdown["reason"] == "SIGTERM" and shutdown["outbox_left"] == 0
    latest = aws_world.get("checkpoints/latest.json")
    local = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert latest["next_seed"] == local["next_seed"] >= 3 and latest["ranges_in_flight"]
    assert aws_world.keys("failures/") == ["failures/2.json"]
    assert len(aws_world.alerts()) == 1
    restarted = _run(fake_sim, tmp_path, aws_world, "--batch-size", "1000", "--max-seconds", "1")
    assert restarted.events("runner_started")[0]["next_seed"] == latest["next_seed"]


def test_runner_spot_notice_from_imdsv2_stops_gracefully(fake_sim, tmp_path, aws_world):
    imds = FakeImds()
    env = dict(aws_world.env, AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
               VOPR_RUNNER_SPOT_POLL_S="0.3")
    fake_sim.set(delay_s=0.05, fail={"1": {}})
    log = tmp_path / "runner.log"
    proc = start_runner(fake_sim, tmp_path / "x", *aws_world.flags, env=env, log_path=log)
    try:
        _wait_for(lambda: any(e["event"] == "failure" for e in parse_logs(log.read_text())), 30)
        imds.notice = json.dumps({"action": "terminate", "time": "2026-12-03T17:02:00Z"})
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        imds.close()
    lines = parse_logs(log.read_text())
    assert [e["event"] for e in lines if e["event"] == "spot_interruption"] == ["spot_interruption"]
    assert [e for e in lines if e["event"] == "shutdown"][0]["reason"] == "spot_interruption"
    assert imds.requests[0][:2] == ("PUT", "/latest/api/token")
    assert all(authorised for method, _path, authorised in imds.requests if method == "GET")
    rec = aws_world.get("failures/1.json")
    assert rec["host"]["instance_id"] == "i-0fake1234567890"
    assert aws_world.get("checkpoints/latest.json")["host"]["instance_id"] == "i-0fake1234567890"


def test_runner_alert_rate_limit_holds_summarises_and_survives_restarts(fake_sim, tmp_path, aws_world):
    flags = ("--batch-size", "10", "--max-batches", "1")
    fake_sim.set(fail={"3": {}})
    _run(fake_sim, tmp_path, aws_world, *flags)
    first = aws_world.alerts()
    assert [a["Subject"] for a in first] == ["[vopr] New failure, seed 3: replica_consistency: Replica divergence at time <N>"]
    # a restart (think: crash loop) finds a known signature within the hour: held back, not sent
    fake_sim.set(fail={"14": {}})
    second = _run(fake_sim, tmp_path, aws_world, *flags)
    assert aws_world.alerts() == [] and [e["reason"] for e in second.events("alert_held")] == ["failure"]
    # a never-seen signature goes out at once, with what was held back summarised
    fake_sim.set(fail={"25": {"invariant": "commit_history", "message": "commit 0x7ffd5e8c went backwards"}})
    _run(fake_sim, tmp_path, aws_world, *flags)
    third = aws_world.alerts()
    assert len(third) == 1 and "commit_history: commit <ADDR> went backwards" in third[0]["Subject"]
    assert "Held back by the rate limit" in third[0]["Message"] and "latest seeds: 14" in third[0]["Message"]
    # new signatures are capped at 5 immediate emails an hour: 2 used, so 3 more, then held
    fake_sim.set(delay_s=0.15, fail={str(s): {"invariant": f"inv_{chr(97 + s - 30)}", "message": "boom"} for s in range(30, 36)})
    fourth = _run(fake_sim, tmp_path, aws_world, *flags)
    sent = aws_world.alerts()
    assert len(sent) == 3, [a["Subject"] for a in sent]
    assert len(fourth.events("alert_held")) >= 1
    for alert in first + third + sent:
        assert len(alert["Subject"]) <= 100 and alert["Subject"].isascii() and "\n" not in alert["Subject"]


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout_s} s")


def test_runner_outbox_left_by_an_outage_is_delivered_after_a_restart(fake_sim, tmp_path, aws_world):
    flags = ("--batch-size", "10", "--max-batches", "1")
    assert _run(fake_sim, tmp_path, aws_world, *flags).returncode == 0  # a local checkpoint exists from here on
    fake_sim.set(fail={"13": {}, "16": {}})
    closed = TcpForwarder(1)  # a port nothing listens on
    down = run_runner(fake_sim, tmp_path / "x", *aws_world.flags, *flags, env=dict(aws_world.env, AWS_ENDPOINT_URL=closed.url))
    assert down.returncode == 0
    assert down.events("shutdown")[0]["outbox_left"] >= 3  # two records, their alert, the checkpoint, metrics
    assert aws_world.keys("failures/") == [] and aws_world.get("checkpoints/latest.json")["next_seed"] == 10
    fake_sim.set(fail={})
    up = _run(fake_sim, tmp_path, aws_world, *flags)
    assert up.returncode == 0 and up.events("shutdown")[0]["outbox_left"] == 0
    assert aws_world.keys("failures/") == ["failures/13.json", "failures/16.json"]
    assert aws_world.get("checkpoints/latest.json")["next_seed"] == 30
    assert [a["Subject"] for a in aws_world.alerts()][-1].startswith("[vopr] New failure, seed 13")
