"""`vopr logs` against moto (ordering, rendering, --since, --stream, --follow with Ctrl-C) and the paging rules."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from vopr import logs
from vopr.errors import VoprError

from_now_ms = lambda seconds: int((time.time() + seconds) * 1000)  # noqa: E731


def _line(event: str, level: str = "info", **fields) -> str:
    return json.dumps({"ts": "2026-12-03T17:00:00Z", "level": level, "event": event, "deployment": "vopr", **fields}, sort_keys=True)


def _put(res, stream: str, events: list[tuple[int, str]]) -> None:
    try:
        res.logs.create_log_stream(logGroupName=res.log_group, logStreamName=stream)
    except res.logs.exceptions.ResourceAlreadyExistsException:
        pass
    res.logs.put_log_events(logGroupName=res.log_group, logStreamName=stream,
                            logEvents=[{"timestamp": ts, "message": m} for ts, m in events])


@pytest.fixture
def with_logs(deployed):
    iid = deployed.instance_id
    _put(deployed, f"{iid}/bootstrap", [(from_now_ms(-7200), "too old to show"),
                                         (from_now_ms(-600), "[2026-12-03T16:50:00Z] step 3/9: building the simulator")])
    _put(deployed, f"{iid}/runner", [
        (from_now_ms(-300), _line("batch", first_seed=0, last_seed=999, iterations=1000, failures=0, rate=5123.4)),
        (from_now_ms(-120), _line("failure", level="warning", seed=3822, kind="invariant",
                                  signature="replica_consistency: Replica divergence at time <N>")),
        (from_now_ms(-60), _line("error", level="error", message="S3 put failed: queued in the outbox")),
    ])
    return deployed


def test_logs_newest_last_and_rendered(with_logs, invoke):
    result = invoke("logs", "--since", "1h")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert "bootstrap" in lines[0] and "step 3/9: building the simulator" in lines[0]
    assert "info" in lines[1] and "batch" in lines[1] and "first_seed=0" in lines[1] and "rate=5123.4" in lines[1]
    assert "warning" in lines[2] and "seed=3822" in lines[2]
    assert 'signature="replica_consistency: Replica divergence at time <N>"' in lines[2]
    assert "error" in lines[3] and 'message="S3 put failed: queued in the outbox"' in lines[3]
    assert "too old" not in result.stdout
    assert '"level"' not in result.stdout


def test_logs_since_and_stream_filters(with_logs, invoke):
    result = invoke("logs", "--since", "3h", "--stream", "bootstrap")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith("too old to show")
    assert len(result.stdout.splitlines()) == 2
    result = invoke("logs", "--since", "200s", "--raw")
    assert result.stdout.splitlines() == [
        _line("failure", level="warning", seed=3822, kind="invariant", signature="replica_consistency: Replica divergence at time <N>"),
        _line("error", level="error", message="S3 put failed: queued in the outbox"),
    ]


def test_logs_empty_window_says_where_to_look(deployed, invoke):
    result = invoke("logs", "--since", "5m")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no log events in /vopr/vopr" in result.stderr and "No logs" in result.stderr


@pytest.mark.parametrize("since", ["yesterday", "1w", "", "-5m", "h"])
def test_logs_bad_since_is_one_line(deployed, invoke, since):
    result = invoke("logs", "--since", since)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --since") and result.stderr.count("\n") == 1
    assert "30s, 15m, 1h" in result.stderr


def test_logs_missing_log_group(deployed, invoke):
    deployed.logs.delete_log_group(logGroupName=deployed.log_group)
    result = invoke("logs")
    assert result.exit_code == 1
    assert "log group /vopr/vopr does not exist" in result.stderr and "Traceback" not in result.output


def test_parse_since():
    assert logs.parse_since("90s").total_seconds() == 90
    assert logs.parse_since("1h30m").total_seconds() == 5400
    assert logs.parse_since("2d").total_seconds() == 172800
    with pytest.raises(VoprError):
        logs.parse_since("soon")


class ScriptedLogs:
    """FilterLogEvents answers moto cannot give: empty pages that carry a token, and a token that does not change."""

    def __init__(self, pages):
        self.pages = list(pages)
        self.calls = []

    def filter_log_events(self, **kwargs):
        self.calls.append(kwargs)
        return self.pages.pop(0) if self.pages else {"events": []}


def _ev(ts: int, msg: str, eid: str, stream: str = "i-1/runner") -> dict:
    return {"timestamp": ts, "message": msg, "eventId": eid, "logStreamName": stream}


def test_empty_pages_with_a_token_are_not_the_end():
    client = ScriptedLogs([
        {"events": [], "nextToken": "t1"},
        {"events": [], "nextToken": "t2"},
        {"events": [_ev(5, "late", "b"), _ev(1, "early", "a")], "nextToken": "t3"},
        {"events": []},
    ])
    events = logs.fetch(client, "/vopr/vopr", 0)
    assert [e.message for e in events] == ["early", "late"]
    assert [c.get("nextToken") for c in client.calls] == [None, "t1", "t2", "t3"]


def test_an_unchanged_token_means_caught_up_then_wait_and_poll_again():
    client = ScriptedLogs([
        {"events": [_ev(10, "one", "a")], "nextToken": "same"},
        {"events": [], "nextToken": "same"},
        {"events": [_ev(10, "one", "a"), _ev(20, "two", "b")], "nextToken": "x"},
        {"events": [], "nextToken": "x"},
        {"events": [_ev(20, "two", "b")]},
    ])
    slept = []
    seen = [e.message for e in logs.follow(client, "/vopr/vopr", 0, poll_interval_s=2.5, sleep=slept.append, max_polls=3)]
    assert seen == ["one", "two"]
    assert slept == [2.5, 2.5]
    assert [c.get("nextToken") for c in client.calls] == [None, "same", None, "x", None]
    assert client.calls[2]["startTime"] == 0
    assert all("endTime" not in c for c in client.calls)


def test_follow_restarts_just_before_the_newest_event_and_shows_each_once():
    base = 10 * 60 * 1000
    client = ScriptedLogs([
        {"events": [_ev(base, "a", "1"), _ev(base, "a-other-stream", "1", stream="i-1/bootstrap")]},
        {"events": [_ev(base, "a", "1"), _ev(base - 5000, "ingested late", "2"), _ev(base + 1, "b", "3")]},
    ])
    seen = [e.message for e in logs.follow(client, "/vopr/vopr", 0, sleep=lambda _: None, max_polls=2)]
    assert seen == ["a", "a-other-stream", "ingested late", "b"]
    assert client.calls[1]["startTime"] == base - logs.FOLLOW_LOOKBACK_MS


def _reader(stream, out: queue.Queue):
    for line in iter(stream.readline, ""):
        out.put(line)


def _wait_for(lines: queue.Queue, text: str, timeout_s: float = 30) -> list[str]:
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        got.append(line)
        if text in line:
            return got
    raise AssertionError(f"{text!r} not seen; got {got}")


def test_follow_prints_new_lines_and_ctrl_c_exits_cleanly(with_logs, aws, workdir):
    vopr = os.path.join(os.path.dirname(sys.executable), "vopr")
    env = {**aws, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([vopr, "logs", "--follow", "--since", "1h", "--poll-interval", "0.2"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        first = _wait_for(lines, "S3 put failed")
        assert len(first) == 4
        _put(with_logs, f"{with_logs.instance_id}/runner", [(from_now_ms(0), _line("batch", first_seed=1000, last_seed=1999))])
        more = _wait_for(lines, "first_seed=1000")
        assert len(more) == 1
        time.sleep(1.0)
        assert lines.empty(), "an event was printed twice"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=20)
        finally:
            proc.kill()
    stderr = proc.stderr.read()
    assert rc == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_logs_render_the_runners_real_lines(runner_results, deployed, invoke):
    lines = runner_results.log.read_text().splitlines()
    start = from_now_ms(-600)
    _put(deployed, f"{deployed.instance_id}/runner", [(start + i, l) for i, l in enumerate(lines)])
    result = invoke("logs", "--since", "15m")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert '"level"' not in out and '"event"' not in out
    events = [json.loads(l) for l in lines]
    headers = [l for l in out.splitlines() if l[:4].isdigit()]
    assert len(headers) == len(events)
    for header, event in zip(headers, events):
        assert f" {event['event']}" in header and event["level"] in header
    alert = next((e for e in events if e["event"] == "alert"), None)
    if alert is not None:
        assert "  body:" in out and alert["body"].splitlines()[0] in out
