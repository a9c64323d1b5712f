"""Benchmarks the runner: (1) its throughput over the bare simulator's on the same seed ranges (target >= 0.99),
(2) the time from a failing seed's output line to its SNS alert arriving (moto server; target under 5 s).

The simulator is bench/fake_vopr.c, compiled with gcc into a temp dir: ~60,000 seeds/s per process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_SEEDS_PER_S = 55_000  # per process, CPU-bound: a little faster than the 50,000 seeds/s
WORK_ROUNDS = 4000  # recalibrated at start to TARGET_SEEDS_PER_S
WORKERS = 2
SECONDS_PER_RUN = 20
PAIRS = 4
LATENCY_TRIALS = 3


def build(tmp: Path) -> Path:
    binary = tmp / "fake_vopr"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(HERE / "fake_vopr.c")], check=True)
    return binary


def bare_rate(binary: Path, work: int) -> float:
    """Seeds per CPU-second of one fake simulator process at `work` rounds per seed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(binary), "--json", "--seed", "0", "-n", "200000", "--work", str(work)],
                   stdout=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return 200000 / (_cpu(after) - _cpu(before))


def calibrate(binary: Path) -> int:
    """Work rounds per seed that make one process do about TARGET_SEEDS_PER_S (the issue's 50,000 seeds/s case)."""
    work = 2000
    for _ in range(3):
        work = max(100, int(work * bare_rate(binary, work) / TARGET_SEEDS_PER_S))
    return work


def runner_run(binary: Path, seeds: int, tmp: Path) -> tuple[float, float, float, list[tuple[int, int]], int]:
    """Runs the runner in this process; returns (wall s, runner CPU s, simulators' CPU s, batches, seeds done)."""
    from runner import service, settings

    log = tmp / "runner.log"
    s = settings.Settings(simulator_command=f"{binary} --work {WORK_ROUNDS}", store=str(tmp / "store"),
                          state_dir=str(tmp / "state"), workers=WORKERS, end_seed=seeds, log_file=str(log))
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    service.run(s)
    elapsed = time.perf_counter() - began
    self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    batches = [(e["first_seed"], e["last_seed"]) for e in lines if e["event"] == "batch"]
    done = [e for e in lines if e["event"] == "shutdown"][0]["iterations_this_run"]
    return elapsed, _cpu(self1) - _cpu(self0), _cpu(kids1) - _cpu(kids0), batches, done


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def bare_run(binary: Path, batches: list[tuple[int, int]]) -> float:
    """The same processes, same ranges, same parallelism, writing to /dev/null."""
    queue = list(batches)
    running: dict[int, subprocess.Popen] = {}
    began = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        while queue or running:
            while queue and len(running) < WORKERS:
                first, last = queue.pop(0)
                proc = subprocess.Popen([str(binary), "--work", str(WORK_ROUNDS), "--json", "--seed", str(first),
                                         "-n", str(last - first + 1)], stdout=devnull)
                running[proc.pid] = proc
            pid, _ = os.wait()
            running.pop(pid).returncode = 0
    return time.perf_counter() - began


def throughput(binary: Path) -> bool:
    global WORK_ROUNDS
    WORK_ROUNDS = calibrate(binary)
    per_process = bare_rate(binary, WORK_ROUNDS)
    seeds = int(per_process * WORKERS * SECONDS_PER_RUN)
    print(f"fake simulator: {per_process:,.0f} seeds/s per process ({WORK_ROUNDS} work rounds/seed, ~170-byte lines); {WORKERS} workers; {seeds:,} seeds per run; "
          f"{PAIRS} interleaved pairs (order alternates)")
    ratios, overheads = [], []
    batches: list[tuple[int, int]] = []
    for i in range(PAIRS):
        if i % 2 and batches:
            b_s = bare_run(binary, batches)
        with tempfile.TemporaryDirectory() as d:
            r_s, r_cpu, sim_cpu, batches, done = runner_run(binary, seeds, Path(d))
        assert done == seeds, f"runner completed {done} of {seeds} seeds"
        if not i % 2:
            b_s = bare_run(binary, batches)
        ratios.append(b_s / r_s)
        overheads.append(r_cpu / sim_cpu)
        print(f"  pair {i + 1}: runner {seeds / r_s:,.0f} seeds/s ({r_s:.2f} s, {len(batches)} processes, runner CPU "
              f"{r_cpu:.2f} s vs simulators {sim_cpu:.1f} s = {100 * r_cpu / sim_cpu:.2f}%), "
              f"bare {seeds / b_s:,.0f} seeds/s ({b_s:.2f} s): wall ratio {b_s / r_s:.4f}")
    ratio = statistics.median(ratios)
    overhead = statistics.median(overheads)
    print(f"throughput ratio runner/bare (wall, noisy on a shared machine): median {ratio:.4f} "
          f"(min {min(ratios):.4f}, max {max(ratios):.4f})")
    print(f"runner CPU / simulator CPU: median {100 * overhead:.2f}% -> throughput ratio on one shared core "
          f"{1 / (1 + overhead):.4f}; target >= 0.99")
    return 1 / (1 + overhead) >= 0.99 and ratio >= 0.99


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert_latency(binary: Path, tmp: Path) -> bool:
    port = _free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
        import boto3

        from runner import service, settings

        boto3.client("s3").create_bucket(Bucket="bench")
        topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        latencies = []
        for trial in range(LATENCY_TRIALS):
            fail_at = 200_000 + trial
            s = settings.Settings(
                simulator_command=f"{binary} --work {WORK_ROUNDS} --fail-at {fail_at} --fail-invariant bench_{trial}",
                store=f"s3://bench/trial-{trial}", state_dir=str(tmp / f"state-{trial}"), region="us-east-1",
                alert_topic=topic, workers=1, log_file=str(tmp / f"latency-{trial}.log"))
            stop = threading.Event()
            thread = threading.Thread(target=service.run, args=(s, None, stop))
            thread.start()
            try:
                message = None
                deadline = time.monotonic() + 60
                while message is None and time.monotonic() < deadline:
                    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
                    if got:
                        message = got[0]
                        arrived = time.time()
                        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                assert message is not None, "no alert arrived within 60 s"
            finally:
                stop.set()
                thread.join(120)
            record = json.loads(boto3.client("s3").get_object(Bucket="bench", Key=f"trial-{trial}/failures/{fail_at}.json")["Body"].read())
            stamp = record["simulator_timestamp"]
            emitted = dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
            emitted += int(stamp[20:29]) / 1e9
            latencies.append(arrived - emitted)
            print(f"  trial {trial + 1}: failing line at seed {fail_at} -> SNS message in SQS after {arrived - emitted:.3f} s")
        worst = max(latencies)
        print(f"failing line -> SNS publish: median {statistics.median(latencies):.3f} s, max {worst:.3f} s; target < 5 s")
        return worst < 5.0
    finally:
        moto.terminate()
        moto.wait(10)


def main() -> int:
    if shutil.which("gcc") is None:
        print("gcc not found: the benchmark compiles its fake simulator with gcc", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        binary = build(Path(d))
        ok_throughput = throughput(binary)
        ok_latency = alert_latency(binary, Path(d))
    return 0 if ok_throughput and ok_latency else 1


if __name__ == "__main__":
    sys.exit(main())
