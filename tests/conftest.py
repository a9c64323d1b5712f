"""Shared test fixtures: a moto server on 127.0.0.1 (real HTTP), an AWS environment pointing at it, and the one synth.

The moto server is a separate process started once per session; each test that asks for `aws` gets a fresh account.
The stack is synthesized once per session (importing the AWS provider costs ~20 s and ~1.5 GB), in a subprocess.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from envs import clean_env

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "tests" / "fixtures" / "samples"
SYNTH_DRIVER = REPO_ROOT / "tests" / "synth_driver.py"
SYNTH_ALERT_EMAIL = "oncall@example.com"
SYNTH_CHANGED_SPOT_MAX_PRICE = "0.0123"
SYNTH_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """URL of a moto server process, started once for the session."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """A clean moto account, with this process's environment pointed at it; returns the env for subprocesses."""
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10).read()
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    full = dict(os.environ)
    full.update(env)
    return full


@dataclass(frozen=True)
class Synth:
    workdir: Path
    config_path: Path
    cfg: Any
    outdir: Path
    stack_dir: Path
    tf_path: Path
    tf: dict[str, Any]
    main_stdout: str
    main_exit: int
    state_path: Path
    changed_cfg: Any
    changed_outdir: Path
    changed: dict[str, Any]
    changed_tf: dict[str, Any]


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    """main.py run as cdktf runs it (default config + alert email) in `workdir`, then a re-synth with one value changed.

    Later synths of the same config from `workdir` are cache hits: the cache key includes the cwd-relative state path.
    """
    from vopr.config import load

    workdir = tmp_path_factory.mktemp("synth")
    config_path = workdir / "vopr.toml"
    config_path.write_text(f'[deployment]\nalert_email = "{SYNTH_ALERT_EMAIL}"\n')
    changed_path = workdir / "vopr-changed.toml"
    changed_path.write_text(
        f'[deployment]\nalert_email = "{SYNTH_ALERT_EMAIL}"\n\n[instance]\nspot_max_price = "{SYNTH_CHANGED_SPOT_MAX_PRICE}"\n'
    )
    outdir, changed_outdir = workdir / "cdktf.out", workdir / "cdktf-changed.out"
    proc = subprocess.run(
        [sys.executable, str(SYNTH_DRIVER), str(REPO_ROOT / "main.py"), str(changed_path), str(changed_outdir)],
        cwd=workdir,
        env=clean_env(CDKTF_OUTDIR=str(outdir), VOPR_CONFIG=str(config_path)),
        capture_output=True,
        text=True,
        timeout=SYNTH_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"synth failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    cfg = load(config_path, environ={})
    stack_dir = outdir / "stacks" / cfg.stack_name
    tf_path = stack_dir / "cdk.tf.json"
    return Synth(
        workdir=workdir,
        config_path=config_path,
        cfg=cfg,
        outdir=outdir,
        stack_dir=stack_dir,
        tf_path=tf_path,
        tf=json.loads(tf_path.read_text()),
        main_stdout="\n".join(lines[:-1]),
        main_exit=report["main_exit"],
        state_path=workdir / f"terraform.{cfg.stack_name}.tfstate",
        changed_cfg=load(changed_path, environ={}),
        changed_outdir=changed_outdir,
        changed=report["changed"],
        changed_tf=json.loads(Path(report["changed"]["tf_json"]).read_text()),
    )
