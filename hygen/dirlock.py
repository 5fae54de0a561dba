"""One writer per directory: an advisory lock that a run or a sweep holds while it writes.

Kept free of torch, so ``hygen sweep`` can take it without importing the learner stack.
"""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_NAME = ".lock"


class DirectoryInUseError(RuntimeError, ValueError):
    """Another process is writing this run (or sweep) directory."""


@dataclass
class _Hold:
    file: IO[str] | None  # None: the filesystem cannot lock; held in name only
    count: int = 1


_held: dict[Path, _Hold] = {}  # directories this process holds: resolved path -> its lock file, holds


def _same_file(f: IO[str], path: Path) -> bool:
    try:
        return os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def hold_directory(path: str | Path) -> None:
    """Hold ``path`` for this process: a second process that asks stops with an error naming the
    holder, instead of interleaving its checkpoints with ours. An advisory ``flock`` on
    ``path/.lock``: the OS drops it when the process ends, however it ends, so a crash leaves
    no stale lock. Holds nest within a process (each needs its :func:`release_directory`)."""
    import fcntl
    import socket

    key = Path(path).resolve()
    hold = _held.get(key)
    if hold is not None and (hold.file is None or _same_file(hold.file, key / LOCK_NAME)):
        hold.count += 1
        return
    if hold is not None:  # our lock file was removed under us (the directory deleted and made again)
        hold.file.close()
        del _held[key]
    while True:
        f = open(key / LOCK_NAME, "a+")  # noqa: SIM115  (held open while the lock is held)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):  # a filesystem without locks (some NFS)
                f.close()
                warnings.warn(f"{key}: cannot lock {LOCK_NAME} ({e}); going on without the one-writer check",
                              stacklevel=2)
                _held[key] = _Hold(None)
                return
            f.seek(0)
            holder = f.read().strip() or "a process that did not say which"
            f.close()
            raise DirectoryInUseError(f"{key}: in use by {holder} ({key / LOCK_NAME}); wait for it to finish or "
                                      "stop it, then run again (it resumes): two processes would interleave "
                                      "their checkpoints") from None
        if _same_file(f, key / LOCK_NAME):
            break
        f.close()  # the holder released and removed the file between our open and our lock: again
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    _held[key] = _Hold(f)


def release_directory(path: str | Path) -> None:
    """Undo one :func:`hold_directory`; the last one lets go (no-op if this process does not hold it).
    The file is removed while still locked, so a process that opened it meanwhile sees that it
    locked a removed file and tries again on a fresh one."""
    import fcntl

    key = Path(path).resolve()
    hold = _held.get(key)
    if hold is None:
        return
    hold.count -= 1
    if hold.count > 0:
        return
    del _held[key]
    if hold.file is not None:
        if _same_file(hold.file, key / LOCK_NAME):
            (key / LOCK_NAME).unlink(missing_ok=True)
        fcntl.flock(hold.file, fcntl.LOCK_UN)
        hold.file.close()
