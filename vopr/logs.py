"""Read the deployment's CloudWatch log group, newest last, and render the runner's JSON lines for a human.

Paging rule (FilterLogEvents): a page with no events but a nextToken is not the end; a missing or unchanged token
means "caught up", and `follow` then waits and polls again from just before the newest timestamp seen.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from vopr.errors import VoprError

FOLLOW_POLL_INTERVAL_S = 5.0
MAX_PAGES_PER_POLL = 1000
FOLLOW_LOOKBACK_MS = 30_000
MAX_STREAMS_PER_QUERY = 100  # FilterLogEvents' limit on logStreamNames
_SINCE_RE = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")
_HEADER_KEYS = ("ts", "level", "event", "deployment")
STREAM_KINDS = ("all", "runner", "bootstrap")


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    stream: str
    message: str
    event_id: str


def parse_since(text: str) -> dt.timedelta:
    """`90s`, `15m`, `1h`, `2d`, `1h30m` -> timedelta; one-line VoprError otherwise."""
    match = _SINCE_RE.match(text or "")
    if not text or not text.strip() or not match or not any(match.groups()):
        raise VoprError(f"--since {text!r} is not a duration: use e.g. 30s, 15m, 1h, 2d or 1h30m", exit_code=2)
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _events(page: dict) -> list[LogEvent]:
    return [
        LogEvent(int(e["timestamp"]), e.get("logStreamName", ""), e.get("message", ""), str(e.get("eventId", "")))
        for e in page.get("events", [])
    ]


def _stream_names(client, group: str, kind: str) -> list[str] | None:
    """Stream names of one kind (`<instance-id>/runner`), newest first, at most 100; None means every stream."""
    if kind == "all":
        return None
    names = []
    paginator = client.get_paginator("describe_log_streams")
    for page in paginator.paginate(logGroupName=group, orderBy="LastEventTime", descending=True):
        names += [s["logStreamName"] for s in page.get("logStreams", []) if s["logStreamName"].endswith("/" + kind)]
        if len(names) >= MAX_STREAMS_PER_QUERY:
            break
    return names[:MAX_STREAMS_PER_QUERY]


def _filter_kwargs(group: str, start_ms: int, end_ms: int | None, streams: list[str] | None) -> dict:
    kwargs = {"logGroupName": group, "startTime": start_ms}
    if end_ms is not None:
        kwargs["endTime"] = end_ms
    if streams:
        kwargs["logStreamNames"] = streams
    return kwargs


def fetch(client, group: str, start_ms: int, end_ms: int | None = None, stream_kind: str = "all") -> list[LogEvent]:
    """Every event in [start_ms, end_ms], sorted oldest first (so the newest is printed last)."""
    return sorted(_drain(client, group, start_ms, end_ms, stream_kind), key=lambda e: (e.timestamp_ms, e.event_id))


def _drain(client, group: str, start_ms: int, end_ms: int | None, stream_kind: str) -> list[LogEvent]:
    streams = _stream_names(client, group, stream_kind)
    if streams == []:
        return []
    kwargs = _filter_kwargs(group, start_ms, end_ms, streams)
    out: list[LogEvent] = []
    token = None
    for _ in range(MAX_PAGES_PER_POLL):
        page = client.filter_log_events(**kwargs, **({"nextToken": token} if token else {}))
        out.extend(_events(page))
        new_token = page.get("nextToken")
        if not new_token or new_token == token:
            break
        token = new_token
    return out


def follow(client, group: str, start_ms: int, stream_kind: str = "all", poll_interval_s: float = FOLLOW_POLL_INTERVAL_S,
           sleep: Callable[[float], None] = time.sleep, max_polls: int | None = None) -> Iterator[LogEvent]:
    """Yield new events oldest first, forever (or for max_polls polls).

    Each poll reads from FOLLOW_LOOKBACK_MS before the newest timestamp seen, so events ingested late are still shown
    once; events already shown are recognised by (stream, event id).
    """
    newest_ms = start_ms
    shown: dict[tuple[str, str], int] = {}
    polls = 0
    while max_polls is None or polls < max_polls:
        polls += 1
        since_ms = max(start_ms, newest_ms - FOLLOW_LOOKBACK_MS)
        batch = sorted(_drain(client, group, since_ms, None, stream_kind), key=lambda e: (e.timestamp_ms, e.event_id))
        for event in batch:
            key = (event.stream, event.event_id)
            if key in shown:
                continue
            shown[key] = event.timestamp_ms
            newest_ms = max(newest_ms, event.timestamp_ms)
            yield event
        horizon = newest_ms - FOLLOW_LOOKBACK_MS
        shown = {k: ts for k, ts in shown.items() if ts >= horizon}
        if max_polls is None or polls < max_polls:
            sleep(poll_interval_s)


def render(event: LogEvent) -> str:
    """Readable rich markup: time, level, event, the other fields as key=value; multi-line text fields (an alert's
    body) follow on indented lines; lines that are not JSON (the bootstrap log) are shown as they are."""
    from rich.markup import escape

    when = dt.datetime.fromtimestamp(event.timestamp_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    source = event.stream.rsplit("/", 1)[-1] if event.stream else ""
    tag = f"[dim]{escape(source)}[/dim] " if source and source != "runner" else ""
    try:
        data = json.loads(event.message)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return f"[dim]{when}[/dim] {tag}{escape(event.message.rstrip())}"
    level = str(data.get("level", "info"))
    style = {"error": "bold red", "warning": "yellow", "info": "green"}.get(level, "")
    name = str(data.get("event", ""))
    rest = {k: v for k, v in data.items() if k not in _HEADER_KEYS}
    blocks = {k: v for k, v in rest.items() if isinstance(v, str) and "\n" in v.strip()}
    fields = " ".join(f"[cyan]{escape(k)}[/cyan]={escape(_value(v))}" for k, v in rest.items() if k not in blocks)
    level_text = f"[{style}]{level:<7}[/{style}]" if style else f"{level:<7}"
    line = f"[dim]{when}[/dim] {tag}{level_text} [bold]{escape(name)}[/bold] {fields}".rstrip()
    for key, text in blocks.items():
        body = "\n".join("    " + escape(l) for l in text.rstrip().splitlines())
        line += f"\n  [cyan]{escape(key)}[/cyan]:\n{body}"
    return line


def _value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v) if (not v or any(c.isspace() for c in v) or '"' in v) else v
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def start_ms_for(since: dt.timedelta, now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.timezone.utc)
    return int((now - since).timestamp() * 1000)


def explain_missing_group(exc: BaseException, group: str) -> None:
    from vopr.aws import error_code

    if error_code(exc) == "ResourceNotFoundException":
        raise VoprError(
            f"log group {group} does not exist: it is created by `vopr deploy`; check --region and the deployment name"
        ) from None
