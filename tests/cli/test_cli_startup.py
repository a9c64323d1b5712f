"""`vopr --help` and `vopr status --help` start without importing cdktf, jsii, the AWS provider or boto3."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("cdktf", "cdktf_cdktf_provider_aws", "jsii", "constructs", "stacks", "boto3", "botocore")


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["logs", "--help"], ["failures", "--help"]])
def test_help_does_not_import_heavy_modules(args, tmp_path):
    code = (
        "import json, sys\n"
        f"sys.argv = ['vopr'] + {args!r}\n"
        "from vopr.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    rc = exc.code\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))\n"
        "sys.stderr.write('LOADED=' + json.dumps(loaded) + ' RC=' + str(rc) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    marker = [l for l in proc.stderr.splitlines() if l.startswith("LOADED=")]
    assert marker, proc.stderr
    loaded = json.loads(marker[0].split("=", 1)[1].rsplit(" RC=", 1)[0])
    assert loaded == [], f"{args} imported {loaded}"
    assert marker[0].endswith("RC=0")
    assert "Usage" in proc.stdout


def test_version():
    proc = subprocess.run([sys.executable, "-m", "vopr.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("vopr 0.1.0")
