"""vopr/cost.py: the default deployment's monthly cost, line by line, and how the config moves it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vopr.config import load
from vopr.cost import estimate


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _lines(est):
    return {(ln.service, ln.item): (ln.monthly_usd, ln.free_tier_usd) for ln in est.lines}


def test_default_config_costs_these_amounts_per_resource():
    est = estimate(load(environ={}))
    assert _lines(est) == {
        ("EC2", "spot instance c7g.medium"): (10.95, 0.0),  # 730 h x $0.015
        ("VPC", "public IPv4 address"): (3.65, 0.0),  # 730 h x $0.005
        ("EBS", "gp3 root volume 20 GiB"): (1.60, 0.0),  # 20 GiB x $0.08
        ("CloudWatch", "logs ingestion"): (0.25, 0.25),  # 0.5 GB x $0.50
        ("CloudWatch", "logs storage"): (0.00, 0.00),  # 0.5 GB x 7/30 x $0.03
        ("CloudWatch", "custom metrics"): (2.70, 2.70),  # (4 runner + 2 filters + 3 agent) x $0.30
        ("CloudWatch", "PutMetricData requests"): (0.88, 0.88),  # 2/min x 43,800 min x $0.01/1000
        ("CloudWatch", "alarms"): (0.20, 0.20),  # 2 x $0.10
        ("CloudWatch", "dashboard"): (3.00, 3.00),
        ("S3", "storage (Standard)"): (0.02, 0.0),  # 1 GB x $0.023
        ("S3", "PUT requests"): (0.26, 0.0),  # 1.2/min x 43,800 min x $0.005/1000
        ("SNS", "alert emails"): (0.00, 0.0),
    }
    assert est.total_usd == 23.51
    assert est.total_after_free_tier_usd == 16.48
    assert est.total_usd == round(sum(ln.monthly_usd for ln in est.lines), 2)
    assert any("always-free tier" in a and "$7.03" in a for a in est.assumptions)
    assert any(a.startswith("prices: 2025-06, us-east-1") for a in est.assumptions)


def test_volume_size_and_log_retention_move_their_lines():
    est = estimate(load(environ={}, overrides={"instance.root_volume_gib": "100", "deployment.log_retention_days": "30"}))
    lines = _lines(est)
    assert lines[("EBS", "gp3 root volume 100 GiB")] == (8.00, 0.0)
    assert lines[("CloudWatch", "logs storage")] == (0.02, 0.02)  # 0.5 GB kept a full month x $0.03
    assert est.total_usd == pytest.approx(23.51 + 6.40 + 0.02)


def test_a_type_without_a_spot_assumption_is_priced_at_on_demand():
    est = estimate(load(environ={}, overrides={"instance.type": "m7g.xlarge"}))
    assert _lines(est)[("EC2", "spot instance m7g.xlarge")] == (119.14, 0.0)  # 730 h x 4 x $0.0408
    assert any("m7g.xlarge: no spot price assumed" in a for a in est.assumptions)


def test_a_max_price_below_the_assumed_spot_price_caps_the_estimate_and_warns():
    est = estimate(load(environ={}, overrides={"instance.spot_max_price": "0.01"}))
    assert _lines(est)[("EC2", "spot instance c7g.medium")] == (7.30, 0.0)
    assert any("below the assumed price" in a and "may seldom run" in a for a in est.assumptions)
    above = estimate(load(environ={}, overrides={"instance.spot_max_price": "0.05"}))
    assert _lines(above)[("EC2", "spot instance c7g.medium")] == (10.95, 0.0)


def test_an_unknown_family_is_left_out_and_said_so():
    est = estimate(load(environ={}, overrides={"instance.type": "im4gn.large"}))
    assert _lines(est)[("EC2", "spot instance im4gn.large")] == (None, 0.0)
    assert est.total_usd == pytest.approx(23.51 - 10.95)
    assert any("im4gn.large: no price data" in a for a in est.assumptions)


def test_other_regions_are_flagged_and_the_estimate_serializes():
    est = estimate(load(environ={}, overrides={"deployment.region": "eu-west-1"}))
    assert any(a.startswith("eu-west-1 is priced like us-east-1") for a in est.assumptions)
    data = json.loads(json.dumps(est.as_dict()))
    assert data["total_usd"] == est.total_usd and len(data["lines"]) == len(est.lines)


def test_the_estimate_needs_neither_aws_nor_cdktf():
    code = (
        "import sys; from vopr.config import load; from vopr.cost import estimate; "
        "estimate(load(environ={}, validate=False)); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'cdktf', 'jsii')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"
