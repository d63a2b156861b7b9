"""Writing a run's files off the critical path: one background thread, in submission order.

Encoding and writing maps, inputs, figures and records would otherwise stop the model between
batches. :class:`Writer` runs submitted writes in one thread, in the order they were submitted,
so the resume guarantee holds unchanged: a record (:meth:`xai_core.runner.ledger.Ledger.write`)
submitted after its files is written after them, and only if every write before it succeeded.

- **Bounded**: at most ``pending`` writes wait; :meth:`Writer.submit` blocks beyond that, so a
  slow disk slows the run instead of filling memory with arrays.
- **Loud**: the first failed write stops every later one (no record after a failure) and is
  raised in the main thread by the next :meth:`~Writer.submit` or :meth:`~Writer.flush`: the
  run fails with the error, and a rerun redoes whatever has no record.
- Writes see the caller's context variables (the digests :func:`xai_core.io.recording_digests`
  collects for the records).

With ``threads=0`` every write runs at once in the caller's thread (for debugging, and the
behaviour to compare against).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from xai_core.errors import WriteError
from xai_core.runner.timing import Phases

__all__ = ["Writer", "WriteError"]


class Writer:
    """Runs writes in a background thread, in order, at most ``pending`` waiting."""

    def __init__(self, pending: int = 64, threads: int = 1, phases: Phases | None = None):
        """:param phases: the run's :class:`~xai_core.runner.timing.Phases`: time the caller
        spends writing (``threads=0``) or waiting for the thread counts as ``writing``."""
        if threads not in (0, 1):
            raise ValueError("threads must be 0 (write in the caller's thread) or 1")
        self._phases = phases or Phases()
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="xai-writer") if threads else None
        )
        self._slots = threading.BoundedSemaphore(max(1, pending))
        self._failed: BaseException | None = None
        self._last: Future | None = None

    def submit(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``write(*args, **kwargs)``; raises :class:`WriteError` if an earlier write
        failed."""
        self._raise()
        if self._pool is None:
            with self._phases("writing"):
                write(*args, **kwargs)
            return
        with self._phases("writing"):
            self._slots.acquire()
        context = contextvars.copy_context()

        def task() -> None:
            try:
                if self._failed is None:
                    context.run(write, *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the run's thread
                self._failed = exc
            finally:
                self._slots.release()

        self._last = self._pool.submit(task)

    def flush(self) -> None:
        """Wait until every submitted write is done; raises :class:`WriteError` if one failed."""
        if self._last is not None:
            with self._phases("writing"):
                self._last.result()
        self._raise()

    def _raise(self) -> None:
        if self._failed is not None:
            raise WriteError(
                f"writing the run's outputs failed: {type(self._failed).__name__}: "
                f"{self._failed}; fix that (free disk space, write permission of the output "
                "folder) and run the same command again: items already recorded are kept, the "
                "rest are redone"
            ) from self._failed

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        """Finish the queued writes (none after a failure) and stop the thread; raise a failure
        unless an exception is already on its way."""
        if self._pool is not None:
            with self._phases("writing"):
                self._pool.shutdown(wait=True)
        if exc[0] is None:
            self._raise()
