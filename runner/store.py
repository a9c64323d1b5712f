"""Results store backends behind one interface: a local directory or an S3 bucket and prefix.

Both write whole objects atomically; `get` returns None for a missing key; errors surface as StoreError.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


class StoreError(RuntimeError):
    """A store operation failed; the message is one line fit for an operator."""


class Store(Protocol):
    url: str

    def where(self, key: str) -> str: ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def list(self, prefix: str) -> list[str]: ...


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory, fsync it, rename over the target, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def where(self, key: str) -> str:
        """Where `key` is, for messages: a path."""
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreError(f"key {key!r} escapes the store root {self.root}")
        return path

    def put(self, key: str, data: bytes) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as exc:
            raise StoreError(f"cannot write {self._path(key)}: {exc.strerror}") from None

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(key)}: {exc.strerror}") from None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix.rstrip("/") else self.root
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", region: str | None = None, client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client = client or make_client("s3", region)

    def where(self, key: str) -> str:
        """Where `key` is, for messages: an s3:// URL."""
        return f"{self.url}{key}"

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType="application/json"
            )
        except Exception as exc:  # botocore raises many unrelated types; all mean "not stored"
            raise StoreError(f"cannot write {self.url}{key}: {describe_aws_error(exc)}") from None

    def get(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            if code in ("AccessDenied", "403") and not self._exists(key):
                return None
            raise StoreError(f"cannot read {self.url}{key}: {describe_aws_error(exc)}") from None

    def _exists(self, key: str) -> bool:
        """Whether `key` is listed. S3 answers a GET of a missing key with 403, not 404, when the caller may list the
        bucket only under some prefixes (the instance role's s3:prefix condition), so a 403 is checked this way."""
        try:
            page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + key, MaxKeys=1)
        except Exception:
            return True
        return any(obj["Key"] == self.prefix + key for obj in page.get("Contents", []))

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", []))
        except Exception as exc:
            raise StoreError(f"cannot list {self.url}{prefix}: {describe_aws_error(exc)}") from None
        return sorted(keys)


def make_client(service: str, region: str | None = None, *, max_attempts: int = 4, connect_timeout_s: float = 5,
                read_timeout_s: float = 20, **kwargs):
    """A boto3 client with botocore's standard retry mode and bounded timeouts; honours AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        user_agent_extra="vopr-aws",
    )
    return boto3.session.Session(region_name=region).client(service, config=config, **kwargs)


def describe_aws_error(exc: BaseException) -> str:
    """One line for an AWS/botocore error: its code and message, never credentials or a traceback."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '').strip() or 'no message'}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def open_store(url: str, region: str | None = None, client=None) -> Store:
    """`s3://bucket/prefix` opens S3 (with `client` if given); anything else is a local directory path."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise StoreError(f"store URL {url!r} names no bucket: use s3://BUCKET/PREFIX")
        return S3Store(bucket, prefix, region=region, client=client)
    return LocalStore(url)
