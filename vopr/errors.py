"""The CLI's one error type and the translation of every expected failure into one operator-facing line.

Commands raise VoprError (or let ConfigError, StoreError and botocore errors through); `vopr.cli` prints `one_line()`.
"""

from __future__ import annotations

import os
import re


class VoprError(RuntimeError):
    """An expected failure: the message names the problem and the fix, on one line."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


_SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_SECRET_PATTERNS = (
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secret_?key|session_?token)(\s*[=:]\s*)\S+"),
)


def redact(text: str) -> str:
    """Remove credential values (from the environment or `key=value` shapes) from a line before it is shown."""
    for name in _SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "****")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + m.group(2) + "****", text)
    return text


_STORE_HINTS = (
    (("EndpointConnectionError", "ConnectTimeout", "ReadTimeout", "Could not connect"), "check the network (and AWS_ENDPOINT_URL if set), then retry"),
    (("NoCredentialsError", "Unable to locate credentials"), "no AWS credentials: run `aws configure` or set AWS_PROFILE"),
    (("ExpiredToken", "RequestExpired"), "the AWS credentials have expired: refresh them and retry"),
    (("AccessDenied", "Forbidden"), "the identity you are using may not read this bucket: check --profile / AWS_PROFILE"),
    (("NoSuchBucket",), "the bucket does not exist: check .vopr/deployment-<name>.json or --store"),
)


def _store_hint(text: str) -> str:
    for needles, hint in _STORE_HINTS:
        if any(n in text for n in needles):
            return hint
    return "check the store URL/path and your AWS access"


def one_line(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for an expected error, or None for a bug that should surface as a traceback."""
    from runner.store import StoreError

    from vopr.config import ConfigError

    if isinstance(exc, VoprError):
        message, code = str(exc), exc.exit_code
    elif isinstance(exc, ConfigError):
        message, code = str(exc), 2
    elif isinstance(exc, StoreError):
        message, code = f"{exc}; {_store_hint(str(exc))}", 1
    elif type(exc).__module__.startswith(("botocore", "boto3", "urllib3")):
        from vopr.aws import describe_error

        message, code = describe_error(exc), 1
    else:
        return None
    first = " ".join(message.split("\n")[0].split()) or type(exc).__name__
    return redact(first), code
