"""Incremental parser for one `vopr-json` process's stdout, built to cost almost nothing per seed.

The output file is read as it grows into one reusable buffer (no allocation per read). Every line holding `"failed"` is found by a
byte search and parsed, so no failure is skipped. The lines between are accepted in bulk after counting their
newlines and parsing only the first and the last (passing iteration lines whose seeds span exactly that many
lines); a run that does not add up (a start or batch_complete line, garbage, a gap) is halved until its parts
do, or parsed line by line when small, so every odd line and every gap is found. Known blind spot: an odd line
and a missing seed inside one run of passing lines cancel out in the count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

FAILED_MARK = b'"failed"'
RARE_BYTE = b"f"  # in every failed line; absent from passing lines unless they carry hex (storage_hash)
RARE_BYTE_FALSE_HITS_MAX = 16
MAX_SAMPLE_BYTES = 300
PARSED_ALONE_MAX_LINES = 16
READ_BYTES = 1 << 20
COUNT_PIECE_BYTES = 64 << 10  # below malloc's mmap threshold: the copies _newlines makes reuse heap memory
MAX_LINE_BYTES = 16 << 20


@dataclass
class Feed:
    """What one read contained, beyond plain passing seeds."""

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
    def __init__(self, first_seed: int, end_seed: int | None = None):
        self.expected = first_seed
        self.end = end_seed if end_seed is not None else 1 << 64  # a seed at or past it was not asked for: unparsed
        self._probe = FAILED_MARK
        self._false_hits = 0
        self._buf = bytearray(2 * READ_BYTES)
        self._fill = 0  # bytes of an unfinished line at the start of _buf

    def read_from(self, fd: int) -> Feed | None:
        """Read up to READ_BYTES more of the output and parse the complete lines; None when nothing new is there
        (at the end of the file so far)."""
        if len(self._buf) - self._fill < READ_BYTES:
            self._make_room()
        n = os.readv(fd, [memoryview(self._buf)[self._fill: self._fill + READ_BYTES]])
        if n == 0:
            return None
        out = self._consume(self._fill + n)
        out.bytes_read = n
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
        self._block(cut + 1, out)
        tail = end - cut - 1
        self._buf[0:tail] = self._buf[cut + 1: end]
        self._fill = tail
        return out

    def _block(self, end: int, out: Feed) -> None:
        """The complete lines in _buf[:end]. Every line holding the probe (a failure has it) is parsed alone; the
        runs between go to _plain. The probe is `"failed"` until passing lines prove to have no `f` byte; then the
        byte itself, which memchr finds at memory speed. Too many passing lines with an `f` switch back for good."""
        buf = self._buf
        start = 0
        while start < end:
            hit = buf.find(self._probe, start, end)
            if hit < 0:
                self._plain(start, end, _newlines(buf, start, end), out)
                return
            line_start = buf.rfind(b"\n", start, hit) + 1 or start
            line_end = buf.find(b"\n", hit, end)
            if line_start > start:
                self._plain(start, line_start, _newlines(buf, start, line_start), out)
            line = bytes(buf[line_start:line_end])
            if self._probe == RARE_BYTE and FAILED_MARK not in line:
                self._false_hits += 1
                if self._false_hits > RARE_BYTE_FALSE_HITS_MAX:
                    self._probe = FAILED_MARK
            self._line(line, out)
            start = line_end + 1

    def _plain(self, start: int, end: int, count: int, out: Feed) -> None:
        """`count` lines without a failure: accepted in bulk when the first and the last are passing iteration
        lines whose seeds span exactly `count`, else halved (each half checked the same way), or parsed one by
        one when few. So a run with one odd line or gap costs a few more parses, not a parse per line."""
        buf = self._buf
        if count <= PARSED_ALONE_MAX_LINES:
            for line in bytes(buf[start: end - 1]).split(b"\n"):
                self._line(line, out)
            return
        first_end = buf.find(b"\n", start, end)
        last_start = buf.rfind(b"\n", start, end - 1) + 1
        first = _ok_seed(buf[start:first_end])
        if first == self.expected and first + count <= self.end and _ok_seed(buf[last_start: end - 1]) == first + count - 1:
            self.expected += count
            out.completed += count
            if self._probe == FAILED_MARK and not self._false_hits and count >= 100 and buf.find(RARE_BYTE, start, end) < 0:
                self._probe = RARE_BYTE
            return
        middle = buf.find(b"\n", (start + end) // 2, end - 1)
        if middle < 0:  # the last line holds the middle byte: split it off
            middle = last_start - 1
        left = _newlines(buf, start, middle + 1)
        self._plain(start, middle + 1, left, out)
        self._plain(middle + 1, end, count - left, out)

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
            if not isinstance(seed, int) or isinstance(seed, bool) or not self.expected <= seed < self.end:
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


def _newlines(buf: bytearray, start: int, end: int) -> int:
    """How many newlines buf[start:end] holds. bytes.count tests byte by byte; bytes.replace finds a single byte
    with memchr (SIMD), about 3 times faster even with the copies, which stay in cache in 64 KiB pieces."""
    count = 0
    for at in range(start, end, COUNT_PIECE_BYTES):
        piece = buf[at: min(end, at + COUNT_PIECE_BYTES)]
        count += len(piece) - len(piece.replace(b"\n", b""))
    return count


def parse_lines(text: bytes, first_seed: int) -> Feed:
    """Parse a whole output at once (replays, tests): the same rules as streaming."""
    stream = JsonStream(first_seed)
    out = stream.feed(text)
    out.merge(stream.finish())
    return out
