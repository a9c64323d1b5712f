"""The spot instance, its AMI, security group and user_data, as synthesized for the default config."""

from __future__ import annotations

import base64
import re

from stack_helpers import only, ref, resources_of

from stacks.instance_values import spot_options, user_data_base64
from vopr.config import load
from stacks.user_data import render_user_data


def _instance(tf):
    return only(tf, "aws_instance")


def test_ami_comes_from_the_public_ssm_parameter_and_is_never_hard_coded(tf):
    params = tf["data"]["aws_ssm_parameter"]
    assert len(params) == 1
    (param_name, param), = params.items()
    assert param["name"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    _, inst = _instance(tf)
    assert inst["ami"] == "${data.aws_ssm_parameter." + param_name + ".insecure_value}"
    assert not re.search(r"ami-[0-9a-f]{8,}", str(tf))


def test_a_new_ami_release_does_not_replace_the_running_instance(tf):
    _, inst = _instance(tf)
    assert inst["lifecycle"] == {"ignore_changes": ["ami"]}


def test_spot_is_persistent_and_stops_on_interruption_without_max_price_by_default(tf):
    _, inst = _instance(tf)
    assert inst["instance_market_options"] == {
        "market_type": "spot",
        "spot_options": {"spot_instance_type": "persistent", "instance_interruption_behavior": "stop"},
    }
    assert "max_price" not in inst["instance_market_options"]["spot_options"]


def test_configured_spot_max_price_is_passed_through(synth):
    _, inst = only(synth.changed_tf, "aws_instance")
    assert inst["instance_market_options"]["spot_options"] == {
        "spot_instance_type": "persistent",
        "instance_interruption_behavior": "stop",
        "max_price": "0.0123",
    }


def test_spot_max_price_is_written_as_a_plain_decimal(tmp_path):
    empty = tmp_path / "vopr.toml"
    empty.write_text("")
    cfg = load(empty, environ={}, overrides={"instance.spot_max_price": "2E-2"})
    assert spot_options(cfg)["max_price"] == "0.02"
    assert "max_price" not in spot_options(load(empty, environ={}))


def test_instance_type_profile_and_network(tf):
    _, inst = _instance(tf)
    profile_name, _ = only(tf, "aws_iam_instance_profile")
    sg_name, _ = only(tf, "aws_security_group")
    assert inst["instance_type"] == "c7g.medium"
    assert inst["iam_instance_profile"] == ref("aws_iam_instance_profile", profile_name, "name")
    assert inst["vpc_security_group_ids"] == [ref("aws_security_group", sg_name, "id")]
    assert inst["associate_public_ip_address"] is True
    assert inst["ebs_optimized"] is True
    assert "key_name" not in inst


def test_imds_v2_is_required_and_tags_are_readable_through_it(tf):
    _, inst = _instance(tf)
    assert inst["metadata_options"] == {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": 1,
        "instance_metadata_tags": "enabled",
    }


def test_root_volume_is_encrypted_gp3_of_the_configured_size_and_tagged(tf):
    _, inst = _instance(tf)
    assert inst["root_block_device"] == {
        "volume_type": "gp3",
        "volume_size": 20,
        "encrypted": True,
        "delete_on_termination": True,
        "tags": {"Name": "vopr-vopr-root", "Project": "vopr-aws", "Deployment": "vopr"},
    }


def test_instance_tags_carry_the_bucket_and_topic_for_the_bootstrap(tf):
    _, inst = _instance(tf)
    bucket, _ = only(tf, "aws_s3_bucket")
    topic, _ = only(tf, "aws_sns_topic")
    assert inst["tags"] == {
        "Name": "vopr-vopr",
        "Project": "vopr-aws",
        "Deployment": "vopr",
        "VoprBucket": ref("aws_s3_bucket", bucket, "bucket"),
        "VoprTopicArn": ref("aws_sns_topic", topic, "arn"),
    }
    # IMDS exposes only tag keys without spaces or '/'.
    assert all(re.fullmatch(r"[A-Za-z0-9_.:+=@-]+", key) for key in inst["tags"])


def test_provider_tags_every_resource_with_project_and_deployment(tf):
    (provider,) = tf["provider"]["aws"]
    assert provider == {"region": "us-east-1", "default_tags": [{"tags": {"Project": "vopr-aws", "Deployment": "vopr"}}]}


def test_user_data_is_the_rendered_template_as_a_base64_literal(synth, tf):
    _, inst = _instance(tf)
    _, runner_object = only(tf, "aws_s3_object")
    encoded = inst["user_data_base64"]
    assert "user_data" not in inst
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", encoded), "user_data_base64 must be a pure literal, no ${...} tokens"
    assert base64.b64decode(encoded).decode() == render_user_data(synth.cfg, runner_object["key"])
    assert inst["user_data_replace_on_change"] is True


def test_user_data_base64_keeps_shell_interpolation_away_from_terraform():
    script = '#!/bin/bash\necho "${HOME}" "$${x}" %{ if true }\n'
    encoded = user_data_base64(script)
    assert "${" not in encoded and "%{" not in encoded
    assert base64.b64decode(encoded).decode() == script


def test_instance_waits_for_its_permissions_runner_archive_log_group_and_no_progress_alarm(tf):
    _, inst = _instance(tf)
    policy, _ = only(tf, "aws_iam_role_policy")
    attachment, _ = only(tf, "aws_iam_role_policy_attachment")
    runner_object, _ = only(tf, "aws_s3_object")
    log_group, _ = only(tf, "aws_cloudwatch_log_group")
    (alarm,) = [n for n, b in resources_of(tf, "aws_cloudwatch_metric_alarm").items() if b["alarm_name"] == "vopr-no-progress"]
    assert sorted(inst["depends_on"]) == sorted(
        [
            f"aws_iam_role_policy.{policy}",
            f"aws_iam_role_policy_attachment.{attachment}",
            f"aws_s3_object.{runner_object}",
            f"aws_cloudwatch_log_group.{log_group}",
            f"aws_cloudwatch_metric_alarm.{alarm}",
        ]
    )


def test_the_bootstrap_silences_the_stacks_own_no_progress_alarm(synth, tf):
    _, inst = _instance(tf)
    script = base64.b64decode(inst["user_data_base64"]).decode()
    assert "\nALARM=vopr-no-progress\n" in script
    assert tf["output"]["no_progress_alarm_name"]["value"] == "${aws_cloudwatch_metric_alarm." + (
        next(n for n, b in resources_of(tf, "aws_cloudwatch_metric_alarm").items() if b["alarm_name"] == "vopr-no-progress")
    ) + ".alarm_name}"


def test_security_group_has_no_ingress_and_open_egress(tf):
    _, sg = only(tf, "aws_security_group")
    assert sg["ingress"] == []
    assert sg["egress"] == [
        {
            "description": "git, crates.io, PyPI and AWS APIs over the internet",
            "protocol": "-1",
            "from_port": 0,
            "to_port": 0,
            "cidr_blocks": ["0.0.0.0/0"],
            "ipv6_cidr_blocks": ["::/0"],
            "prefix_list_ids": [],
            "security_groups": [],
            "self": False,
        }
    ]
    assert sg["name"] == "vopr-vopr"
    assert "aws_security_group_rule" not in tf["resource"]
    assert "aws_vpc_security_group_ingress_rule" not in tf["resource"]
