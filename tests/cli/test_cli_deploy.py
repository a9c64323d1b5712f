"""`vopr synth`, `vopr deploy` and `vopr destroy` with a recording fake terraform on PATH, resources in moto."""

from __future__ import annotations

import json

import pytest

from vopr import cost, deployment, stackops
from vopr.config import load
from vopr.errors import VoprError


@pytest.fixture
def workdir(synth_dir, monkeypatch):
    """Deploy tests run in the session's synth home (the synth cache key includes the cwd-relative state path)."""
    import shutil

    shutil.rmtree(synth_dir.home / ".vopr", ignore_errors=True)
    (synth_dir.home / "vopr.toml").write_text((synth_dir.home / "vopr.toml").read_text())
    monkeypatch.chdir(synth_dir.home)
    return synth_dir.home


def _subs(calls) -> list[str]:
    out = []
    for call in calls:
        words = [a for a in call["argv"] if not a.startswith("-")]
        out.append(" ".join(words[:2]) if words[:1] == ["state"] else words[0])
    return out


def _counts(synth_dir) -> dict:
    return {rtype: len(items) for rtype, items in synth_dir.tf_json["resource"].items()}


def test_synth_is_cached_and_summarised(synth_dir, workdir, invoke):
    first = invoke("synth", "--out", synth_dir.outdir)
    assert first.exit_code == 0, first.output
    result = invoke("synth", "--out", synth_dir.outdir)
    assert result.exit_code == 0, result.output
    assert "stack vopr-vopr (us-east-1): unchanged inputs, reused" in result.stdout
    lines = result.stdout.splitlines()
    for rtype, count in _counts(synth_dir).items():
        assert any(rtype in l and l.rstrip(" │").endswith(f" {count}") for l in lines), rtype
    assert any("total" in l and f" {sum(_counts(synth_dir).values())} " in l for l in lines)
    estimate = cost.estimate(load("vopr.toml"))
    assert f"${estimate.total_usd:.2f}" in result.stdout
    assert "spot instance c7g.medium" in result.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "instance.type=c7i.large"], "instance.type 'c7i.large' is not an ARM64"),
        (["--set", "deployment.alert_email="], "deployment.alert_email is empty"),
        (["--set", "instance.colour=red"], "--set 'instance.colour=red': expected section.key=value"),
        (["--config", "missing.toml"], "config file missing.toml not found"),
    ],
)
def test_synth_bad_config_is_one_line(workdir, invoke, args, needle):
    result = invoke("synth", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and needle in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_deploy_applies_saves_outputs_and_reports(synth_dir, fake_tf, make_stack, workdir, invoke):
    res = make_stack()
    fake_tf.outputs.write_text(json.dumps(res.outputs))
    result = invoke("deploy", "--auto-approve", "--out", synth_dir.outdir)
    assert result.exit_code == 0, result.output
    calls = fake_tf.calls()
    assert _subs(calls) == ["init", "plan", "apply", "output"]
    assert all(c["cwd"] == str(synth_dir.stack_dir) and c["engine"] == "terraform" for c in calls)
    assert calls[1]["argv"][-1] == "-out=vopr.tfplan" and calls[2]["argv"][-1] == "vopr.tfplan"
    assert all(c["env"]["TF_IN_AUTOMATION"] == "1" and c["env"]["AWS_REGION"] == "us-east-1" for c in calls)
    saved = json.loads((workdir / ".vopr" / "deployment-vopr.json").read_text())
    for key in deployment.OUTPUT_KEYS:
        assert saved[key] == res.outputs[key]
    assert saved["stack_dir"] == str(synth_dir.stack_dir) and saved["engine"] == "terraform"
    assert saved["state_path"] == str(synth_dir.state_path)
    out = result.stdout
    assert "Plan: 21 to add" in out and "Creation complete" in out and "Apply complete!" in out
    assert res.instance_id in out and res.bucket in out and "/vopr/vopr" in out
    assert "alert email oncall@example.com is confirmed" in out
    status = invoke("status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["instance"]["id"] == res.instance_id


def test_deploy_refuses_the_example_alert_address_before_terraform(synth_dir, fake_tf, workdir, invoke):
    result = invoke("deploy", "--auto-approve", "--out", synth_dir.outdir, "--set", "deployment.alert_email=you@example.com")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: deployment.alert_email is still the example's you@example.com")
    assert result.stderr.count("\n") == 1
    assert fake_tf.calls() == []


def test_deploy_replace_instance_forces_a_new_instance(synth_dir, fake_tf, make_stack, workdir, invoke):
    res = make_stack()
    fake_tf.outputs.write_text(json.dumps(res.outputs))
    result = invoke("deploy", "--auto-approve", "--replace-instance", "--out", synth_dir.outdir)
    assert result.exit_code == 0, result.output
    [address] = [f"aws_instance.{n}" for n in synth_dir.tf_json["resource"]["aws_instance"]]
    plan = fake_tf.calls()[1]["argv"]
    assert plan[0] == "plan" and f"-replace={address}" in plan and plan[-1] == "-out=vopr.tfplan"
    assert "terraform plan (replacing the instance)" in result.stdout


def test_deploy_failure_is_one_line_and_saves_nothing(synth_dir, fake_tf, make_stack, workdir, invoke, monkeypatch):
    make_stack()
    monkeypatch.setenv("FAKE_TF_FAIL", "apply")
    result = invoke("deploy", "--auto-approve", "--out", synth_dir.outdir)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "terraform apply failed (exit 1): Error: apply failed on purpose: AccessDenied for ec2:RunInstances" in result.stderr
    assert "full output in .vopr/terraform-vopr.log" in result.stderr
    assert "Traceback" not in result.output
    assert not (workdir / ".vopr" / "deployment-vopr.json").exists()
    assert "aws_instance.compute_instance_1A2B" in (workdir / ".vopr" / "terraform-vopr.log").read_text()


def test_deploy_without_a_terminal_needs_auto_approve(synth_dir, fake_tf, make_stack, workdir, invoke):
    make_stack()
    result = invoke("deploy", "--out", synth_dir.outdir)
    assert result.exit_code == 1
    assert "pass --auto-approve" in result.stderr
    assert _subs(fake_tf.calls()) == ["init", "plan"]


@pytest.mark.parametrize("answer, expected", [(False, ["init", "plan"]), (True, ["init", "plan", "apply", "output"])])
def test_deploy_asks_before_applying(synth_dir, fake_tf, make_stack, workdir, answer, expected):
    res = make_stack()
    fake_tf.outputs.write_text(json.dumps(res.outputs))
    questions = []
    engine = stackops.terraform.find_engine()
    cfg = load("vopr.toml")

    def confirm(question):
        questions.append(question)
        return answer

    from vopr.aws import Aws

    if answer:
        dep = stackops.deploy(cfg, Aws(region="us-east-1"), engine, synth_dir.outdir, confirm=confirm, echo=lambda _: None)
        assert dep.instance_id == res.instance_id
    else:
        with pytest.raises(VoprError, match="deploy cancelled: nothing was changed"):
            stackops.deploy(cfg, Aws(region="us-east-1"), engine, synth_dir.outdir, confirm=confirm, echo=lambda _: None)
    assert questions == ["Plan: 21 to add, 0 to change, 0 to destroy. Apply it?"]
    assert _subs(fake_tf.calls()) == expected


def test_deploy_with_incomplete_outputs_says_so(synth_dir, fake_tf, make_stack, workdir, invoke):
    res = make_stack()
    outputs = dict(res.outputs)
    del outputs["instance_id"], outputs["topic_arn"]
    fake_tf.outputs.write_text(json.dumps(outputs))
    result = invoke("deploy", "--auto-approve", "--out", synth_dir.outdir)
    assert result.exit_code == 1
    assert "the stack's outputs lack instance_id, topic_arn" in result.stderr


def test_deploy_picks_tofu_when_it_is_the_only_engine(synth_dir, fake_tf, make_stack, workdir, invoke):
    (fake_tf.bin.dir / "terraform").unlink()
    fake_tf.bin.install("tofu")
    res = make_stack()
    fake_tf.outputs.write_text(json.dumps(res.outputs))
    result = invoke("deploy", "--auto-approve", "--out", synth_dir.outdir)
    assert result.exit_code == 0, result.output
    assert {c["engine"] for c in fake_tf.calls()} == {"tofu"}
    assert json.loads((workdir / ".vopr" / "deployment-vopr.json").read_text())["engine"] == "tofu"


def test_engine_selection(fake_bin, monkeypatch):
    from vopr.terraform import find_engine

    monkeypatch.setenv("PATH", str(fake_bin.dir))
    monkeypatch.delenv("VOPR_ENGINE", raising=False)
    with pytest.raises(VoprError) as err:
        find_engine()
    assert "neither terraform nor tofu is on PATH" in str(err.value)
    assert "developer.hashicorp.com/terraform/install" in str(err.value) and "opentofu.org" in str(err.value)
    fake_bin.install("tofu")
    assert find_engine().name == "tofu"
    fake_bin.install("terraform")
    assert find_engine().name == "terraform"
    assert find_engine("tofu").name == "tofu"
    monkeypatch.setenv("VOPR_ENGINE", "tofu")
    assert find_engine().name == "tofu"
    assert find_engine("terraform").name == "terraform"
    with pytest.raises(VoprError, match="engine 'pulumi' is not supported"):
        find_engine("pulumi")
    (fake_bin.dir / "tofu").unlink()
    with pytest.raises(VoprError, match="`tofu` is not on PATH"):
        find_engine()


def test_deploy_without_any_engine_is_one_line(fake_bin, workdir, invoke, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_bin.dir))
    result = invoke("deploy", "--auto-approve")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: neither terraform nor tofu is on PATH: install Terraform")
    assert result.stderr.count("\n") == 1


def _fill_bucket(res, failures: int = 3) -> None:
    for seed in range(failures):
        for version in range(2):
            res.s3.put_object(Bucket=res.bucket, Key=f"failures/{seed}.json", Body=json.dumps({"v": version}).encode())
    res.s3.put_object(Bucket=res.bucket, Key="checkpoints/latest.json", Body=b"{}")
    res.s3.delete_object(Bucket=res.bucket, Key="checkpoints/latest.json")


def _versions(res) -> int:
    listing = res.s3.list_object_versions(Bucket=res.bucket)
    return len(listing.get("Versions", [])) + len(listing.get("DeleteMarkers", []))


def _instance_state(res) -> str:
    return res.ec2.describe_instances(InstanceIds=[res.instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _open_requests(res) -> list:
    reqs = res.ec2.describe_spot_instance_requests(Filters=[{"Name": "tag:Deployment", "Values": ["vopr"]}])["SpotInstanceRequests"]
    return [r["SpotInstanceRequestId"] for r in reqs if r["State"] in ("open", "active", "disabled")]


def test_destroy_empties_the_bucket_destroys_and_sweeps_ec2(synth_dir, fake_tf, deployed, invoke):
    fake_tf.outputs.write_text(json.dumps(deployed.outputs))
    _fill_bucket(deployed)
    assert _open_requests(deployed) == [deployed.request_id]
    result = invoke("destroy", "--yes", "--out", synth_dir.outdir)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"results bucket {deployed.bucket} with ALL its contents (3 failure record(s))" in out
    assert deployed.instance_id in out and "/vopr/vopr" in out and deployed.topic_arn in out
    assert _subs(fake_tf.calls()) == ["init", "output", "destroy"]
    assert _versions(deployed) == 0
    assert f"cancelling spot request(s) left open: {deployed.request_id}" in out
    assert f"terminating instance(s) left behind: {deployed.instance_id}" in out
    assert _open_requests(deployed) == []
    assert _instance_state(deployed) == "terminated"
    assert not deployed.path.exists()
    assert "no instance or spot request of it is left running" in out


def test_destroy_keep_bucket_removes_it_from_state_first(synth_dir, fake_tf, deployed, invoke):
    fake_tf.outputs.write_text(json.dumps(deployed.outputs))
    addresses = stackops.bucket_addresses(synth_dir.tf_json)
    assert "aws_s3_bucket.storage_bucket_F1F6FC6A" in addresses or any(a.startswith("aws_s3_bucket.") for a in addresses)
    others = [f"{t}.{n}" for t, items in synth_dir.tf_json["resource"].items() if not t.startswith("aws_s3_") for n in items]
    fake_tf.state.write_text("\n".join(sorted(addresses + others)) + "\n")
    _fill_bucket(deployed)
    before = _versions(deployed)
    result = invoke("destroy", "--yes", "--keep-bucket", "--out", synth_dir.outdir)
    assert result.exit_code == 0, result.output
    calls = fake_tf.calls()
    assert _subs(calls) == ["init", "output", "state list", "state rm", "destroy"]
    assert sorted(calls[3]["argv"][2:]) == sorted(addresses)
    assert fake_tf.state.read_text().split() == sorted(others)
    assert _versions(deployed) == before
    assert f"KEPT: results bucket {deployed.bucket} (3 failure record(s))" in result.stdout
    assert f"vopr failures --store s3://{deployed.bucket}" in result.stdout
    assert _instance_state(deployed) == "terminated"


def test_destroy_without_yes_and_no_terminal_deletes_nothing(synth_dir, fake_tf, deployed, invoke):
    _fill_bucket(deployed)
    before = _versions(deployed)
    result = invoke("destroy", "--out", synth_dir.outdir)
    assert result.exit_code == 1
    assert "pass --yes" in result.stderr
    assert "ALL its contents (3 failure record(s))" in result.stdout
    assert fake_tf.calls() == []
    assert _versions(deployed) == before and _instance_state(deployed) == "running"
    assert deployed.path.exists()


def test_destroy_failure_is_one_line_and_keeps_the_deployment_file(synth_dir, fake_tf, deployed, invoke, monkeypatch):
    fake_tf.outputs.write_text(json.dumps(deployed.outputs))
    monkeypatch.setenv("FAKE_TF_FAIL", "destroy")
    result = invoke("destroy", "--yes", "--out", synth_dir.outdir)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: terraform destroy failed (exit 1): Error: destroy failed on purpose")
    assert result.stderr.count("\n") == 1
    assert deployed.path.exists()
    assert _instance_state(deployed) == "running"


def test_sweep_finds_instances_by_tag_even_without_a_spot_request(aws, make_stack):
    from vopr import sweep

    res = make_stack()
    image = res.ec2.describe_instances(InstanceIds=[res.instance_id])["Reservations"][0]["Instances"][0]["ImageId"]
    stray = res.ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="c7g.medium",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Project", "Value": "vopr-aws"},
                                                                  {"Key": "Deployment", "Value": "vopr"}]}],
    )["Instances"][0]["InstanceId"]
    other = res.ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="c7g.medium",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Project", "Value": "vopr-aws"},
                                                                  {"Key": "Deployment", "Value": "other"}]}],
    )["Instances"][0]["InstanceId"]
    lines = []
    report = sweep.sweep(res.ec2, "vopr", echo=lines.append)
    assert report["cancelled_spot_requests"] == [res.request_id]
    assert sorted(report["terminated_instances"]) == sorted([res.instance_id, stray])
    assert report["still_open_spot_requests"] == [] and report["still_live_instances"] == []
    assert lines[0].startswith("cancelling") and lines[1].startswith("terminating")
    state = res.ec2.describe_instances(InstanceIds=[other])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "running"
    assert sweep.sweep(res.ec2, "vopr", echo=lines.append)["terminated_instances"] == []
