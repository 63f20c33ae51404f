"""File primitives of the blob store: whole writes and reads, directory fsyncs, and a
file descriptor shared safely between the event loop and worker threads.

Durability follows the usual POSIX recipe: a file is written under a temporary name,
fsynced, renamed (or linked) into place, and its directory fsynced.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from market.storage.errors import BlobCorrupted, StorageError

__all__ = ["SharedFd", "fsync_dir", "makedirs", "pread_exact", "unlink_quiet", "write_all"]


def write_all(fd: int, data: Any) -> None:
    """Write every byte of ``data`` (anything a memoryview takes), however short each write."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Read exactly ``length`` bytes at ``offset``; BlobCorrupted if the file is shorter."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]  # rare: short read (signal, or the file shrank underneath us)
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise BlobCorrupted("blob file is shorter than its layout requires")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def unlink_quiet(path: Path) -> None:
    """Remove ``path`` if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_dir(path: Path) -> None:
    """Make a rename, link or mkdir inside ``path`` survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: Path) -> None:
    """``mkdir -p`` with mode 0700, fsyncing each parent a directory was made in."""
    if path.is_dir():
        return
    makedirs(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    fsync_dir(path.parent)


class SharedFd:
    """A file descriptor used by worker threads on behalf of one coroutine.

    asyncio cancellation does not wait for a thread started by ``to_thread.run_sync``,
    so the coroutine's cleanup can run while a worker still uses the fd. Closing the
    fd right then could make that worker write into (or read from) whatever file
    reuses the number next; so ``close`` is deferred to the worker if one is busy.
    ``on_close`` runs once, after the fd is closed (used to remove a temp file)."""

    def __init__(self, fd: int, on_close: Callable[[], None] | None = None) -> None:
        self._fd = fd
        self._on_close = on_close
        self._state = threading.Lock()
        self._busy = False
        self._closed = False

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(fd, *args)``; meant to be called in a worker thread."""
        with self._state:
            if self._closed:
                raise StorageError("file was closed")
            self._busy = True
        try:
            return fn(self._fd, *args)
        finally:
            with self._state:
                self._busy = False
                finish = self._closed
            if finish:
                self._finish()

    def close(self) -> None:
        """Idempotent and non-blocking; safe to call from the event loop."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            finish = not self._busy
        if finish:
            self._finish()

    def _finish(self) -> None:
        try:
            os.close(self._fd)
        finally:
            if self._on_close is not None:
                self._on_close()
