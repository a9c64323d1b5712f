"""The synth cache: unchanged inputs are served from the recorded hash without cdktf; any change re-synthesizes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from stack_helpers import REPO_ROOT, clean_env

from stacks.synth import RECORD_FILE, input_files, input_hash
from vopr.config import ConfigError, load

CACHED_SYNTH = """
import json, sys
from pathlib import Path
from stacks.synth import synthesize
from vopr.config import load
result = synthesize(load(sys.argv[1], environ={}), Path(sys.argv[2]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("cdktf", "cdktf_cdktf_provider_aws", "jsii", "constructs"))
print(json.dumps({"cached": result.cached, "input_hash": result.input_hash, "heavy_modules": heavy,
                  "tf_json": str(result.tf_json_path), "key": result.runner_artifact_key}))
"""


def test_unchanged_inputs_are_served_from_cache_without_importing_cdktf(synth):
    before = synth.tf_path.read_bytes()
    recorded = json.loads((synth.stack_dir / RECORD_FILE).read_text())
    proc = subprocess.run(
        [sys.executable, "-c", CACHED_SYNTH, str(synth.config_path), str(synth.outdir)],
        cwd=synth.workdir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cached"] is True
    assert result["heavy_modules"] == []
    assert result["input_hash"] == recorded["input_hash"]
    assert result["tf_json"] == str(synth.tf_path)
    assert result["key"] == recorded["runner_artifact_key"]
    assert synth.tf_path.read_bytes() == before


def test_a_changed_config_value_re_synthesizes_over_the_cache(synth):
    recorded = json.loads((synth.stack_dir / RECORD_FILE).read_text())
    assert synth.changed["cached"] is False
    assert synth.changed["input_hash"] != recorded["input_hash"]
    changed_record = json.loads((synth.changed_outdir / "stacks" / "vopr-vopr" / RECORD_FILE).read_text())
    assert changed_record["input_hash"] == synth.changed["input_hash"]
    spot = synth.changed_tf["resource"]["aws_instance"]
    assert next(iter(spot.values()))["instance_market_options"]["spot_options"]["max_price"] == "0.0123"


def _copy_inputs(dest):
    for path in input_files(REPO_ROOT):
        target = dest / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


@pytest.mark.parametrize(
    "relative",
    ["scripts/user_data.sh.j2", "runner/layout.py", "stacks/storage.py", "vopr/config.py", "main.py"],
)
def test_every_source_input_changes_the_hash(tmp_path, relative):
    root = tmp_path / "repo"
    _copy_inputs(root)
    (tmp_path / "vopr.toml").write_text('[deployment]\nalert_email = "a@example.com"\n')
    cfg, state = load(tmp_path / "vopr.toml", environ={}), tmp_path / "state.tfstate"
    original = input_hash(cfg, state, root)
    assert input_hash(cfg, state, root) == original
    with (root / relative).open("a") as fh:
        fh.write("\n# changed\n")
    assert input_hash(cfg, state, root) != original


def test_config_values_and_state_path_change_the_hash_but_the_config_source_does_not(synth, tmp_path):
    state = tmp_path / "state.tfstate"
    base = input_hash(synth.cfg, state)
    assert input_hash(synth.changed_cfg, state) != base
    assert input_hash(synth.cfg, tmp_path / "other.tfstate") != base
    moved = tmp_path / "elsewhere.toml"
    moved.write_text(synth.config_path.read_text())
    assert input_hash(load(moved, environ={}), state) == base


def test_a_damaged_cache_record_is_not_trusted(synth, tmp_path):
    outdir = tmp_path / "out"
    shutil.copytree(synth.outdir, outdir)
    record_path = outdir / "stacks" / "vopr-vopr" / RECORD_FILE
    record_path.write_text("{not json")
    from stacks.synth import _cached

    digest = json.loads((synth.stack_dir / RECORD_FILE).read_text())["input_hash"]
    assert _cached(record_path.parent, outdir, digest) is None
    record_path.write_text(json.dumps({"input_hash": digest}))
    assert _cached(record_path.parent, outdir, digest) is not None
    (outdir / "manifest.json").unlink()
    assert _cached(record_path.parent, outdir, digest) is None


def test_synthesize_validates_before_anything_else(tmp_path):
    from stacks.synth import synthesize

    empty = tmp_path / "vopr.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="alert_email is empty"):
        synthesize(load(empty, environ={}), tmp_path / "out")
    assert not (tmp_path / "out").exists()
