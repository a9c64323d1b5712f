"""Incremental parser for one `vopr-json` process's stdout, built to cost almost nothing per seed.

The pipe is read into one reusable buffer (no allocation per read), in pieces that stay in the CPU cache while
they are scanned. Every line holding `"failed"` is found by a byte search and parsed, so no failure is skipped. The lines between are accepted in bulk after counting
their newlines and parsing only the first and last (passing iteration lines, contiguous seeds); anything else
(start, batch_complete, garbage, a gap) sends them through the line-by-line parser. Known blind spot: an odd
line and a missing seed inside one run of passing lines cancel out in the count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

FAILED_MARK = b'"failed"'
RARE_BYTE = b"f"  # in every failed line; absent from passing lines unless they carry hex (storage_hash)
RARE_BYTE_FALSE_HITS_MAX = 16
MAX_SAMPLE_BYTES = 300
BUFFER_BYTES = 1 << 20
READ_PIECE_BYTES = 512 << 10
PIPE_READ_BYTES = 1 << 20
MAX_LINE_BYTES = 16 << 20


@dataclass
class Feed:
    """What one chunk contained, beyond plain passing seeds."""

    completed: int = 0
    failures: list[dict] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    unparsed: list[bytes] = field(default_factory=list)
    start: dict | None = None
    complete: dict | None = None
    bytes_read: int = 0

    def merge(self, other: "Feed") -> None:
        self.completed += other.completed
        self.failures += other.failures
        self.gaps += other.gaps
        self.unparsed += other.unparsed
        self.start = self.start if self.start is not None else other.start
        self.complete = other.complete if other.complete is not None else self.complete

    @property
    def unusual(self) -> bool:
        return bool(self.failures or self.gaps or self.unparsed or self.start is not None or self.complete is not None)


class JsonStream:
    def __init__(self, first_seed: int):
        self.expected = first_seed
        self._probe = FAILED_MARK
        self._false_hits = 0
        self._buf = bytearray(BUFFER_BYTES)
        self._fill = 0

    def read_from(self, fd: int) -> Feed | None:
        """Read what the (non-blocking) pipe holds, in pieces small enough to be scanned while still in the CPU
        cache, and parse the complete lines; None at end of file. BlockingIOError when there is nothing to read."""
        out = Feed()
        while out.bytes_read < PIPE_READ_BYTES:
            if len(self._buf) - self._fill < READ_PIECE_BYTES:
                self._make_room()
            try:
                n = os.readv(fd, [memoryview(self._buf)[self._fill: self._fill + READ_PIECE_BYTES]])
            except BlockingIOError:
                if out.bytes_read:
                    return out
                raise
            if n == 0:
                return out if out.bytes_read else None
            out.merge(self._consume(self._fill + n))
            out.bytes_read += n
            if n < READ_PIECE_BYTES:
                return out
        return out

    def feed(self, data: bytes) -> Feed:
        """Parse bytes from anywhere (tests, whole outputs)."""
        while len(self._buf) - self._fill < len(data):
            self._buf.extend(bytes(len(self._buf)))
        self._buf[self._fill: self._fill + len(data)] = data
        return self._consume(self._fill + len(data))

    def finish(self) -> Feed:
        """At end of file: a last line without a newline is still a line."""
        out = Feed()
        if bytes(self._buf[: self._fill]).strip():
            self._line(bytes(self._buf[: self._fill]), out)
        self._fill = 0
        return out

    def _make_room(self) -> None:
        if len(self._buf) < MAX_LINE_BYTES:
            self._buf.extend(bytes(len(self._buf)))
        else:  # a "line" this long is garbage: keep only its start as the sample
            self._fill = MAX_SAMPLE_BYTES

    def _consume(self, end: int) -> Feed:
        out = Feed()
        cut = self._buf.rfind(b"\n", self._fill, end)
        if cut < 0:
            self._fill = end
            return out
        self._block(0, cut + 1, out)
        tail = end - cut - 1
        self._buf[0:tail] = self._buf[cut + 1: end]
        self._fill = tail
        return out

    def _block(self, start: int, end: int, out: Feed) -> None:
        """Every line holding the probe (a failure has it) is parsed alone; the runs between go to _plain.
        The probe is `"failed"` until passing lines prove to have no `f` byte; then the byte itself, which
        memchr finds at memory speed. Too many passing lines with an `f` switch back for good."""
        buf = self._buf
        while start < end:
            hit = buf.find(self._probe, start, end)
            if hit < 0:
                self._plain(start, end, out)
                return
            line_start = buf.rfind(b"\n", start, hit) + 1 or start
            line_end = buf.find(b"\n", hit, end)
            if line_start > start:
                self._plain(start, line_start, out)
            line = bytes(buf[line_start:line_end])
            if self._probe == RARE_BYTE and FAILED_MARK not in line:
                self._false_hits += 1
                if self._false_hits > RARE_BYTE_FALSE_HITS_MAX:
                    self._probe = FAILED_MARK
            self._line(line, out)
            start = line_end + 1

    def _plain(self, start: int, end: int, out: Feed) -> None:
        """Lines without a failure: accept them in bulk when they are contiguous passing iteration lines."""
        buf = self._buf
        count = buf.count(b"\n", start, end)
        first_end = buf.find(b"\n", start, end)
        first = _ok_seed(buf[start:first_end])
        if count == 1:
            if first == self.expected:
                self.expected += 1
                out.completed += 1
            else:
                self._line(bytes(buf[start:first_end]), out)
            return
        last_start = buf.rfind(b"\n", start, end - 1) + 1
        last = _ok_seed(buf[last_start: end - 1])
        if first == self.expected and last == self.expected + count - 1:
            self.expected += count
            out.completed += count
            if self._probe == FAILED_MARK and not self._false_hits and count >= 100 and buf.find(RARE_BYTE, start, end) < 0:
                self._probe = RARE_BYTE
        elif first is None:
            self._line(bytes(buf[start:first_end]), out)
            self._plain(first_end + 1, end, out)
        elif last is None:
            self._plain(start, last_start, out)
            self._line(bytes(buf[last_start: end - 1]), out)
        else:
            for line in bytes(buf[start:end]).split(b"\n")[:-1]:
                self._line(line, out)

    def _line(self, line: bytes, out: Feed) -> None:
        if not line.strip():
            return
        try:
            obj = json.loads(line)
            kind, data = obj["type"], obj["data"]
            if not isinstance(data, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            out.unparsed.append(line[:MAX_SAMPLE_BYTES])
            return
        if kind == "iteration":
            seed = data.get("seed")
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < self.expected:
                out.unparsed.append(line[:MAX_SAMPLE_BYTES])
                return
            if seed > self.expected:
                out.gaps.append((self.expected, seed - 1))
            self.expected = seed + 1
            out.completed += 1
            if data.get("status") != "ok":
                failure = dict(data)
                failure["timestamp"] = obj.get("timestamp")
                if data.get("status") != "failed":
                    failure.setdefault("invariant", f"status {data.get('status')!r}")
                out.failures.append(failure)
        elif kind == "start":
            out.start = data
        elif kind == "batch_complete":
            out.complete = data
        else:
            out.unparsed.append(line[:MAX_SAMPLE_BYTES])


def _ok_seed(line) -> int | None:
    """The seed of a passing iteration line, else None."""
    try:
        obj = json.loads(line)
        data = obj["data"]
        seed = data["seed"]
        if obj["type"] != "iteration" or data["status"] != "ok" or not isinstance(seed, int) or isinstance(seed, bool):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return seed


def parse_lines(text: bytes, first_seed: int) -> Feed:
    """Parse a whole output at once (replays, tests): the same rules as streaming."""
    stream = JsonStream(first_seed)
    out = stream.feed(text)
    out.merge(stream.finish())
    return out
