"""`vopr reproduce SEED`: the exact commands that reproduce a failure locally, and (`--run DIR`) running them.

The commands come from the failure record (checkout the recorded commit, build, run the one seed verbosely).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Callable

from vopr.errors import VoprError

REPRO_DIR = "vopr-repro"
EXIT_NOT_REPRODUCED = 3


def commands(record: dict) -> list[str]:
    """The record's reproduction commands, or ones rebuilt from its simulator fields for records without them."""
    listed = (record.get("reproduce") or {}).get("commands")
    if listed:
        return [str(c) for c in listed]
    sim = record.get("simulator") or {}
    seed = record.get("seed")
    if seed is None or not sim.get("commit") or not sim.get("command"):
        raise VoprError(f"failure record for seed {seed} has no reproduction commands and no simulator commit/command: it was written by an older runner")
    out = []
    if sim.get("repo_url"):
        out += [f"git clone {shlex.quote(sim['repo_url'])} {REPRO_DIR}", f"cd {REPRO_DIR}"]
    out.append(f"git checkout {shlex.quote(sim['commit'])}")
    if sim.get("build_command"):
        out.append(sim["build_command"])
    if sim.get("protocol", "vopr-json") == "exit-code":
        out.append(sim["command"].replace("{seed}", str(int(seed))))
    else:
        out.append(f"{sim['command']} --json --seed {int(seed)} -n 1 -v")
    return out


def header(record: dict) -> str:
    what = record.get("kind", "failure")
    detail = ": ".join(str(x) for x in (record.get("invariant"), record.get("message")) if x)
    if not detail and record.get("exit_status") is not None:
        detail = f"exit status {record['exit_status']}"
    det = (record.get("determinism") or {}).get("status")
    note = {"reproduced": "reproduced on replay", "not_reproduced": "did NOT reproduce on replay (nondeterministic)",
            "pending": "replay pending", "skipped": "replay skipped"}.get(det or "", "")
    parts = [f"seed {record.get('seed')}: {what}"] + ([detail] if detail else []) + ([f"({note})"] if note else [])
    return "# " + " ".join(parts)


def checkout_steps(cmds: list[str]) -> list[str]:
    """The commands to run inside an existing checkout: the leading `git clone` and `cd` into it are dropped."""
    steps = list(cmds)
    if steps and steps[0].startswith("git clone "):
        steps.pop(0)
        if steps and steps[0].startswith("cd "):
            steps.pop(0)
    if not steps:
        raise VoprError("the record's reproduction commands have nothing to run after the clone: the record is malformed")
    return steps


def _recorded_commit(steps: list[str]) -> str | None:
    for step in steps:
        words = shlex.split(step)
        if words[:2] == ["git", "checkout"] and len(words) == 3:
            return words[2]
    return None


def _git(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True)


def prepare_checkout(checkout: Path, steps: list[str], echo: Callable[[str], None]) -> None:
    """Refuse a checkout with local changes (the build must be the recorded commit); fetch the commit if missing."""
    if not (checkout / ".git").exists():
        raise VoprError(f"{checkout} is not a git checkout: clone the simulator repository there first, or run the printed commands")
    dirty = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    if dirty.returncode != 0:
        raise VoprError(f"git status failed in {checkout}: {dirty.stderr.strip() or 'unknown error'}")
    if dirty.stdout.strip():
        raise VoprError(f"{checkout} has uncommitted changes: commit or stash them first, since the reproduction must build the recorded commit exactly")
    commit = _recorded_commit(steps)
    if commit and _git(checkout, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        echo(f"$ git fetch origin {commit}")
        fetched = _git(checkout, "fetch", "origin", commit)
        if fetched.returncode != 0:
            raise VoprError(f"commit {commit} is not in {checkout} and `git fetch origin {commit}` failed: fetch it by hand, then retry")


def run(record: dict, checkout: Path, echo: Callable[[str], None] = print) -> int:
    """Run the steps in `checkout`; returns 0 when the seed failed again (reproduced), EXIT_NOT_REPRODUCED if it passed."""
    checkout = checkout.expanduser().resolve()
    steps = checkout_steps(commands(record))
    prepare_checkout(checkout, steps, echo)
    *setup, final = steps
    for step in setup:
        echo(f"$ {step}")
        code = subprocess.run(["bash", "-c", step], cwd=checkout).returncode
        if code != 0:
            raise VoprError(f"`{step}` failed (exit {code}) in {checkout}: fix the build there, then retry")
    echo(f"$ {final}")
    code = subprocess.run(["bash", "-c", final], cwd=checkout).returncode
    seed = record.get("seed")
    if code != 0:
        echo(f"seed {seed} failed again (exit {code}): reproduced")
        return 0
    echo(f"seed {seed} passed (exit 0): NOT reproduced; the failure may be nondeterministic or depend on the environment")
    return EXIT_NOT_REPRODUCED
