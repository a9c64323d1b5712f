"""The runner archive is reproducible byte for byte and holds exactly runner/**/*.py under runner/."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from stacks import runner_artifact
from stacks.runner_layout import read_constants


@pytest.fixture
def runner_dir(tmp_path):
    root = tmp_path / "runner"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text('"""pkg"""\n')
    (root / "b.py").write_text("B = 2\n")
    (root / "sub" / "a.py").write_text("A = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\0junk")
    (root / "notes.txt").write_text("not packaged\n")
    return root


def test_archive_holds_sorted_py_files_under_runner_with_fixed_metadata(runner_dir):
    data = runner_artifact.archive_bytes(runner_dir)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["runner", "runner/__init__.py", "runner/b.py", "runner/sub", "runner/sub/a.py"]
        for m in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "root", "root")
            assert m.mode == (0o755 if m.isdir() else 0o644)
        assert tar.extractfile("runner/sub/a.py").read() == b"A = 1\n"
    flags, mtime = data[3], int.from_bytes(data[4:8], "little")
    assert (mtime, flags & 0x08) == (0, 0), "the gzip header must carry no timestamp and no file name"


def test_same_sources_give_the_same_bytes_whatever_the_mtimes(runner_dir):
    first = runner_artifact.archive_bytes(runner_dir)
    for path in runner_dir.rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert runner_artifact.archive_bytes(runner_dir) == first
    (runner_dir / "b.py").write_text("B = 3\n")
    assert runner_artifact.archive_bytes(runner_dir) != first


def test_build_names_the_file_and_key_after_the_sha256(runner_dir, tmp_path):
    artifact = runner_artifact.build(tmp_path / "out", runner_dir)
    data = artifact.path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert artifact.sha256 == digest
    assert artifact.path.name == f"runner-{digest}.tar.gz"
    assert artifact.key == f"artifacts/runner-{digest}.tar.gz"
    assert artifact.size_bytes == len(data)


def test_the_real_runner_package_extracts_to_a_runner_directory(tmp_path):
    data = runner_artifact.archive_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:  # Python < 3.10.12 / 3.11.4
            tar.extractall(tmp_path)
    assert (tmp_path / "runner" / "layout.py").read_text() == (runner_artifact.RUNNER_DIR / "layout.py").read_text()
    packaged = sorted(p.relative_to(tmp_path / "runner") for p in (tmp_path / "runner").rglob("*.py"))
    assert packaged == sorted(p.relative_to(runner_artifact.RUNNER_DIR) for p in runner_artifact.source_files())


def test_layout_constants_are_read_without_importing_the_runner():
    import runner.layout as imported

    parsed = read_constants()
    for name in ("RUNNER_WRITE_PREFIXES", "RUNNER_READ_PREFIXES", "ARTIFACTS_PREFIX", "CHECKPOINT_DAILY_PREFIX",
                 "CHECKPOINT_LATEST", "FAILURES_PREFIX", "SIGNATURE_INDEX", "METRICS_NAMESPACE", "METRICS_DIMENSION"):
        assert parsed[name] == getattr(imported, name), name


def test_layout_reader_refuses_computed_values(tmp_path):
    path = tmp_path / "layout.py"
    path.write_text('A = "x/"\nB = (A, "y/")\nC = B + ("z/",)\nD = compute()\n')
    with pytest.raises(ValueError, match="not a plain constant"):
        read_constants(path)
    path.write_text('A = "x/"\nB = (A, "y/")\nC = B + ("z/",)\nlower = 1\n')
    assert read_constants(path) == {"A": "x/", "B": ("x/", "y/"), "C": ("x/", "y/", "z/")}
