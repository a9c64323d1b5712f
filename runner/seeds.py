"""Seed accounting: disjoint seed ranges handed to simulator processes, and which seeds are done.

`next_seed` never claims a seed before every lower one is done. Between fsynced checkpoints, progress goes to
an append-only journal with plain writes (a killed runner loses nothing the kernel already has), so a restart
resumes each range at its in-flight seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class SeedLedger:
    def __init__(self, allocated_until: int, ranges: list[list[int]], journal_path: Path, end_seed: int | None = None):
        self.allocated_until = allocated_until
        self.ranges: dict[int, list[int]] = {int(s): [int(e), int(r)] for s, e, r in ranges if int(r) < int(e)}
        self.assigned: set[int] = set()
        self.end_seed = end_seed
        self._dirty: set[int] = set()
        self._journal_path = journal_path
        self._journal_fd: int | None = None

    @property
    def next_seed(self) -> int:
        pending = [r for e, r in self.ranges.values() if r < e]
        return min(pending) if pending else self.allocated_until

    def ranges_in_flight(self) -> list[list[int]]:
        return [[s, e, r] for s, (e, r) in sorted(self.ranges.items()) if r < e]

    def take_resumable(self) -> tuple[int, int, int] | None:
        """The lowest unfinished range no process owns: (start, resume_at, end)."""
        for start in sorted(self.ranges):
            end, resume = self.ranges[start]
            if start not in self.assigned and resume < end:
                self.assigned.add(start)
                return start, resume, end
        return None

    def allocate(self, size: int, iterations: int) -> tuple[int, int, int] | None:
        """A fresh range, journalled (with the iteration total) before any process can report on it."""
        start = self.allocated_until
        end = start + max(1, size)
        if self.end_seed is not None:
            end = min(end, self.end_seed)
        if end <= start:
            return None
        self.allocated_until = end
        self.ranges[start] = [end, start]
        self.assigned.add(start)
        self._dirty.add(start)
        self.write_journal(iterations)
        return start, start, end

    def exhausted(self) -> bool:
        """No seed is left to hand out (only with --end-seed)."""
        return (self.end_seed is not None and self.allocated_until >= self.end_seed
                and all(r >= e or s in self.assigned for s, (e, r) in self.ranges.items()))

    def progress(self, start: int, resume_at: int) -> None:
        entry = self.ranges[start]
        if resume_at > entry[1]:
            entry[1] = min(resume_at, entry[0])
            self._dirty.add(start)

    def release(self, start: int) -> None:
        """The process that owned the range ended; an unfinished range waits for the next free slot."""
        self.assigned.discard(start)
        end, resume = self.ranges.get(start, (0, 0))
        if resume >= end:
            self.ranges.pop(start, None)

    def write_journal(self, iterations: int) -> None:
        """Append the dirty ranges and the iteration total as one line: plain write, no fsync."""
        ranges = ",".join(f"[{s},{self.ranges[s][0]},{self.ranges[s][1]}]" for s in sorted(self._dirty) if s in self.ranges)
        if self._journal_fd is None:
            self._journal_fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._journal_fd, f'{{"a":{self.allocated_until},"i":{iterations},"r":[{ranges}]}}\n'.encode())
        self._dirty.clear()

    def truncate_journal(self) -> None:
        """After a checkpoint that contains everything the journal said."""
        self._dirty.clear()
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        try:
            os.truncate(self._journal_path, 0)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None


def replay_journal(path: Path, allocated_until: int, ranges: list[list[int]], iterations: int):
    """Apply journal lines on top of a checkpoint's seed state; returns (allocated_until, ranges, iterations,
    lines_applied, lines_bad). A torn last line (power loss) is ignored."""
    table = {int(s): [int(e), int(r)] for s, e, r in ranges}
    applied = bad = 0
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
            allocated_until = max(allocated_until, int(entry["a"]))
            for s, e, r in entry["r"]:
                current = table.setdefault(int(s), [int(e), int(s)])
                current[1] = max(current[1], int(r))
            iterations = max(iterations, int(entry["i"]))
            applied += 1
        except (ValueError, KeyError, TypeError):
            bad += 1
    live = [[s, e, r] for s, (e, r) in sorted(table.items()) if r < e]
    return allocated_until, live, iterations, applied, bad
