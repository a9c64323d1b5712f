"""Fixtures for the `vopr` CLI tests: a CLI invoker, a working directory with vopr.toml, a deployment's resources
created in moto (instance, spot request, bucket, topic, log group, alarms) with its deployment file, a fake
`terraform` on PATH, and results written by the real runner.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from helpers import simulator_repo
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
NAME = "vopr"
BUCKET = f"vopr-simulation-results-{ACCOUNT}-{REGION}"
EMAIL = "oncall@example.com"
TOML = f"""
[deployment]
name = "{NAME}"
region = "{REGION}"
alert_email = "{EMAIL}"
"""


@pytest.fixture(autouse=True)
def _clean_cli_env(monkeypatch):
    """No VOPR_* settings from the developer's shell; wide, colourless rich output; fresh consoles per test."""
    for key in list(os.environ):
        if key.startswith("VOPR_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from vopr import display

    display._consoles.clear()
    yield
    display._consoles.clear()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh current directory holding a vopr.toml for deployment `vopr`."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "vopr.toml").write_text(TOML)
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def invoke():
    """Run the CLI in-process; returns click's Result (stdout and stderr kept apart)."""
    from vopr.cli import app

    runner = CliRunner()

    def _invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, prog_name="vopr")

    return _invoke


def outputs_for(instance_id: str, topic_arn: str, request_id: str = "") -> dict:
    return {
        "deployment_name": NAME,
        "instance_id": instance_id,
        "spot_instance_request_id": request_id,
        "bucket_name": BUCKET,
        "topic_arn": topic_arn,
        "log_group_name": f"/vopr/{NAME}",
        "region": REGION,
        "dashboard_url": f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/{NAME}",
        "no_progress_alarm_name": f"{NAME}-no-progress",
        "failures_alarm_name": f"{NAME}-failures-detected",
        "runner_artifact_key": "artifacts/runner-0.tar.gz",
    }


def create_stack_resources(name: str = NAME) -> SimpleNamespace:
    """What `terraform apply` would have created, made in moto: returns the ids and the stack outputs."""
    ec2 = boto3.client("ec2", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    cw = boto3.client("cloudwatch", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    topic_arn = sns.create_topic(Name=f"{name}-alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=EMAIL)
    logs.create_log_group(logGroupName=f"/vopr/{name}")
    for alarm, metric, comparison in (
        (f"{name}-no-progress", "IterationsCompleted", "LessThanThreshold"),
        (f"{name}-failures-detected", "FailuresDetected", "GreaterThanThreshold"),
    ):
        cw.put_metric_alarm(
            AlarmName=alarm, Namespace="VOPR", MetricName=metric, Dimensions=[{"Name": "Deployment", "Value": name}],
            Statistic="Sum", Period=300, EvaluationPeriods=3, Threshold=1 if metric == "IterationsCompleted" else 0,
            ComparisonOperator=comparison, AlarmActions=[topic_arn], ActionsEnabled=True,
        )
    image = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["al2023-ami-*arm64*"]}])["Images"][0]["ImageId"]
    tags = [{"Key": "Project", "Value": "vopr-aws"}, {"Key": "Deployment", "Value": name}]
    request = ec2.request_spot_instances(
        InstanceCount=1, Type="persistent", InstanceInterruptionBehavior="stop",
        LaunchSpecification={"ImageId": image, "InstanceType": "c7g.medium"},
        TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": tags}],
    )["SpotInstanceRequests"][0]
    request_id = request["SpotInstanceRequestId"]
    described = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])["SpotInstanceRequests"][0]
    instance_id = described["InstanceId"]
    ec2.create_tags(Resources=[instance_id], Tags=tags + [{"Key": "Name", "Value": f"{name}-vopr"}])
    return SimpleNamespace(
        instance_id=instance_id, request_id=request_id, topic_arn=topic_arn, bucket=BUCKET,
        log_group=f"/vopr/{name}", outputs=outputs_for(instance_id, topic_arn, request_id),
        ec2=ec2, s3=s3, sns=sns, logs=logs, cw=cw,
    )


@pytest.fixture
def deployed(aws, workdir):
    """A deployment's resources in moto plus the deployment file `vopr deploy` would have written."""
    from vopr import deployment

    res = create_stack_resources()
    dep = deployment.from_outputs(res.outputs, stack_dir=str(workdir / "cdktf.out" / "stacks" / "vopr-vopr"), engine="terraform")
    res.path = deployment.save(dep)
    res.dep = dep
    return res


def _write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_bin(tmp_path):
    """An empty directory to put fake executables in; `install(name)` adds the fake terraform under that name."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = Path(__file__).with_name("fake_terraform.py")

    def install(name: str = "terraform") -> Path:
        body = f"#!{sys.executable}\nimport os, runpy\nos.environ['FAKE_TF_ENGINE'] = {name!r}\nrunpy.run_path({str(script)!r}, run_name='__main__')\n"
        return _write_exe(bindir / name, body)

    def script_exe(name: str, body: str) -> Path:
        return _write_exe(bindir / name, body)

    return SimpleNamespace(dir=bindir, install=install, script=script_exe)


@pytest.fixture
def fake_tf(fake_bin, tmp_path, monkeypatch):
    """A recording fake terraform as the only engine on PATH; `.calls()` returns what it was run with."""
    fake_bin.install("terraform")
    log = tmp_path / "tf-calls.jsonl"
    outputs = tmp_path / "tf-outputs.json"
    state = tmp_path / "tf-state.txt"
    monkeypatch.setenv("PATH", str(fake_bin.dir))
    monkeypatch.setenv("FAKE_TF_LOG", str(log))
    monkeypatch.setenv("FAKE_TF_OUTPUTS", str(outputs))
    monkeypatch.setenv("FAKE_TF_STATE", str(state))
    monkeypatch.delenv("FAKE_TF_FAIL", raising=False)

    def calls() -> list[dict]:
        return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []

    return SimpleNamespace(bin=fake_bin, log=log, outputs=outputs, state=state, calls=calls)


@pytest.fixture(scope="session")
def synth_dir(synth):
    """The session's one synth (tests/conftest.py), whose working directory is the deploy tests' home.

    The Terraform state path (cwd-relative) is part of the synth cache key, so deploy tests run in that same home,
    where `vopr synth`/`vopr deploy` are cache hits and never import cdktf again.
    """
    from stacks.synth import synthesize
    from vopr.config import load

    previous = os.getcwd()
    os.chdir(synth.workdir)
    try:
        result = synthesize(load(synth.config_path, environ={}), synth.outdir)
    finally:
        os.chdir(previous)
    assert result.cached, "the CLI tests' config must match the session synth's, or cdktf is imported a second time"
    return SimpleNamespace(home=synth.workdir, outdir=synth.outdir, stack_dir=result.stack_dir,
                           tf_json=json.loads(result.tf_json_path.read_text()), state_path=result.state_path)


@pytest.fixture
def make_stack(aws):
    """Create in moto what `terraform apply` would have; returns the ids and outputs."""
    return create_stack_resources


SIM_SCRIPT = f"""#!/bin/sh
# the demo simulator, as a checked-in "simulator" of a throwaway repository
exec {sys.executable} -m runner.demo_vopr "$@"
"""
RUN_END_SEED = 60000


def make_sim_repo(path: Path) -> SimpleNamespace:
    """A git repository whose `sim.sh` is the demo simulator; the build step makes it executable."""
    return SimpleNamespace(path=path, commit=simulator_repo(path, "sim.sh", SIM_SCRIPT))


def run_runner(repo: Path, store: str, log_file: Path, env: dict | None = None, end_seed: int = RUN_END_SEED,
               extra: tuple = ()) -> subprocess.CompletedProcess:
    """`python -m runner` for real over seeds [0, end_seed) of the repository's simulator."""
    argv = [sys.executable, "-m", "runner", "--simulator-command", "./sim.sh", "--workdir", str(repo),
            "--store", store, "--repo-url", str(repo), "--git-ref", "main", "--build-command", "chmod +x sim.sh",
            "--end-seed", str(end_seed), "--workers", "2", "--batch-size", "5000", "--process-target-s", "0",
            "--log-file", str(log_file), *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env or dict(os.environ), cwd=repo.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def runner_results(tmp_path_factory):
    """A local results directory written by the real runner (demo simulator, seeds 0-59999), read-only for tests."""
    base = tmp_path_factory.mktemp("runner-results")
    repo = make_sim_repo(base / "sim-repo")
    store = base / "results"
    log = base / "runner.log"
    run_runner(repo.path, str(store), log)
    checkpoint = json.loads((store / "checkpoints" / "latest.json").read_text())
    index = json.loads((store / "signatures" / "index.json").read_text())
    seeds = sorted(int(p.stem) for p in (store / "failures").glob("*.json"))
    return SimpleNamespace(store=store, repo=repo, log=log, checkpoint=checkpoint, index=index, seeds=seeds)


def upload_store(s3, bucket: str, store: Path) -> int:
    """Copy a local results directory into a bucket, key for key (what the runner's S3 store would hold)."""
    count = 0
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store).as_posix()
        if path.is_file() and not rel.startswith(".") and "/." not in rel:
            s3.put_object(Bucket=bucket, Key=rel, Body=path.read_bytes())
            count += 1
    return count


@pytest.fixture
def upload():
    return upload_store


@pytest.fixture
def runner_tools():
    """make_sim_repo(path) and run_runner(repo, store, log, env, end_seed) for tests that run the runner themselves."""
    return SimpleNamespace(make_sim_repo=make_sim_repo, run_runner=run_runner)
