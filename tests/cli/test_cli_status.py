"""`vopr status` on results the real runner wrote: a local directory, the deployment's bucket in moto, and AWS state."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from vopr import spend, status
from vopr.results import open_results

UTC = dt.timezone.utc


def _expected_progress(runner_results) -> dict:
    cp = runner_results.checkpoint
    return {
        "seeds_total": cp["totals"]["iterations"],
        "failures": cp["totals"]["failures"],
        "signatures": cp["totals"]["signatures"],
        "next_seed": cp["next_seed"],
        "commit": runner_results.repo.commit,
    }


def test_status_json_on_a_local_results_directory(runner_results, workdir, invoke):
    result = invoke("status", "--store", runner_results.store, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    prog = data["progress"]
    assert prog["seeds_total"] == runner_results.checkpoint["totals"]["iterations"] >= 59000
    assert prog["next_seed"] == 60000
    assert prog["failures"] == len(runner_results.seeds) > 0
    assert prog["signatures"] == len(runner_results.index["signatures"]) > 0
    for key, value in _expected_progress(runner_results).items():
        assert prog[key] == value, key
    assert prog["seeds_last_hour"] > 0
    assert data["instance"] is None and data["alarms"] == [] and data["cost_this_month"] is None
    assert data["store"] == str(runner_results.store)


def test_status_on_a_local_directory_without_a_checkpoint_gives_local_advice(tmp_path, workdir, invoke):
    (tmp_path / "early" / "failures").mkdir(parents=True)
    data = json.loads(invoke("status", "--store", tmp_path / "early", "--json").stdout)
    [warning] = [w for w in data["warnings"] if w.startswith("no checkpoint yet")]
    assert "vopr run --store" in warning and "bootstrap" not in warning


def test_status_screen_on_a_local_results_directory(runner_results, workdir, invoke):
    result = invoke("status", "--store", runner_results.store)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"seeds done  {runner_results.checkpoint['totals']['iterations']:,}" in out
    assert f"failures    {len(runner_results.seeds)} in {len(runner_results.index['signatures'])} distinct signature(s)" in out
    assert runner_results.repo.commit[:12] in out and "(main)" in out
    assert "checkpoint" in out


def test_status_warns_when_the_checkpoint_is_stale(runner_results, tmp_path, workdir, invoke):
    store = tmp_path / "results"
    shutil.copytree(runner_results.store, store)
    cp_path = store / "checkpoints" / "latest.json"
    cp = json.loads(cp_path.read_text())
    two_hours_ago = dt.datetime.now(UTC) - dt.timedelta(hours=2, minutes=1)
    cp["updated_at"] = two_hours_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    cp["progress"] = [[two_hours_ago.strftime("%Y-%m-%dT%H:%M:%SZ"), cp["totals"]["iterations"]]]
    cp_path.write_text(json.dumps(cp))
    result = invoke("status", "--store", store)
    assert result.exit_code == 0
    assert "warning: last checkpoint is 2h 01m old (stale after 10m 00s)" in result.stdout
    data = json.loads(invoke("status", "--store", store, "--json").stdout)
    assert data["progress"]["checkpoint_stale"] is True
    assert data["progress"]["seeds_last_hour"] == 0
    assert any("not making progress" in w for w in data["warnings"])


def test_status_missing_results_directory_is_one_line(workdir, invoke):
    result = invoke("status", "--store", "no-such-dir")
    assert result.exit_code == 1
    assert result.stderr == "error: no results directory no-such-dir: run `vopr run` to create one, or pass --store with the right path\n"


def test_status_of_a_deployment_reads_aws_and_the_bucket(runner_results, deployed, upload, invoke):
    upload(deployed.s3, deployed.bucket, runner_results.store)
    result = invoke("status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["deployment"] == "vopr" and data["region"] == "us-east-1"
    assert data["store"] == f"s3://{deployed.bucket}/"
    inst = data["instance"]
    assert inst["id"] == deployed.instance_id and inst["state"] == "running" and inst["type"] == "c7g.medium"
    assert inst["uptime_s"] is not None and inst["uptime_s"] >= 0
    for key, value in _expected_progress(runner_results).items():
        assert data["progress"][key] == value, key
    assert [(a["name"], a["actions_enabled"]) for a in data["alarms"]] == [("vopr-no-progress", True), ("vopr-failures-detected", True)]
    assert data["alerts"]["confirmed"] is True
    assert data["alerts"]["subscriptions"] == [{"protocol": "email", "endpoint": "oncall@example.com", "confirmed": True}]
    cost = data["cost_this_month"]
    assert cost["estimate"] is True and cost["total_usd"] >= cost["fixed_so_far_usd"] >= 0
    assert cost["price_source"] in ("EC2 spot price history", "vopr.cost table")
    screen = invoke("status")
    assert screen.exit_code == 0, screen.output
    out = screen.stdout
    assert deployed.instance_id in out and "running" in out
    assert "alarm" in out and "vopr-no-progress" in out
    assert "oncall@example.com confirmed" in out
    assert "so far this month" in out and "cost (estimate)" in out
    assert data["dashboard_url"] in out


def test_status_after_stop_says_start_and_shows_disabled_actions(deployed, invoke):
    assert invoke("stop").exit_code == 0
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert "warning: instance is stopped" in result.stdout and "vopr start" in result.stdout
    assert "(actions disabled)" in result.stdout
    assert "not making progress" not in result.stdout


def test_status_before_the_first_checkpoint(deployed, invoke):
    data = json.loads(invoke("status", "--json").stdout)
    assert data["progress"] is None
    assert any(w.startswith(f"no checkpoint yet in s3://{deployed.bucket}/") for w in data["warnings"])
    assert "none yet" in invoke("status").stdout


def test_status_and_failures_read_what_the_runner_wrote_to_s3(deployed, aws, tmp_path, runner_tools, invoke):
    repo = runner_tools.make_sim_repo(tmp_path / "sim")
    runner_tools.run_runner(repo.path, f"s3://{deployed.bucket}", tmp_path / "runner.log", env=aws, end_seed=20000,
                            extra=("--region", "us-east-1", "--state-dir", str(tmp_path / "state")))
    checkpoint = json.loads(deployed.s3.get_object(Bucket=deployed.bucket, Key="checkpoints/latest.json")["Body"].read())
    index = json.loads(deployed.s3.get_object(Bucket=deployed.bucket, Key="signatures/index.json")["Body"].read())
    data = json.loads(invoke("status", "--json").stdout)
    assert data["progress"]["seeds_total"] == checkpoint["totals"]["iterations"] == 20000
    assert data["progress"]["failures"] == checkpoint["totals"]["failures"] > 0
    assert data["progress"]["commit"] == repo.commit
    rows = json.loads(invoke("failures", "--json").stdout)
    assert {r["signature_id"]: r["count"] for r in rows} == {k: v["count"] for k, v in index["signatures"].items()}


def test_seeds_last_hour_from_progress_samples():
    now = dt.datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    samples = [["2026-12-03T16:30:00Z", 1000], ["2026-12-03T16:59:00Z", 5000], ["2026-12-03T17:01:00Z", 5200],
               ["2026-12-03T17:59:00Z", 9000]]
    assert status.seeds_last_hour(samples, 9100, now) == 4100
    assert status.seeds_last_hour(samples[2:], 9100, now) == 3900
    assert status.seeds_last_hour(samples[:2], 5000, now) == 0
    assert status.seeds_last_hour([], 5, now) is None


def test_warnings_for_an_unconfirmed_email_and_alarms():
    data = {
        "store": "s3://b/", "instance": {"state": "running", "spot_request": {"id": "sir-1", "state": "open", "status": "capacity-not-available"}},
        "progress": {"checkpoint_stale": False, "checkpoint_age_s": 30},
        "alarms": [{"name": "vopr-no-progress", "state": "ALARM", "actions_enabled": False, "reason": "Threshold Crossed"}],
        "alerts": {"confirmed": False, "subscriptions": [{"endpoint": "a@example.com", "protocol": "email", "confirmed": False}]},
    }

    class Dep:
        no_progress_alarm_name = "vopr-no-progress"

    warnings = status.warnings(data, Dep())
    assert any("alarm vopr-no-progress is in ALARM: Threshold Crossed" in w for w in warnings)
    assert any("actions disabled although the instance is not stopped" in w for w in warnings)
    assert any(w.startswith("alert email not confirmed (a@example.com)") for w in warnings)
    assert any("spot request sir-1 is open (capacity-not-available)" in w for w in warnings)


def test_pending_subscription_is_reported_after_deploy():
    from vopr import stackops

    class Paginator:
        def paginate(self, **kwargs):
            return [{"Subscriptions": [{"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "a@example.com"}]}]

    class Sns:
        def get_paginator(self, name):
            assert name == "list_subscriptions_by_topic"
            return Paginator()

    class AwsStub:
        def client(self, service):
            return Sns()

    class Dep:
        topic_arn = "arn:aws:sns:us-east-1:123456789012:vopr-alerts"

    text = stackops.subscription_reminder(AwsStub(), Dep(), "a@example.com")
    assert text.startswith("ACTION NEEDED: AWS sent a confirmation email to a@example.com")


@pytest.mark.parametrize(
    "state, launched, reason, hours",
    [
        ("running", dt.datetime(2026, 12, 3, 6, 0, tzinfo=UTC), "", 6.0),
        ("running", dt.datetime(2026, 11, 20, 0, 0, tzinfo=UTC), "", 2 * 24 + 12.0),
        ("stopped", dt.datetime(2026, 12, 3, 6, 0, tzinfo=UTC), "User initiated (2026-12-03 09:30:00 GMT)", 3.5),
        ("stopped", dt.datetime(2026, 12, 3, 6, 0, tzinfo=UTC), "", 0.0),
    ],
)
def test_running_hours_this_month(state, launched, reason, hours):
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    instance = {"State": {"Name": state}, "LaunchTime": launched, "StateTransitionReason": reason}
    assert spend.running_hours_this_month(instance, now) == pytest.approx(hours)


def test_cost_so_far_uses_the_spot_price_history(deployed):
    from vopr.aws import Aws
    from vopr.config import load

    aws = Aws(region="us-east-1")
    instance = aws.client("ec2").describe_instances(InstanceIds=[deployed.instance_id])["Reservations"][0]["Instances"][0]
    now = dt.datetime.now(UTC)
    est = spend.estimate(aws, instance, load("vopr.toml"), now)
    history = aws.client("ec2").describe_spot_price_history(
        InstanceTypes=["c7g.medium"], ProductDescriptions=["Linux/UNIX"], StartTime=now, MaxResults=50
    )["SpotPriceHistory"]
    if history:
        assert est["price_source"] == "EC2 spot price history"
        assert est["hourly_price_usd"] == pytest.approx(min(float(h["SpotPrice"]) for h in history), abs=1e-5)
    expected = est["running_hours"] * (est["hourly_price_usd"] + est["public_ipv4_usd_per_hour"]) + est["fixed_so_far_usd"]
    assert est["total_usd"] == pytest.approx(expected, abs=0.02)
    assert "estimate" in est and "prorated" in est["basis"]


def test_results_reader_rejects_corrupt_json(tmp_path):
    store = tmp_path / "r"
    (store / "checkpoints").mkdir(parents=True)
    (store / "checkpoints" / "latest.json").write_text("{not json")
    from vopr.errors import VoprError

    with pytest.raises(VoprError, match="latest.json is not valid JSON"):
        open_results(str(store)).checkpoint()


def test_status_and_failures_with_an_s3_store_and_no_deployment_file(runner_results, make_stack, workdir, upload, invoke):
    res = make_stack()
    upload(res.s3, res.bucket, runner_results.store)
    data = json.loads(invoke("status", "--store", f"s3://{res.bucket}", "--json").stdout)
    assert data["instance"] is None and data["store"] == f"s3://{res.bucket}/"
    assert data["progress"]["seeds_total"] == runner_results.checkpoint["totals"]["iterations"]
    rows = json.loads(invoke("failures", "--store", f"s3://{res.bucket}", "--json").stdout)
    assert sum(r["count"] for r in rows) == len(runner_results.seeds)
    missing = invoke("status", "--store", "s3://no-such-bucket-vopr")
    assert missing.exit_code == 1 and "the bucket does not exist" in missing.stderr


def test_disabled_alarm_actions_before_the_first_checkpoint_are_the_bootstrap_not_a_fault():
    data = {
        "store": "s3://b/", "instance": {"state": "running"}, "progress": None,
        "alarms": [{"name": "vopr-no-progress", "state": "INSUFFICIENT_DATA", "actions_enabled": False}],
    }

    class Dep:
        no_progress_alarm_name = "vopr-no-progress"

    warnings = status.warnings(data, Dep())
    assert any("actions disabled while the instance bootstraps" in w for w in warnings)
    assert not any("`vopr start` re-enables them" in w for w in warnings)
