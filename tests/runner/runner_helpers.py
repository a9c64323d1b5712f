"""Helpers for the runner's tests: a fake simulator with failure injection, `python -m runner` as a real process,
reading back its JSON log lines and store, a TCP forwarder that can go down, and a fake IMDSv2 server."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

FAKE_VOPR = Path(__file__).resolve().parent / "fakes" / "fake_vopr.py"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeSim:
    """A fake simulator's spec file plus the command and environment that run it."""

    root: Path
    spec: dict = field(default_factory=dict)

    def __post_init__(self):
        (self.root / "markers").mkdir(parents=True, exist_ok=True)
        self.spec.setdefault("marker_dir", str(self.root / "markers"))
        self.spec.setdefault("log", str(self.root / "seeds.log"))
        self.save()

    def save(self) -> None:
        (self.root / "spec.json").write_text(json.dumps(self.spec))

    def set(self, **changes) -> "FakeSim":
        self.spec.update(changes)
        self.save()
        return self

    @property
    def command(self) -> str:
        return f"{sys.executable} {FAKE_VOPR}"

    @property
    def exit_code_command(self) -> str:
        return f"{sys.executable} {FAKE_VOPR} --exit-code {{seed}}"

    def env(self, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        env["FAKE_VOPR_SPEC"] = str(self.root / "spec.json")
        env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        env["PYTHONPATH"] = str(REPO_ROOT)
        return env

    def seeds_run(self, role: str = "batch") -> list[int]:
        path = Path(self.spec["log"])
        if not path.exists():
            return []
        return [int(line.split()[0]) for line in path.read_text().splitlines() if line.split()[1:] == [role]]


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def logs(self) -> list[dict]:
        return parse_logs(self.stdout)

    def events(self, name: str) -> list[dict]:
        return [line for line in self.logs if line.get("event") == name]


def parse_logs(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def runner_argv(sim: FakeSim, store: Path, *extra: str, protocol: str = "vopr-json") -> list[str]:
    command = sim.exit_code_command if protocol == "exit-code" else sim.command
    return [sys.executable, "-m", "runner", "--simulator-command", command, "--protocol", protocol,
            "--store", str(store), "--workers", "1", "--process-target-s", "0", *extra]


def run_runner(sim: FakeSim, store: Path, *extra: str, env: dict | None = None, timeout: float = 120,
               protocol: str = "vopr-json") -> RunResult:
    proc = subprocess.run(runner_argv(sim, store, *extra, protocol=protocol), cwd=REPO_ROOT, env=sim.env(env),
                          capture_output=True, text=True, timeout=timeout)
    return RunResult(proc.returncode, proc.stdout, proc.stderr)


def start_runner(sim: FakeSim, store: Path, *extra: str, env: dict | None = None, log_path: Path | None = None,
                 protocol: str = "vopr-json") -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.PIPE
    return subprocess.Popen(runner_argv(sim, store, *extra, protocol=protocol), cwd=REPO_ROOT, env=sim.env(env),
                            stdout=out, stderr=subprocess.STDOUT if log_path else subprocess.PIPE)


def records(store: Path) -> dict[int, dict]:
    folder = store / "failures"
    if not folder.is_dir():
        return {}
    return {int(p.stem): json.loads(p.read_text()) for p in folder.glob("*.json")}


def checkpoint(store: Path) -> dict:
    return json.loads((store / "checkpoints" / "latest.json").read_text())


def local_checkpoint(store: Path) -> dict:
    return json.loads((store / ".runner" / "checkpoint.json").read_text())


def index(store: Path) -> dict:
    return json.loads((store / "signatures" / "index.json").read_text())["signatures"]


class TcpForwarder:
    """A TCP forwarder on a fixed local port that can be taken down and brought back: a store that becomes
    unreachable (connection refused, connections reset) and then reachable again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server = None
        self._conns: list = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.close()
                except OSError:
                    pass
            self._conns.clear()

    def _accept(self, server) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.close()
            except OSError:
                pass


class FakeImds:
    """An IMDSv2 server on 127.0.0.1: token first, instance id, and a spot notice that can be switched on."""

    def __init__(self):
        fake = self
        self.requests: list[tuple[str, str, bool]] = []
        self.notice: str | None = None
        self.token = "fake-token-123"

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                fake.requests.append(("PUT", self.path, False))
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._reply(200, fake.token)
                else:
                    self._reply(400)

            def do_GET(self):
                authorised = self.headers.get("X-aws-ec2-metadata-token") == fake.token
                fake.requests.append(("GET", self.path, authorised))
                if not authorised:
                    return self._reply(401)
                if self.path == "/latest/meta-data/instance-id":
                    return self._reply(200, "i-0fake1234567890")
                if self.path == "/latest/meta-data/spot/instance-action" and fake.notice:
                    return self._reply(200, fake.notice)
                self._reply(404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
