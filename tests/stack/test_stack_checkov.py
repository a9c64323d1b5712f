"""checkov on the synthesized JSON: zero failed checks, and every skip in .checkov.yaml is needed and explained."""

from __future__ import annotations

import json
import re
import subprocess

from stack_helpers import CHECKOV, CHECKOV_CONFIG, clean_env

CHECKOV_TIMEOUT_S = 300


def _checkov(tf_path, *args):
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make setup` (it creates .venv-checkov with checkov)"
    proc = subprocess.run(
        [str(CHECKOV), "-f", str(tf_path), "--output", "json", *args],
        cwd=tf_path.parent,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_S,
    )
    assert proc.returncode in (0, 1), f"checkov crashed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def _skips():
    skips = {}
    for line in CHECKOV_CONFIG.read_text().splitlines():
        m = re.match(r"^\s*-\s*(CKV\w+)\s*(?:#\s*(.*))?$", line)
        if m:
            skips[m.group(1)] = (m.group(2) or "").strip()
    return skips


def test_checkov_finds_no_failed_checks(synth):
    report = _checkov(synth.tf_path, "--config-file", str(CHECKOV_CONFIG))
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], f"checkov failed checks: {failed}"
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= 30


def test_every_skip_has_a_reason_and_is_still_needed(synth):
    skips = _skips()
    assert skips, "no skip list found in .checkov.yaml"
    assert all(len(reason) > 20 for reason in skips.values()), f"each skip needs its reason on its line: {skips}"
    report = _checkov(synth.tf_path, "--framework", "terraform_json", "--skip-download")
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failing == set(skips), f"skips not needed any more: {set(skips) - failing}; new failures: {failing - set(skips)}"
