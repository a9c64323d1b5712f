"""Small helpers shared by the test folders: a throwaway git repository holding a simulator, and reading an SQS
queue (subscribed to an SNS topic) dry."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def simulator_repo(path: Path, name: str, script: str) -> str:
    """A git repository at `path` with the executable `name` committed; returns the commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / name).write_text(script)
    git(path, "add", name)
    git(path, "commit", "-q", "-m", "simulator")
    (path / name).chmod(0o755)
    return git(path, "rev-parse", "HEAD")


def drain_queue(sqs, queue: str) -> list[dict]:
    """Every message in the queue, parsed from JSON, deleted as read."""
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
