"""The results store's layout: the contract between the runner (writer) and the CLI (reader).

Keys are relative to the store root (`s3://bucket/prefix/` or a local directory); docs/VOPR_DEPLOYMENT.md documents them.
"""

from __future__ import annotations

import datetime as _dt

SCHEMA_VERSION = 1
CHECKPOINT_LATEST = "checkpoints/latest.json"
CHECKPOINT_DAILY_PREFIX = "checkpoints/daily/"
FAILURES_PREFIX = "failures/"
SIGNATURE_INDEX = "signatures/index.json"
ARTIFACTS_PREFIX = "artifacts/"
METRICS_NAMESPACE = "VOPR"
METRICS_DIMENSION = "Deployment"

# Prefixes the runner writes; the instance role may write nothing else.
RUNNER_WRITE_PREFIXES = ("checkpoints/", FAILURES_PREFIX, "signatures/")
# Prefixes the runner (and the bootstrap) read.
RUNNER_READ_PREFIXES = RUNNER_WRITE_PREFIXES + (ARTIFACTS_PREFIX,)


def daily_checkpoint_key(day: _dt.date) -> str:
    return f"{CHECKPOINT_DAILY_PREFIX}{day:%Y-%m-%d}.json"


def failure_key(seed: int) -> str:
    return f"{FAILURES_PREFIX}{int(seed)}.json"
