"""Simulator child processes: each runs in its own session (so its whole process group can be killed) and writes
stdout and stderr to files under the state directory, so output survives the runner being killed and is read back.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

TAIL_BYTES = 64 * 1024
OUTPUT_DIR = "out"
NAME_RE = re.compile(r"^(batch|replay)-(\d+)-(\d+)-(\d+)-\d+\.out$")


class SimProcess:
    """One simulator process: a batch over part of a seed range, or a determinism replay of one seed. Its output
    is in `<out_dir>/<role>-<range start>-<first seed>-<end seed>-<ns>.out` (and `.err`), which the runner reads
    as it grows and deletes once what it said is in a checkpoint."""

    def __init__(self, role: str, range_start: int, first_seed: int, end_seed: int, out_path: Path):
        self.role = role  # "batch" or "replay"
        self.range_start = range_start
        self.first_seed = first_seed
        self.end_seed = end_seed
        self.out_path = out_path
        self.err_path = out_path.with_suffix(".err")
        self.argv: list[str] = []
        self.popen: subprocess.Popen | None = None
        self.pidfd: int | None = None
        self.out_fd: int | None = None
        self.started = time.monotonic()
        self.last_progress = self.started
        self.kill_reason: str | None = None
        self.stderr_before = b""  # the tail kept when a flooding stderr file was truncated
        self.output_done = False
        self.out_bytes = 0
        self.failures = 0
        self.flood_alerted = False
        self.stream = None  # protocol.JsonStream for vopr-json
        self.got_start = False
        self.complete: dict | None = None
        self.replay_of: dict | None = None
        self.replay_failures: list[dict] = []
        self.batch: dict | None = None
        self.unparsed = 0

    @classmethod
    def start(cls, argv: list[str], cwd: str, role: str, range_start: int, first_seed: int, end_seed: int,
              out_dir: Path, env: dict | None = None) -> "SimProcess":
        proc = cls(role, range_start, first_seed, end_seed, out_dir / f"{role}-{range_start}-{first_seed}-{end_seed}-{time.time_ns()}.out")
        proc.argv = argv
        try:
            with open(proc.out_path, "wb") as out, open(proc.err_path, "ab") as err:
                proc.popen = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                              start_new_session=True, env=env, close_fds=True)
        except OSError:
            proc.remove_files()
            raise
        proc.out_fd = os.open(proc.out_path, os.O_RDONLY)
        try:
            proc.pidfd = os.pidfd_open(proc.popen.pid)
        except (AttributeError, OSError):
            proc.pidfd = None  # no pidfd (old kernel): the loop polls instead
        return proc

    @classmethod
    def left_behind(cls, path: Path) -> "SimProcess | None":
        """The output file of a process a previous runner started, or None if the name is not one of ours."""
        m = NAME_RE.match(path.name)
        if m is None:
            return None
        return cls(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), path)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def kill(self, reason: str) -> None:
        """Kill the whole process group (the simulator and anything it started), remembering why."""
        if self.kill_reason is None:
            self.kill_reason = reason
        self.signal_group(signal.SIGKILL)

    def signal_group(self, sig: int) -> None:
        if self.popen is None or self.popen.returncode is not None:
            return  # reaped: the group id may belong to someone else now
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def exited(self) -> bool:
        """Exited (a zombie or reaped), without reaping it, so its process group id stays ours."""
        if self.popen is None or self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0

    def trim_stderr(self, max_bytes: int) -> bool:
        """Keep a simulator that logs without end from filling the disk: past max_bytes, keep the tail in memory
        and empty the file (the simulator appends, so it simply goes on writing at the new end)."""
        try:
            if os.stat(self.err_path).st_size <= max_bytes:
                return False
            self.stderr_before = _tail(self.err_path)
            os.truncate(self.err_path, 0)
        except OSError:
            return False
        return True

    def tail_text(self, chars: int = 4000) -> str:
        err = (self.stderr_before + _tail(self.err_path))[-TAIL_BYTES:]
        data = err if err.strip() else _tail(self.out_path)
        return data.decode("utf-8", "replace")[-chars:]

    def close(self) -> None:
        for name in ("out_fd", "pidfd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def remove_files(self) -> None:
        for path in (self.out_path, self.err_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _tail(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - TAIL_BYTES))
            return fh.read(TAIL_BYTES).replace(b"\0", b"")
    except OSError:
        return b""


def holders(out_dir: Path) -> dict[int, int]:
    """Processes (pid -> process group) that have a file in out_dir open: simulators a killed runner left running."""
    found: dict[int, int] = {}
    prefix = str(out_dir.resolve()) + os.sep
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            if any(t.startswith(prefix) for t in targets):
                found[pid] = os.getpgid(pid)
        except OSError:
            continue
    return found


def kill_left_behind(out_dir: Path, wait_s: float = 10.0) -> list[int]:
    """SIGKILL every process group still writing into out_dir, and wait until none is; returns their pids."""
    killed: list[int] = []
    deadline = time.monotonic() + wait_s
    own_group = os.getpgrp()
    while True:
        found = holders(out_dir)
        if not found or time.monotonic() > deadline:
            return killed
        for pid, group in found.items():
            try:
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)
