"""AWS sessions and clients for the CLI, honouring --profile/--region, AWS_PROFILE, AWS_REGION and AWS_ENDPOINT_URL.

Also turns botocore exceptions into one line naming the problem and the fix (`describe_error`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

_CREDENTIAL_HINT = "run `aws configure` or `aws sso login`, or set AWS_PROFILE / AWS_ACCESS_KEY_ID"


@dataclass
class Aws:
    """Where AWS calls go: an optional profile and a region; clients are created lazily and cached."""

    profile: str | None = None
    region: str | None = None
    _session: Any = field(default=None, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)

    @property
    def session(self):
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(profile_name=self.profile or None, region_name=self.region or None)
            if not self.region:
                self.region = self._session.region_name
        return self._session

    def client(self, service: str):
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": 5},
                connect_timeout=5,
                read_timeout=30,
                user_agent_extra="vopr-aws-cli",
            )
            self._clients[service] = self.session.client(service, config=config)
        return self._clients[service]

    def env(self) -> dict[str, str]:
        """Environment for child processes (terraform, aws) so they act on the same profile and region."""
        env = dict(os.environ)
        if self.profile:
            env["AWS_PROFILE"] = self.profile
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                env.pop(key, None)
        if self.region:
            env["AWS_REGION"] = self.region
            env["AWS_DEFAULT_REGION"] = self.region
        return env


def env_region() -> str | None:
    """The region the AWS SDK would pick from the environment alone, if any."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


_CODE_FIXES = {
    ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"):
        "the AWS credentials have expired: refresh them (e.g. `aws sso login`) and retry",
    ("InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch",
     "InvalidAccessKeyId", "IncompleteSignature"):
        "AWS rejected the credentials ({code}): check AWS_PROFILE / --profile or your access keys",
    ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "Forbidden"):
        "AWS denied {op} ({code}): the identity you are using needs permission for it; check --profile / AWS_PROFILE",
    ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"):
        "AWS throttled {op} ({code}) even after retries: wait a minute and retry",
    ("NoSuchBucket",):
        "the results bucket does not exist ({code}): check the deployment file in .vopr/ or pass --store",
    ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
        "the instance is not found ({code}): it may have been destroyed; run `vopr deploy` again or check --region",
    ("ResourceNotFoundException",):
        "{op} found nothing ({code}: {message}): check --region and the deployment name",
}


def describe_error(exc: BaseException) -> str:
    """One line for a botocore/boto3 error: what failed and what to do about it. Never prints credentials."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.NoCredentialsError):
        return f"no AWS credentials found: {_CREDENTIAL_HINT}"
    if isinstance(exc, bex.ProfileNotFound):
        return f"{exc}: check --profile / AWS_PROFILE against ~/.aws/config"
    if isinstance(exc, bex.NoRegionError):
        return "no AWS region is set: pass --region, set AWS_REGION, or set deployment.region in vopr.toml"
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError)):
        where = os.environ.get("AWS_ENDPOINT_URL")
        extra = f" (AWS_ENDPOINT_URL={where})" if where else ""
        return f"cannot reach AWS{extra}: {exc}; check the network and retry"
    if isinstance(exc, bex.TokenRetrievalError) or type(exc).__name__ in ("SSOTokenLoadError", "UnauthorizedSSOTokenError"):
        return f"the AWS SSO session has expired: run `aws sso login` and retry"
    if isinstance(exc, bex.ClientError):
        code = error_code(exc) or "Error"
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split()) or "no message"
        op = getattr(exc, "operation_name", "the call") or "the call"
        for codes, template in _CODE_FIXES.items():
            if code in codes:
                return template.format(code=code, op=op, message=message)
        return f"AWS {op} failed: {code}: {message}"
    if isinstance(exc, bex.BotoCoreError):
        return f"AWS SDK error: {exc}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"
