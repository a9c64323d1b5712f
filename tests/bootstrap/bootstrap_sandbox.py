"""A sandbox that runs the rendered first-boot script for real: a temporary root, PATH shims, moto for S3/SNS.

Also the parsers the tests judge the written files with (systemd EnvironmentFile and unit syntax).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from vopr.config import Config, DeploymentConfig, InstanceConfig, RunnerConfig, SimulatorConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIM_SOURCE = Path(__file__).with_name("bootstrap_shim.py")
SHIMMED = (
    "dnf", "curl", "rustup-init", "systemctl", "runuser", "useradd", "id", "chown", "fallocate", "mkswap",
    "swapon", "nproc", "python3.11", "git", "aws", "sleep",
)
INSTANCE_ID = "i-0123456789abcdef0"
REGION = "us-east-1"
GIB_KIB = 1024 * 1024


def make_config(**sections: dict) -> Config:
    """A Config from per-section overrides, e.g. make_config(simulator={"git_ref": "v1.2.3"})."""
    classes = {"deployment": DeploymentConfig, "instance": InstanceConfig, "simulator": SimulatorConfig, "runner": RunnerConfig}
    return Config(**{name: cls(**sections.get(name, {})) for name, cls in classes.items()})


def install_shims(directory: Path) -> Path:
    """Write the shim program and link every shimmed command name to it; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "shim.py"
    shim.write_text(f"#!{sys.executable} -S\n" + SHIM_SOURCE.read_text())
    shim.chmod(0o755)
    for name in SHIMMED:
        (directory / name).symlink_to(shim)
    (directory / "python3").symlink_to(sys.executable)
    return directory


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(
        ["git", "-c", "user.name=Sandbox", "-c", "user.email=sandbox@example.com", *args],
        cwd=cwd, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()


@dataclass(frozen=True)
class FixtureRepo:
    """A local git repository standing in for the simulator's remote."""

    path: Path
    commits: dict[str, str] = field(default_factory=dict)


def make_fixture_repo(path: Path) -> FixtureRepo:
    """Branches main, release/2026.1 and pinned (with rust-toolchain.toml), tag v1.2.3."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "Cargo.toml").write_text('[workspace]\nmembers = ["crates/kimberlite-sim"]\n')
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    git(path, "tag", "-a", "v1.2.3", "-m", "release 1.2.3")
    commits = {"v1.2.3": git(path, "rev-parse", "HEAD")}
    (path / "README.md").write_text("main moved on\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "second")
    commits["main"] = git(path, "rev-parse", "HEAD")
    git(path, "checkout", "-q", "-b", "release/2026.1", commits["v1.2.3"])
    (path / "RELEASE").write_text("2026.1\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "release branch")
    commits["release/2026.1"] = git(path, "rev-parse", "HEAD")
    git(path, "checkout", "-q", "-b", "pinned", commits["main"])
    (path / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.88"\nprofile = "minimal"\n')
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "pin the toolchain")
    commits["pinned"] = git(path, "rev-parse", "HEAD")
    git(path, "checkout", "-q", "main")
    return FixtureRepo(path, commits)


def runner_tarball() -> bytes:
    """The project's runner/ package as a tar.gz with a runner/ top directory (what the stack uploads)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted((REPO_ROOT / "runner").rglob("*.py")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(REPO_ROOT)))
    return buf.getvalue()


class Sandbox:
    """One fake instance: a root directory, shims, IMDS answers, and the record of every shimmed call."""

    def __init__(self, base: Path, shims: Path, repo: FixtureRepo, aws_env: dict[str, str], repo_url: str,
                 bucket: str, topic_arn: str, mem_kib: int = 2 * GIB_KIB, nproc: int = 2):
        self.base = base
        self.root = base / "root"
        self.shims = shims
        self.repo = repo
        self.env = dict(aws_env)
        self.env.update(
            PATH=f"{shims}:/usr/local/bin:/usr/bin:/bin",
            SANDBOX=str(base),
            VOPR_BOOTSTRAP_ROOT=str(self.root),
            SANDBOX_NPROC=str(nproc),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"url.{repo.path}.insteadOf",
            GIT_CONFIG_VALUE_0=repo_url,
        )
        for key in ("PYTHONPATH", "VIRTUAL_ENV"):
            self.env.pop(key, None)
        for directory in ("etc", "proc", "root", "opt", "var/log"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        (self.root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (self.root / "etc/fstab").write_text("UUID=0000 / xfs defaults,noatime 1 1\n")
        (self.root / "proc/meminfo").write_text(f"MemTotal:       {mem_kib} kB\nMemFree:        {mem_kib // 2} kB\n")
        (self.root / "proc/swaps").write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
        (self.root / "proc/vmstat").write_text("nr_free_pages 1000\noom_kill 0\n")
        self.imds = {
            "token": "sandbox-token-AQAEA",
            "instance-id": INSTANCE_ID,
            "region": REGION,
            "tags": {"VoprBucket": bucket, "VoprTopicArn": topic_arn},
        }
        self.write_imds()
        self.runs: list[subprocess.CompletedProcess[str]] = []

    def write_imds(self) -> None:
        (self.base / "imds.json").write_text(json.dumps(self.imds))

    def run(self, script: str | None, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the rendered script as cloud-init would (None: the per-boot retry copy); env adds SANDBOX_* knobs."""
        if script is None:
            path = self.path("/var/lib/cloud/scripts/per-boot/vopr-bootstrap.sh")
        else:
            path = self.base / "user_data.sh"
            path.write_text(script)
        calls = self.base / "calls.jsonl"
        if calls.exists():
            calls.rename(self.base / f"calls.run{len(self.runs)}.jsonl")
        result = subprocess.run(
            ["bash", str(path)], env={**self.env, **env}, capture_output=True, text=True, timeout=180,
        )
        self.runs.append(result)
        return result

    def calls(self, cmd: str | None = None) -> list[dict]:
        path = self.base / "calls.jsonl"
        if not path.exists():
            return []
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        return [e for e in entries if cmd is None or e["cmd"] == cmd]

    def systemd(self) -> dict[str, list[str]]:
        path = self.base / "systemd.json"
        return json.loads(path.read_text()) if path.exists() else {"enabled": [], "active": []}

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def log(self) -> str:
        return self.path("/var/log/vopr/bootstrap.log").read_text()

    def snapshot(self, skip: tuple[str, ...] = ("/var/log/vopr/bootstrap.log", "/opt/vopr/src/.git")) -> dict:
        """Every file and directory under the root: content hash, mode, and mtime for files; link targets."""
        skipped = {self.path(s) for s in skip}
        tree = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if here / d not in skipped]
            for name in dirnames + filenames:
                p = here / name
                if p in skipped:
                    continue
                st = p.lstat()
                rel = "/" + str(p.relative_to(self.root))
                if stat.S_ISLNK(st.st_mode):
                    tree[rel] = ("link", os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    tree[rel] = ("dir", stat.S_IMODE(st.st_mode))
                else:
                    tree[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        return tree


def parse_env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= parser (src/basic/env-file.c), for the constructs a file may contain."""
    out: dict[str, str] = {}
    shell_need_escape = '"\\`$'
    state, key, value = "pre_key", "", ""
    for c in text + "\n":
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif not c.isspace():
                state, key = "key", c
        elif state == "comment":
            if c == "\n":
                state = "pre_key"
        elif state == "key":
            if c == "\n":
                state, key = "pre_key", ""
            elif c == "=":
                state, value = "pre_value", ""
            else:
                key += c
        elif state in ("pre_value", "value"):
            if c == "\n":
                out[key.strip()] = value.rstrip() if state == "value" else value
                state, key, value = "pre_key", "", ""
            elif c == "'" and state == "pre_value":
                state = "single"
            elif c == '"' and state == "pre_value":
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif state == "value" or not c.isspace():
                state, value = "value", value + c
        elif state == "value_escape":
            state = "value"
            if c != "\n":
                value += c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in shell_need_escape:
                value += c
            elif c != "\n":
                value += "\\" + c
    return out


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values in order]}}."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections
