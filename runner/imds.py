"""The EC2 instance metadata service (IMDSv2: token first): the instance id, and spot interruption notices.

Honours AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED; off EC2 it gives up quietly.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_S = 21600
TIMEOUT_S = 1.0
SPOT_POLL_S = float(os.environ.get("VOPR_RUNNER_SPOT_POLL_S", "5"))


class Imds:
    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.disabled = environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
        self.endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
        self._token: str | None = None
        self.reachable = not self.disabled

    def _fetch_token(self) -> str:
        req = urllib.request.Request(self.endpoint + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)})
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.read().decode()

    def get(self, path: str) -> str | None:
        """The metadata value, or None when it does not exist (404). Raises OSError when IMDS is unreachable."""
        if not self.reachable:
            raise OSError("instance metadata service disabled or unreachable")
        for attempt in range(2):
            if self._token is None:
                self._token = self._fetch_token()
            req = urllib.request.Request(self.endpoint + "/latest/meta-data/" + path,
                                         headers={"X-aws-ec2-metadata-token": self._token})
            try:
                with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                    return resp.read().decode()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 0:
                    self._token = None
                    continue
                raise
        return None

    def instance_id(self) -> str | None:
        try:
            return self.get("instance-id")
        except OSError:
            self.reachable = False
            return None


class SpotWatcher:
    """Polls spot/instance-action every few seconds; calls `on_notice(text)` once when a notice appears."""

    def __init__(self, imds: Imds, on_notice, log, poll_s: float = SPOT_POLL_S):
        self.imds = imds
        self.on_notice = on_notice
        self.log = log
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vopr-spot", daemon=True)

    def start(self) -> None:
        if self.imds.reachable:
            self._thread.start()
        else:
            self.log.info("spot_watch_off", reason="no instance metadata service (not on EC2, or disabled)")

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                notice = self.imds.get("spot/instance-action")
                failures = 0
            except OSError as exc:
                failures += 1
                if failures >= 3:
                    self.log.info("spot_watch_off", reason=f"instance metadata service unreachable: {exc}")
                    return
                notice = None
            if notice:
                self.on_notice(notice.strip())
                return
            self._stop.wait(self.poll_s)
