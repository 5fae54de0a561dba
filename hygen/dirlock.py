"""One writer per directory: an advisory lock that a run or a sweep holds while it writes.

Kept free of torch, so ``hygen sweep`` can take it without importing the learner stack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"


class DirectoryInUseError(RuntimeError, ValueError):
    """Another process is writing this run (or sweep) directory."""


_held: dict[Path, Any] = {}  # directories this process holds: resolved path -> open lock file


def hold_directory(path: str | Path) -> None:
    """Hold ``path`` for this process: a second process that asks stops with an error naming the
    holder, instead of interleaving its checkpoints with ours. An advisory ``flock`` on
    ``path/.lock``: the OS drops it when the process ends, however it ends, so a crash leaves
    no stale lock. Holding a directory this process already holds is a no-op."""
    import fcntl
    import socket

    key = Path(path).resolve()
    if key in _held:
        return
    f = open(key / LOCK_NAME, "a+")  # noqa: SIM115  (held open while the lock is held)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "a process that did not say which"
        f.close()
        raise DirectoryInUseError(f"{key}: in use by {holder} ({key / LOCK_NAME}); wait for it to finish or stop "
                                  "it, then run again (it resumes): two processes would interleave their "
                                  "checkpoints") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    _held[key] = f


def release_directory(path: str | Path) -> None:
    """Let go of a directory :func:`hold_directory` took (no-op if this process does not hold it)."""
    import fcntl

    key = Path(path).resolve()
    f = _held.pop(key, None)
    if f is not None:
        (key / LOCK_NAME).unlink(missing_ok=True)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
