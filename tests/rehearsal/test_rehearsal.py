"""A local rehearsal of the AWS path: the real runner and the real CLI against a moto server, with one kill -9.

The runner (`python -m runner`) drives a protocol-faithful fake simulator, checked into a throwaway git repository,
that fails on chosen seeds; it writes to an S3 bucket, publishes metrics to CloudWatch and alerts to an SNS topic
(read back through an SQS subscription). It is killed with SIGKILL mid-run and restarted. Then `vopr status --json`,
`vopr failures`, `vopr failures show`, `vopr reproduce` and `vopr logs` read what it wrote, through the deployment
file `vopr deploy` would have saved, and every number must agree exactly with the seeds the simulator ran.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from helpers import drain_queue, simulator_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_VOPR = REPO_ROOT / "tests" / "runner" / "fakes" / "fake_vopr.py"
VOPR = str(Path(sys.executable).with_name("vopr"))
NAME = "rehearsal"
REGION = "us-east-1"
BUCKET = "vopr-simulation-results-123456789012-us-east-1"
END_SEED = 3000
WORKERS = 2
BATCH_SEEDS = 250
SEED_DELAY_S = 0.003
KILL_AFTER_NEXT_SEED = 1300
BUILD_COMMAND = "chmod +x vopr"
FAILING = {
    137: ("linearizability", "Final history is not linearizable"),
    1201: ("replica_consistency", "Replica divergence at time 1201017"),
    2222: ("replica_consistency", "Replica divergence at time 99"),
    2890: ("model_verification", "Expected 0x1f00 got 0x2a00 at op 17"),
}
PANIC_AT = 1777
SIGNATURES = {
    "linearizability: Final history is not linearizable": [137],
    "replica_consistency: Replica divergence at time <N>": [1201, 2222],
    "model_verification: Expected <ADDR> got <ADDR> at op <N>": [2890],
}
RUN_TIMEOUT_S = 180


def _sim_repo(path: Path) -> str:
    """A git repository whose `vopr` is the fake simulator; returns its commit."""
    return simulator_repo(path, "vopr", f"#!{sys.executable}\n" + FAKE_VOPR.read_text())


def _aws_resources(env: dict) -> dict:
    """What `vopr deploy` would have created, made in moto; an SQS queue subscribed to the topic reads the alerts."""
    s3 = boto3.client("s3", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    cw = boto3.client("cloudwatch", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    topic = sns.create_topic(Name=f"{NAME}-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    logs.create_log_group(logGroupName=f"/vopr/{NAME}")
    for alarm, metric in ((f"{NAME}-no-progress", "IterationsCompleted"), (f"{NAME}-failures-detected", "FailuresDetected")):
        cw.put_metric_alarm(AlarmName=alarm, Namespace="VOPR", MetricName=metric,
                            Dimensions=[{"Name": "Deployment", "Value": NAME}], Statistic="Sum", Period=300,
                            EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold",
                            AlarmActions=[topic])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="c7g.medium", MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Project", "Value": "vopr-aws"}, {"Key": "Deployment", "Value": NAME}]}
    ])["Instances"][0]["InstanceId"]
    return {"topic": topic, "queue": queue, "instance": instance, "s3": s3, "sqs": sqs, "logs": logs, "cw": cw}


def _save_deployment(workdir: Path, res: dict) -> None:
    from vopr import deployment

    outputs = {
        "deployment_name": NAME, "instance_id": res["instance"], "bucket_name": BUCKET, "topic_arn": res["topic"],
        "log_group_name": f"/vopr/{NAME}", "region": REGION, "no_progress_alarm_name": f"{NAME}-no-progress",
        "failures_alarm_name": f"{NAME}-failures-detected",
        "dashboard_url": f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/{NAME}",
    }
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        deployment.save(deployment.from_outputs(outputs, engine="terraform"))
    finally:
        os.chdir(cwd)


def _runner_argv(repo: Path, state: Path, topic: str) -> list[str]:
    return [
        sys.executable, "-m", "runner", "--simulator-command", "./vopr", "--protocol", "vopr-json",
        "--workdir", str(repo), "--state-dir", str(state), "--store", f"s3://{BUCKET}/", "--region", REGION,
        "--deployment", NAME, "--workers", str(WORKERS), "--batch-size", str(BATCH_SEEDS), "--process-target-s", "0",
        "--metrics", "cloudwatch", "--alert-topic", topic, "--repo-url", str(repo), "--git-ref", "main",
        "--build-command", BUILD_COMMAND, "--end-seed", str(END_SEED),
    ]


def _vopr(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([VOPR, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_rehearsal_runner_then_cli_against_moto_with_a_kill_9(aws, tmp_path):
    repo = tmp_path / "sim"
    commit = _sim_repo(repo)
    spec = {"fail": {str(s): {"invariant": i, "message": m} for s, (i, m) in FAILING.items()}, "panic_at": [PANIC_AT],
            "delay_s": SEED_DELAY_S, "marker_dir": str(tmp_path / "markers"), "log": str(tmp_path / "seeds.log")}
    (tmp_path / "markers").mkdir()
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    res = _aws_resources(aws)
    workdir = tmp_path / "operator"
    workdir.mkdir()
    (workdir / "vopr.toml").write_text(f'[deployment]\nname = "{NAME}"\nregion = "{REGION}"\nalert_email = "oncall@example.com"\n')
    _save_deployment(workdir, res)
    env = {k: v for k, v in aws.items() if not k.startswith("VOPR_")}
    runner_env = {**env, "FAKE_VOPR_SPEC": str(tmp_path / "spec.json"), "PYTHONPATH": str(REPO_ROOT),
                  "VOPR_RUNNER_METRICS_INTERVAL_S": "1"}
    cli_env = {**env, "COLUMNS": "200", "NO_COLOR": "1"}
    state = tmp_path / "state"
    argv = _runner_argv(repo, state, res["topic"])

    # First run: SIGKILL once progress passes KILL_AFTER_NEXT_SEED (a failure record exists by then).
    log1, log2 = tmp_path / "runner-1.log", tmp_path / "runner-2.log"
    with log1.open("wb") as out:
        first = subprocess.Popen(argv, cwd=REPO_ROOT, env=runner_env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            assert first.poll() is None, f"the first run ended early:\n{log1.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the first run made no progress"
            try:
                next_seed = json.loads((state / "checkpoint.json").read_text()).get("next_seed") or 0
            except (OSError, ValueError):
                next_seed = 0
            if next_seed >= KILL_AFTER_NEXT_SEED:
                break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
    runs_before_kill = [int(line.split()[0]) for line in Path(spec["log"]).read_text().splitlines() if line.endswith(" batch")]

    with log2.open("wb") as out:
        second = subprocess.run(argv, cwd=REPO_ROOT, env=runner_env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=RUN_TIMEOUT_S)
    assert second.returncode == 0, log2.read_text()[-3000:]

    # Ground truth: the seeds the simulator ran, and what is in the bucket.
    ran = [int(line.split()[0]) for line in Path(spec["log"]).read_text().splitlines() if line.endswith(" batch")]
    assert set(ran) >= set(range(END_SEED)) - {PANIC_AT}, "a seed was skipped"
    redone = len(ran) - len(set(ran))
    assert redone <= WORKERS, f"{redone} seeds ran twice after one kill; at most one per worker may"
    assert len(runs_before_kill) < len(ran)

    failing_seeds = sorted([*FAILING, PANIC_AT])
    keys = sorted(o["Key"] for o in res["s3"].list_objects_v2(Bucket=BUCKET, Prefix="failures/").get("Contents", []))
    assert keys == sorted(f"failures/{s}.json" for s in failing_seeds), "every failing seed stored exactly once"
    stored = {s: json.loads(res["s3"].get_object(Bucket=BUCKET, Key=f"failures/{s}.json")["Body"].read()) for s in failing_seeds}
    for seed, (invariant, message) in FAILING.items():
        assert (stored[seed]["kind"], stored[seed]["invariant"], stored[seed]["message"]) == ("invariant", invariant, message)
    assert stored[PANIC_AT]["kind"] == "crash" and stored[PANIC_AT]["exit_status"] == 101
    assert "index out of bounds" in stored[PANIC_AT]["stderr_tail"]
    assert all(r["determinism"]["status"] == "reproduced" for r in stored.values())
    assert all(r["simulator"]["commit"] == commit for r in stored.values())
    checkpoint = json.loads(res["s3"].get_object(Bucket=BUCKET, Key="checkpoints/latest.json")["Body"].read())
    assert checkpoint["next_seed"] == END_SEED
    assert checkpoint["totals"]["iterations"] == END_SEED
    assert checkpoint["totals"]["failures"] == len(failing_seeds)
    assert checkpoint["totals"]["signatures"] == len(SIGNATURES) + 1
    today = dt.datetime.now(dt.timezone.utc).date()
    assert res["s3"].get_object(Bucket=BUCKET, Key=f"checkpoints/daily/{today:%Y-%m-%d}.json")

    # vopr status --json: the same numbers, through the deployment file.
    status = _vopr(workdir, cli_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["store"].startswith(f"s3://{BUCKET}")
    progress = data["progress"]
    assert (progress["seeds_total"], progress["next_seed"], progress["failures"], progress["signatures"]) == (
        END_SEED, END_SEED, len(failing_seeds), len(SIGNATURES) + 1)
    assert progress["commit"] == commit
    assert data["instance"]["id"] == res["instance"]

    # vopr failures: one row per signature, counts and seeds exact.
    rows = json.loads(_vopr(workdir, cli_env, "failures", "--json").stdout)
    by_text = {r["signature"]: r for r in rows}
    for text, seeds in SIGNATURES.items():
        assert by_text[text]["count"] == len(seeds) and by_text[text]["example_seeds"] == seeds
        assert by_text[text]["reproducible"] is True
    [crash] = [r for r in rows if r["kind"] == "crash"]
    assert crash["example_seeds"] == [PANIC_AT] and "index out of bounds" in crash["signature"]
    table = _vopr(workdir, cli_env, "failures")
    assert table.returncode == 0 and all(r["signature_id"] in table.stdout for r in rows)

    # vopr failures show / vopr reproduce: the stored record, and commands that really reproduce it.
    shown = json.loads(_vopr(workdir, cli_env, "failures", "show", "1201", "--json").stdout)
    assert shown == stored[1201]
    commands = stored[1201]["reproduce"]["commands"]
    assert commands[-1].startswith("./vopr") and f"git checkout {commit}" in commands and BUILD_COMMAND in commands
    printed = _vopr(workdir, cli_env, "reproduce", "1201")
    assert printed.returncode == 0 and [l for l in printed.stdout.splitlines() if l in commands] == commands
    replay = subprocess.run(["bash", "-c", stored[1201]["reproduce"]["script"]], cwd=tmp_path / "operator",
                            env={**runner_env, "FAKE_VOPR_SPEC": str(tmp_path / "spec.json")},
                            capture_output=True, text=True, timeout=60)
    assert '"seed":1201,"status":"failed"' in replay.stdout

    # vopr logs: the runner's JSON lines, as the CloudWatch agent would ship them, rendered readably.
    lines = _json_lines(log1) + _json_lines(log2)
    assert {"failure", "batch"} <= {l["event"] for l in lines}
    stream = f"{res['instance']}/runner"
    res["logs"].create_log_stream(logGroupName=f"/vopr/{NAME}", logStreamName=stream)
    now_ms = int(time.time() * 1000)
    res["logs"].put_log_events(logGroupName=f"/vopr/{NAME}", logStreamName=stream, logEvents=[
        {"timestamp": now_ms - len(lines) + i, "message": json.dumps(line)} for i, line in enumerate(lines)])
    shown_logs = _vopr(workdir, cli_env, "logs", "--since", "1h")
    assert shown_logs.returncode == 0, shown_logs.stderr
    failure_lines = [l for l in shown_logs.stdout.splitlines() if "failure" in l and "seed" in l]
    for seed in failing_seeds:
        assert any(str(seed) in l for l in failure_lines), f"seed {seed}'s failure line is not in `vopr logs`"
    assert not any(l.lstrip().startswith('{"') for l in shown_logs.stdout.splitlines())

    # Alerts: one at-once email per new signature (a kill between queueing and saving may repeat one, never lose one).
    messages = drain_queue(res["sqs"], res["queue"])
    subjects = [m["Subject"] for m in messages]
    for subject in subjects:
        assert len(subject) <= 100 and subject.isascii() and "\n" not in subject and subject.startswith(f"[{NAME}] ")
    firsts = {seeds[0] for seeds in SIGNATURES.values()} | {PANIC_AT}
    new = [s for s in subjects if s.startswith(f"[{NAME}] New failure, seed ")]
    assert {int(s.split("seed ")[1].split(":")[0]) for s in new} == firsts
    assert len(new) <= len(firsts) + 1
    body = next(m["Message"] for m in messages if m["Subject"].startswith(f"[{NAME}] New failure, seed 1201:"))
    for needle in ("Reproduce seed 1201", f"git checkout {commit}", BUILD_COMMAND, f"s3://{BUCKET}/failures/1201.json",
                   f"s3://{BUCKET}/checkpoints/latest.json", "Totals:", "Alert policy:", "Host:"):
        assert needle in body, f"{needle!r} missing from the alert body"

    # Metrics: real counts (a kill can lose at most the unpublished second of the first run, never add seeds).
    cw = res["cw"]
    stats = cw.get_metric_statistics(Namespace="VOPR", MetricName="IterationsCompleted",
                                     Dimensions=[{"Name": "Deployment", "Value": NAME}],
                                     StartTime=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1),
                                     EndTime=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5),
                                     Period=3600, Statistics=["Sum"])["Datapoints"]
    published = sum(p["Sum"] for p in stats)
    assert END_SEED - len(runs_before_kill) <= published <= END_SEED + WORKERS
    failures_published = sum(p["Sum"] for p in cw.get_metric_statistics(
        Namespace="VOPR", MetricName="FailuresDetected", Dimensions=[{"Name": "Deployment", "Value": NAME}],
        StartTime=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1),
        EndTime=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5), Period=3600, Statistics=["Sum"])["Datapoints"])
    assert 1 <= failures_published <= len(failing_seeds)
    shutil.rmtree(state, ignore_errors=True)
