"""Where a sweep's runs are kept: one gzipped JSON file per run, ``<folder>/<key>.json.gz``.

A run record is ~40 KB of JSON (its learner and actor records are most of it) and gzip keeps
about a quarter of that, losslessly: what lets ``data/`` hold 20+ pairs per condition within
its size limit. Files written before compression (``<key>.json``) are still read, and
``compress`` converts a folder of them. Writes are atomic and byte-for-byte reproducible (no
time stamp in the gzip header), so a re-written run does not show as a change in git.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

SUFFIX = ".json.gz"
LEGACY_SUFFIX = ".json"  # runs written before compression


def path(folder: str | Path, key: str) -> Path:
    """Where the run ``key`` is written in ``folder``."""
    return Path(folder) / f"{key}{SUFFIX}"


def find(folder: str | Path, key: str) -> Path | None:
    """The stored file of run ``key`` in ``folder`` (compressed or legacy), or None."""
    for candidate in (path(folder, key), Path(folder) / f"{key}{LEGACY_SUFFIX}"):
        if candidate.exists():
            return candidate
    return None


def read(file: str | Path) -> dict:
    """A run record from its file, compressed or not (by the name's suffix)."""
    file = Path(file)
    if file.name.endswith(SUFFIX):
        with gzip.open(file, "rt", encoding="utf-8") as f:
            return json.load(f)
    return json.loads(file.read_text())


def _atomic(file: Path, data: bytes) -> None:
    """Write ``data`` to ``file`` in one step: a reader (or a resumed sweep) never sees half a
    file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(file)


def write(file: str | Path, record: dict) -> None:
    """A run record, gzipped, atomically."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as f:
        f.write(json.dumps(record, separators=(",", ":")).encode())
    _atomic(Path(file), buffer.getvalue())


def write_json(file: str | Path, data: dict, indent: int | None = 1) -> None:
    """A plain JSON file beside the runs (a manifest, the speed study), atomically."""
    _atomic(Path(file), json.dumps(data, indent=indent).encode())


def records(folder: str | Path):
    """Every run record stored in ``folder``, in file-name order."""
    files = {}
    for file in Path(folder).iterdir():
        for suffix in (SUFFIX, LEGACY_SUFFIX):
            if file.name.endswith(suffix) and not file.name.startswith("."):
                files.setdefault(file.name[:-len(suffix)], file)
                break
    for key in sorted(files):
        yield read(files[key])


def compress(folder: str | Path) -> int:
    """Convert every legacy ``<key>.json`` in ``folder`` to ``<key>.json.gz`` (the record
    unchanged); returns how many."""
    done = 0
    for legacy in sorted(Path(folder).glob(f"*{LEGACY_SUFFIX}")):
        key = legacy.name[:-len(LEGACY_SUFFIX)]
        write(path(folder, key), read(legacy))
        legacy.unlink()
        done += 1
    return done
