"""Shared output helpers for the CLI: the rich consoles and the formatting of times, durations and counts.

rich is imported on first use so `vopr --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

_consoles: dict = {}


def console(stderr: bool = False):
    """A rich Console on the current sys.stdout/sys.stderr (looked up at write time, so test runners capture it)."""
    key = "err" if stderr else "out"
    if key not in _consoles:
        from rich.console import Console

        _consoles[key] = Console(stderr=stderr, highlight=False, soft_wrap=False)
    return _consoles[key]


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def parse_time(value) -> dt.datetime | None:
    """An aware UTC datetime from RFC 3339 text (`Z` or offset, any fraction) or a datetime; None if unparseable."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        text = f"{head}.{digits[:6]}{tz}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def duration(seconds: float | None) -> str:
    """`3d 4h`, `2h 05m`, `7m 12s`, `42s`."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if when is None:
        return "never"
    return duration(((now or utcnow()) - when).total_seconds()) + " ago"


def count(n) -> str:
    return "-" if n is None else f"{int(n):,}"


def rate(r) -> str:
    return "-" if r is None else f"{float(r):,.1f}/s"
