"""Where a sweep's runs are kept: one gzipped JSON file per run, ``<folder>/<key>.json.gz``.

A run record is ~40 KB of JSON (its learner and actor records are most of it) and gzip keeps
about a quarter of that, losslessly: what lets ``data/`` hold 20+ pairs per condition within
its size limit. Files written before compression (``<key>.json``) are still read, and
``compress`` converts a folder of them. Writes are atomic and byte-for-byte reproducible (no
time stamp in the gzip header), so a re-written run does not show as a change in git.
"""

from __future__ import annotations

import gzip
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


def write(file: str | Path, record: dict) -> None:
    """Atomic: a reader (or a resumed sweep) never sees half a file."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    text = json.dumps(record, separators=(",", ":")).encode()
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                filename="") as f:
        f.write(text)
    tmp.replace(file)


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
