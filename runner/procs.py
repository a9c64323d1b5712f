"""Simulator child processes: started in their own session (so a whole process group can be killed), with
non-blocking pipes enlarged to 1 MiB so a fast simulator rarely waits for the runner to read.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time

PIPE_BYTES = 1 << 20
TAIL_BYTES = 64 * 1024


class SimProcess:
    """One simulator process: a batch over part of a seed range, or a determinism replay of one seed."""

    def __init__(self, argv: list[str], cwd: str, role: str, range_start: int, first_seed: int, end_seed: int,
                 env: dict | None = None):
        self.role = role  # "batch" or "replay"
        self.range_start = range_start
        self.first_seed = first_seed
        self.end_seed = end_seed
        self.argv = argv
        self.started = time.monotonic()
        self.last_progress = self.started
        self.kill_reason: str | None = None
        self.stderr_tail = bytearray()
        self.stdout_tail = bytearray()
        self.open_fds = 0
        self.failures = 0
        self.flood_alerted = False
        self.stream = None  # protocol.JsonStream for vopr-json
        self.got_start = False
        self.complete: dict | None = None
        self.replay_of: dict | None = None
        self.replay_failures: list[dict] = []
        self.batch: dict | None = None
        self.unparsed = 0
        self.eof_at = 0.0
        self.popen = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=env, close_fds=True,
        )
        for pipe in (self.popen.stdout, self.popen.stderr):
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass
        self.pipe_bytes = fcntl.fcntl(self.popen.stdout.fileno(), fcntl.F_GETPIPE_SZ)
        self.open_fds = 2

    @property
    def pid(self) -> int:
        return self.popen.pid

    def keep_tail(self, buf: bytearray, data: bytes) -> None:
        buf += data
        if len(buf) > TAIL_BYTES:
            del buf[: len(buf) - TAIL_BYTES]

    def kill(self, reason: str) -> None:
        """Kill the whole process group (the simulator and anything it started), remembering why."""
        if self.kill_reason is None:
            self.kill_reason = reason
        self.signal_group(signal.SIGKILL)

    def signal_group(self, sig: int) -> None:
        if self.popen.returncode is not None:
            return  # reaped: the group id may belong to someone else now
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def exited(self) -> bool:
        """Exited (a zombie or reaped), without reaping it, so its process group id stays ours."""
        if self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0

    def tail_text(self, chars: int = 4000) -> str:
        data = self.stderr_tail if self.stderr_tail.strip() else self.stdout_tail
        return data.decode("utf-8", "replace")[-chars:]
