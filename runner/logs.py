"""Structured JSON log lines: one object per line with ts, level, event and deployment, to stdout or a file.

Thread-safe (the outbox thread logs too); never raises: a log line that cannot be written is dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from pathlib import Path
from typing import IO


def utc_now() -> str:
    """UTC, RFC 3339, second precision, `Z` suffix (the store's time format)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_from_epoch(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Logger:
    def __init__(self, deployment: str, path: str | None = None, stream: IO[str] | None = None):
        self.deployment = deployment
        self._lock = threading.Lock()
        self._own = path is not None
        if path:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(Path(path).expanduser(), "a", encoding="utf-8", buffering=1) if path else (stream or sys.stdout)

    def log(self, level: str, event: str, **fields) -> None:
        record = {"ts": utc_now(), "level": level, "event": event, "deployment": self.deployment}
        record.update(fields)
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
        with self._lock:
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
            except (OSError, ValueError):
                pass

    def info(self, event: str, **fields) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields) -> None:
        self.log("error", event, **fields)

    def close(self) -> None:
        if self._own:
            with self._lock:
                self._fh.close()
