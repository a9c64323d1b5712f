"""Failure signatures: group failing seeds that hit the same bug.

Invariant failures: `<invariant>: <message>`; crashes: `exit <status>: <first meaningful stderr line>`;
numbers, hex strings and addresses become `<N>`, `<HEX>`, `<ADDR>`. The id is 12 hex digits of SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import signal

_ADDR_RE = re.compile(r"0x[0-9a-fA-F]+")
_HEX_RE = re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b")
_NUM_RE = re.compile(r"(?<![A-Za-z_<])\d+(?:\.\d+)?")
_RUST_NEW_RE = re.compile(r"panicked at (\S+?):?\s*$")
_RUST_OLD_RE = re.compile(r"panicked at '(.*)', (\S+)\s*$")
_THREAD_RE = re.compile(r"^thread '[^']*' |^thread \d+ ")
_INTERESTING_RE = re.compile(r"panic|assert|error|fatal|abort|unreachable|failed|exception|invariant|violat", re.I)
_NOISE_RE = re.compile(r"^(note:|stack backtrace:|\s*\d+:\s|\s+at\s|warning:)", re.I)
MAX_SIGNATURE_CHARS = 300


def normalise(text: str) -> str:
    text = _ADDR_RE.sub("<ADDR>", text)
    text = _HEX_RE.sub("<HEX>", text)
    text = _NUM_RE.sub("<N>", text)
    return " ".join(text.split())[:MAX_SIGNATURE_CHARS]


def signature_id(signature: str) -> str:
    return hashlib.sha256(signature.encode("utf-8")).hexdigest()[:12]


def invariant_signature(invariant: str | None, message: str | None) -> str:
    return normalise(f"{invariant or 'unknown'}: {message}" if message else invariant or "unknown")


def first_meaningful_line(text: str) -> str:
    """The panic/assertion line of a stderr tail: Rust panics joined with their location, else the first line
    that looks like an error, else the last non-empty line."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        old = _RUST_OLD_RE.search(line)
        if old:
            return f"{old.group(1)} (at {old.group(2)})"
        new = _RUST_NEW_RE.search(line)
        if new and "'" not in line.split("panicked at", 1)[1]:
            message = next((ln.strip() for ln in lines[i + 1:] if ln.strip()), "")
            return f"{message} (at {new.group(1)})" if message else f"panicked at {new.group(1)}"
    candidates = [ln.strip() for ln in lines if ln.strip() and not _NOISE_RE.match(ln)]
    for line in candidates:
        if _INTERESTING_RE.search(line):
            return _THREAD_RE.sub("", line)
    return _THREAD_RE.sub("", candidates[-1]) if candidates else ""


def describe_status(exit_status: int | None, signal_name: str | None) -> str:
    if signal_name:
        return f"signal {signal_name}"
    return f"exit {exit_status}"


def crash_signature(exit_status: int | None, signal_name: str | None, stderr_tail: str) -> str:
    line = first_meaningful_line(stderr_tail)
    head = describe_status(exit_status, signal_name)
    return normalise_keep_head(head, line)


def normalise_keep_head(head: str, detail: str) -> str:
    """`head` (e.g. `exit 101`) is structural and kept verbatim; the detail is normalised."""
    return f"{head}: {normalise(detail)}" if detail else head


def signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"SIG{-returncode}"
