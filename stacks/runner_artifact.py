"""Pack the `runner/` package's .py files into a byte-for-byte reproducible `runner-<sha256>.tar.gz`.

Entries are sorted with fixed mtimes, owners and modes, and gzip carries no timestamp or file name, so the
same sources always give the same archive, the same S3 key and no spurious instance replacement.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from stacks.runner_layout import layout

RUNNER_DIR = Path(__file__).resolve().parents[1] / "runner"
FIXED_MTIME_S = 0
FILE_MODE = 0o644
DIR_MODE = 0o755
GZIP_LEVEL = 9


@dataclass(frozen=True)
class RunnerArtifact:
    path: Path
    sha256: str
    key: str
    size_bytes: int


def source_files(runner_dir: Path = RUNNER_DIR) -> list[Path]:
    """The package's .py files, sorted, without caches."""
    return sorted(p for p in runner_dir.rglob("*.py") if "__pycache__" not in p.parts)


def _entry(name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mtime = FIXED_MTIME_S
    info.mode = DIR_MODE if kind == tarfile.DIRTYPE else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def archive_bytes(runner_dir: Path = RUNNER_DIR) -> bytes:
    """The gzipped tar of runner/**/*.py, extracting to a `runner/` directory."""
    files = source_files(runner_dir)
    dirs = {Path("runner")}
    for f in files:
        rel = f.relative_to(runner_dir).parent
        while rel != Path("."):
            dirs.add(Path("runner") / rel)
            rel = rel.parent
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(d.as_posix(), None) for d in dirs] + [(f"runner/{f.relative_to(runner_dir).as_posix()}", f) for f in files]
        for name, src in sorted(entries):
            if src is None:
                tar.addfile(_entry(name, tarfile.DIRTYPE))
            else:
                data = src.read_bytes()
                tar.addfile(_entry(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=FIXED_MTIME_S, compresslevel=GZIP_LEVEL) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def build(dest_dir: Path, runner_dir: Path = RUNNER_DIR) -> RunnerArtifact:
    """Write `runner-<sha256>.tar.gz` into dest_dir and return where it is and its S3 key."""
    data = archive_bytes(runner_dir)
    digest = hashlib.sha256(data).hexdigest()
    name = f"runner-{digest}.tar.gz"
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / name
    path.write_bytes(data)
    return RunnerArtifact(path=path, sha256=digest, key=layout()["ARTIFACTS_PREFIX"] + name, size_bytes=len(data))
