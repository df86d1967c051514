"""Where a run's result goes: ``DIR/result.json``, checked and claimed before the run, written
after it so that it is never lost, never half written and never written through a link.

Before the run (``ResultFile.claim``): the path's length against the file system's limits,
the folder made and writable, ``result.json`` not a directory, not a link (dangling or not), and
not already a result unless ``force``. The claim is an exclusive ``flock`` on the folder, held
until the result is written: a second run given the same folder fails up front instead of both
running and one result silently replacing the other (the lock goes with the process, however
it ends, so a killed run leaves nothing to clean up). After the run (``ResultFile.write``):
a temporary file in the folder, flushed to disk, then published by name in one step, by a hard
link that fails if anything took the name meanwhile (``force``: by a rename over it). Neither
follows a link at the target. The file's mode is the one the user's umask gives any new file
(0644 under the usual 022): a result is not a secret, and data/ is shared by design; a user who
wants results private sets umask 077 and gets 0600.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path

NAME = "result.json"
_TEMP = dict(prefix=f"{NAME}.", suffix=".tmp")


class ResultFileError(ValueError):
    """The result cannot go where asked; the message is one line."""


def _umask() -> int:
    """This process's umask, read without changing it (os.umask sets it for every thread)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # ENAMETOOLONG, EACCES on the way: not a place to ask
        return False


def _limits(path: Path) -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) of the file system ``path`` is (or would be) on."""
    probe = path
    while not _exists(probe) and probe != probe.parent:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096  # Linux's


def check_path_length(folder: Path) -> None:
    absolute = Path(os.path.abspath(folder))
    name_max, path_max = _limits(absolute)
    for part in absolute.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            raise ResultFileError(f"a name in the path is {len(os.fsencode(part))} bytes long; "
                                  f"this file system allows {name_max} (NAME_MAX)")
    longest = len(os.fsencode(absolute / f"{_TEMP['prefix']}12345678{_TEMP['suffix']}"))
    if longest >= path_max:
        raise ResultFileError(f"the path of {NAME} in it would be {longest} bytes long; this "
                              f"system allows {path_max - 1} (PATH_MAX)")


def _short(path: Path | str) -> str:
    text = repr(str(path))
    return text if len(text) <= 100 else f"{text[:60]}...' ({len(str(path))} characters)"


class ResultFile:
    """``with ResultFile(folder, force).claim() as out: ...run...; out.write(result_dict)``."""

    def __init__(self, folder: str | Path, force: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / NAME
        self.force = force
        self._fd: int | None = None  # the folder, open and locked while claimed

    def claim(self) -> ResultFile:
        """Check everything, make the folder, take its lock: before the run, so that a result
        that could not be written never costs a run. Raises ResultFileError."""
        check_path_length(self.folder)
        try:
            if self.folder.exists() and not self.folder.is_dir():
                raise ResultFileError(f"{_short(self.folder)} exists and is not a directory")
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResultFileError(f"cannot create directory {_short(self.folder)}: "
                                  f"{e.strerror}") from None
        try:
            self._fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise ResultFileError(f"cannot open {_short(self.folder)}: {e.strerror}") from None
        try:
            self._lock()
            self._check_target()
            self._check_writable()
        except BaseException:
            self.release()
            raise
        return self

    def _lock(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultFileError(f"another run is writing its result to {_short(self.folder)} "
                                  f"(it holds the folder's lock); wait for it or choose another "
                                  f"folder") from None
        except OSError:  # a file system without flock (some network ones): the link below
            pass  # still refuses to replace a result that appeared meanwhile

    def _check_target(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ResultFileError(f"cannot inspect {_short(self.path)}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise ResultFileError(f"{_short(self.path)} is a symbolic link (to "
                                  f"{_short(os.readlink(self.path))}); a result is never written "
                                  f"through or over one: remove it or choose another folder")
        if stat.S_ISDIR(st.st_mode):
            raise ResultFileError(f"{_short(self.path)} is a directory; remove it or choose "
                                  f"another folder")
        if not stat.S_ISREG(st.st_mode):
            raise ResultFileError(f"{_short(self.path)} exists and is not a regular file")
        if not self.force:
            raise ResultFileError(f"{_short(self.path)} already holds a result; pass --force to "
                                  f"replace it, or choose another folder")

    def _check_writable(self) -> None:
        """Create and remove a file there: os.access cannot see a read-only mount's quota, an
        ACL or a full disk the way a real create does."""
        try:
            fd, name = tempfile.mkstemp(dir=self.folder, **_TEMP)
        except OSError as e:
            raise ResultFileError(f"cannot write in {_short(self.folder)}: {e.strerror}") from None
        os.close(fd)
        os.unlink(name)

    def write(self, data: dict) -> Path:
        """Publish ``data`` as ``result.json`` in one step; the lock is released after."""
        text = json.dumps(data, indent=1)
        fd, temp = tempfile.mkstemp(dir=self.folder, **_TEMP)
        keep = False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 is for secrets
                os.fsync(f.fileno())
            if self.force:
                os.replace(temp, self.path)  # replaces a link itself, never what it points to
            else:
                try:
                    os.link(temp, self.path)  # exclusive: EEXIST if the name was taken
                except FileExistsError:
                    keep = True
                    raise ResultFileError(f"{_short(self.path)} appeared during the run; this "
                                          f"run's result is kept in {_short(temp)}") from None
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                        raise
                    self._check_target()  # no hard links here: check, then rename
                    os.replace(temp, self.path)
                else:
                    os.unlink(temp)
            if self._fd is not None:
                os.fsync(self._fd)  # the new name, on disk too
        finally:
            if not keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            self.release()
        return self.path

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> ResultFile:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
