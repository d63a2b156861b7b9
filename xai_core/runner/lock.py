"""The output folder's lock: one run writes a folder at a time.

A run holds an exclusive ``fcntl.flock`` on ``<output_dir>/.lock`` for as long as it works. The
operating system drops the lock when the process ends, however it ends (SIGKILL, a crash, a
lost node), so a stale lock never blocks the next run. The file holds the holder's PID, start
time and run id, which the error of a second run names. The file itself stays: deleting a lock
file while another process opens it is how two processes end up holding "the" lock.

Under ``torchrun`` the ranks of one run share the folder: rank 0 takes the lock for all of them
(the other ranks write only item files, and only after rank 0 passed the first barrier).

Cleaning up what a killed run left behind (temporary files) is safe only under this lock;
otherwise it would delete the temporaries a live run is about to rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from xai_core.errors import ConfigError

__all__ = ["OutputLock", "LOCK_NAME", "lock_holder"]

LOCK_NAME = ".lock"


def _describe(info: dict[str, Any]) -> str:
    pid = info.get("pid", "?")
    host = info.get("host")
    since = info.get("started")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        if isinstance(since, (int, float)) else "an unknown time"
    )
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"PID {pid}{where} since {when} (run {info.get('run_id', '?')})"


def _read_info(fd: int) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        if isinstance(info, dict):
            return info
    return {}


class OutputLock:
    """An exclusive lock on an output folder; release it with :meth:`release` (or ``with``)."""

    def __init__(self, output_dir: str | os.PathLike[str], run_id: str | None = None):
        self.root = Path(output_dir)
        self.path = self.root / LOCK_NAME
        self.run_id = run_id or os.environ.get("TORCHELASTIC_RUN_ID") or uuid.uuid4().hex[:12]
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock now or raise :class:`ConfigError` naming who holds it (no waiting:
        a run that queues silently behind another looks hung)."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_info(fd)
            os.close(fd)
            raise ConfigError(
                f"output_dir {str(self.root)!r} is in use by {_describe(holder)}; wait for it "
                "or choose another output_dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "run_id": self.run_id}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def _open(self) -> int:
        """The lock file's descriptor; an output folder that cannot be made or written is a
        config error naming the path and why (not a traceback with exit status 1)."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"output_dir {str(self.root)!r} is a file, not a folder; choose another "
                "output_dir (or move the file away)"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"output_dir {str(self.root)!r} cannot be written ({reason}); choose a folder "
                "you can write to, e.g. output_dir=outputs/run"
            ) from None

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(output_dir: str | os.PathLike[str]) -> str | None:
    """Who is writing ``output_dir`` now (``"PID n since ..."``), or ``None`` if nobody is.

    Takes a shared lock for a moment, so it never blocks and never disturbs a run."""
    path = Path(output_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(_read_info(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
