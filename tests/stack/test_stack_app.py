"""main.py as cdktf's app, the stack's outputs, backend and resource summary."""

from __future__ import annotations

import json
import subprocess
import sys

from stack_helpers import MAIN_PY, clean_env, only, ref

from stacks.synth import summarize

REQUIRED_OUTPUTS = {
    "deployment_name",
    "instance_id",
    "bucket_name",
    "topic_arn",
    "log_group_name",
    "region",
    "dashboard_url",
    "no_progress_alarm_name",
    "failures_alarm_name",
}


def test_main_py_honours_cdktf_outdir_and_writes_a_cdktf_manifest(synth):
    assert synth.main_exit == 0
    assert "vopr-vopr: synthesized" in synth.main_stdout
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    assert list(manifest["stacks"]) == ["vopr-vopr"]
    assert manifest["stacks"]["vopr-vopr"]["synthesizedStackPath"] == "stacks/vopr-vopr/cdk.tf.json"
    assert synth.tf_path.is_file()


def test_cdktf_json_runs_main_py_for_python():
    config = json.loads((MAIN_PY.parent / "cdktf.json").read_text())
    assert config["language"] == "python"
    assert config["app"].split()[-1] == "main.py"
    assert config["output"] == "cdktf.out"


def test_main_py_rejects_bad_config_in_one_line_before_any_synth(tmp_path):
    bad = tmp_path / "vopr.toml"
    bad.write_text('[deployment]\nalert_email = "not-an-address"\n')
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(MAIN_PY)],
        cwd=tmp_path,
        env=clean_env(CDKTF_OUTDIR=str(out), VOPR_CONFIG=str(bad)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: deployment.alert_email 'not-an-address'")
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_main_py_requires_an_alert_email_for_synth(tmp_path):
    empty = tmp_path / "vopr.toml"
    empty.write_text("")
    proc = subprocess.run(
        [sys.executable, str(MAIN_PY)],
        cwd=tmp_path,
        env=clean_env(CDKTF_OUTDIR=str(tmp_path / "out"), VOPR_CONFIG=str(empty)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: deployment.alert_email is empty") and proc.stderr.count("\n") == 1


def test_stack_is_one_terraform_stack_named_after_the_deployment(tf):
    assert tf["//"]["metadata"]["stackName"] == "vopr-vopr"
    assert set(tf["//"]["outputs"]) == {"vopr-vopr"}


def test_outputs_have_the_names_the_cli_reads(tf):
    instance, _ = only(tf, "aws_instance")
    bucket, _ = only(tf, "aws_s3_bucket")
    topic, _ = only(tf, "aws_sns_topic")
    log_group, _ = only(tf, "aws_cloudwatch_log_group")
    alarms = {body["alarm_name"]: name for name, body in tf["resource"]["aws_cloudwatch_metric_alarm"].items()}
    outputs = {name: body["value"] for name, body in tf["output"].items()}
    assert REQUIRED_OUTPUTS <= set(outputs)
    assert {k: outputs[k] for k in REQUIRED_OUTPUTS} == {
        "deployment_name": "vopr",
        "instance_id": ref("aws_instance", instance, "id"),
        "bucket_name": ref("aws_s3_bucket", bucket, "bucket"),
        "topic_arn": ref("aws_sns_topic", topic, "arn"),
        "log_group_name": ref("aws_cloudwatch_log_group", log_group, "name"),
        "region": "us-east-1",
        "dashboard_url": "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/vopr",
        "no_progress_alarm_name": ref("aws_cloudwatch_metric_alarm", alarms["vopr-no-progress"], "alarm_name"),
        "failures_alarm_name": ref("aws_cloudwatch_metric_alarm", alarms["vopr-failures-detected"], "alarm_name"),
    }
    assert outputs["spot_instance_request_id"] == ref("aws_instance", instance, "spot_instance_request_id")


def test_state_lives_outside_the_synth_output_in_the_working_directory(synth, tf):
    assert tf["terraform"]["backend"] == {"local": {"path": str(synth.workdir / "terraform.vopr-vopr.tfstate")}}
    assert tf["terraform"]["required_providers"]["aws"]["version"] == "6.25.0"


def test_summarize_counts_resources_by_type(tf):
    assert summarize(tf) == {
        "aws_cloudwatch_dashboard": 1,
        "aws_cloudwatch_log_group": 1,
        "aws_cloudwatch_log_metric_filter": 2,
        "aws_cloudwatch_metric_alarm": 2,
        "aws_iam_instance_profile": 1,
        "aws_iam_role": 1,
        "aws_iam_role_policy": 1,
        "aws_iam_role_policy_attachment": 1,
        "aws_instance": 1,
        "aws_s3_bucket": 1,
        "aws_s3_bucket_lifecycle_configuration": 1,
        "aws_s3_bucket_ownership_controls": 1,
        "aws_s3_bucket_policy": 1,
        "aws_s3_bucket_public_access_block": 1,
        "aws_s3_bucket_server_side_encryption_configuration": 1,
        "aws_s3_bucket_versioning": 1,
        "aws_s3_object": 1,
        "aws_security_group": 1,
        "aws_sns_topic": 1,
        "aws_sns_topic_subscription": 1,
    }
    assert summarize({}) == {}
