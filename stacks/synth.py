"""Synthesize the stack to Terraform JSON, or serve the previous output when no input changed.

Every input (config values, the user_data template, stacks/ and runner/ sources, the config loader, pinned
versions) is hashed; the hash is recorded beside cdk.tf.json. A matching hash returns at once without
importing cdktf (which costs ~20 s and ~1.5 GB); anything else runs the full synth via `stacks.app`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vopr.config import Config, validate_config

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORD_FILE = "vopr-synth.json"
TF_JSON_FILE = "cdk.tf.json"
MANIFEST_FILE = "manifest.json"
# Bump when the cache record's meaning changes.
CACHE_FORMAT = 1
PINNED_PACKAGES = ("cdktf", "cdktf-cdktf-provider-aws", "constructs", "jsii")
SOURCE_GLOBS = ("stacks/*.py", "runner/**/*.py", "scripts/**/*", "vopr/config.py", "main.py")


@dataclass(frozen=True)
class SynthResult:
    stack_name: str
    stack_dir: Path
    tf_json_path: Path
    cached: bool
    input_hash: str
    runner_artifact_key: str = ""
    state_path: Path = Path()


def input_files(root: Path = REPO_ROOT) -> list[Path]:
    """The source files whose text goes into the hash, sorted by path."""
    found = {p for pattern in SOURCE_GLOBS for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts}
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def pinned_versions() -> dict[str, str]:
    versions = {}
    for package in PINNED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions


def default_state_path(cfg: Config) -> Path:
    """Where Terraform keeps state: `terraform.vopr-<name>.tfstate` in the working directory (cdktf's default), made explicit."""
    return Path.cwd() / f"terraform.{cfg.stack_name}.tfstate"


def input_hash(cfg: Config, state_path: Path, root: Path = REPO_ROOT) -> str:
    """SHA-256 over everything that can change the synthesized output."""
    h = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    part("format", str(CACHE_FORMAT).encode())
    part("config", json.dumps(cfg.as_dict(), sort_keys=True).encode())
    part("state_path", str(state_path).encode())
    part("versions", json.dumps(pinned_versions(), sort_keys=True).encode())
    for path in input_files(root):
        part(path.relative_to(root).as_posix(), path.read_bytes())
    return h.hexdigest()


def _cached(stack_dir: Path, outdir: Path, digest: str) -> dict | None:
    try:
        record = json.loads((stack_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("input_hash") != digest:
        return None
    if not (stack_dir / TF_JSON_FILE).is_file() or not (outdir / MANIFEST_FILE).is_file():
        return None
    return record


def synthesize(cfg: Config, outdir: Path = Path("cdktf.out"), state_path: Path | None = None) -> SynthResult:
    """Validate cfg, then write (or reuse) `outdir/stacks/vopr-<name>/cdk.tf.json`. Raises ConfigError on bad config."""
    validate_config(cfg, require_email=True)
    outdir = Path(outdir).resolve()
    state_path = Path(state_path).resolve() if state_path else default_state_path(cfg)
    stack_dir = outdir / "stacks" / cfg.stack_name
    tf_json_path = stack_dir / TF_JSON_FILE
    digest = input_hash(cfg, state_path)
    record = _cached(stack_dir, outdir, digest)
    if record is not None:
        key = record.get("runner_artifact_key", "")
        return SynthResult(cfg.stack_name, stack_dir, tf_json_path, True, digest, key, state_path)

    (stack_dir / RECORD_FILE).unlink(missing_ok=True)
    shutil.rmtree(stack_dir / "assets", ignore_errors=True)  # old runner archives; state and .terraform/ stay
    from stacks import runner_artifact
    from stacks.app import build_app

    with tempfile.TemporaryDirectory(prefix="vopr-runner-") as staging:
        artifact = runner_artifact.build(Path(staging))
        build_app(cfg, outdir, artifact, state_path).synth()
    record = {"input_hash": digest, "stack_name": cfg.stack_name, "runner_artifact_key": artifact.key}
    (stack_dir / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return SynthResult(cfg.stack_name, stack_dir, tf_json_path, False, digest, artifact.key, state_path)


def summarize(tf_json: dict) -> dict[str, int]:
    """Resource type -> how many of it the stack declares, sorted by type."""
    return {rtype: len(items) for rtype, items in sorted(tf_json.get("resource", {}).items())}
