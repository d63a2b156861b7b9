"""A run's progress: one line per method with its own count, rate and time left.

A run explains its images batch by batch, and each batch goes through every method in turn, so
one bar for the whole run stands still while a slow method works through a batch and never
says which method that is. :class:`Progress` counts each method on its own:

- on a terminal, one bar per method, redrawn in place, the method at work marked with ``>``;
- elsewhere (a log file, a pipe, CI), plain lines ``[xai] <method> <done>/<total> <rate> img/s
  eta <m:ss>``, at most one per method every ``log_every`` seconds, and always the first and
  the last.

Use::

    with Progress(["saliency", "rise"], total=len(images), stream=sys.stderr) as progress:
        for batch in batches:
            for label, technique in methods:
                progress.start(label)          # optional: names the method at work
                ...                            # the method's work on this batch
                progress.advance(label, len(batch), failed=n_failed)

Images whose items failed are counted too (``failed``): a method is ``done`` only when its
images succeeded; ``done, 2 failed`` when some did not, ``all 4 failed`` when none succeeded.

The rate is images per second of wall time since the method's first batch began, so a method's
time left (``remaining / rate``) includes its share of the other methods' turns: it is the time
until that method is done, not its compute alone.

Techniques' own inner loops have their bar in :mod:`xai_core.nn.progress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TextIO

from xai_core.runner.item import ResultItem

__all__ = ["Progress", "format_seconds"]

#: Width of a bar on a terminal, in characters.
BAR_WIDTH = 24


def format_seconds(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Count:
    __slots__ = ("total", "done", "failed", "started", "last_log")

    def __init__(self, total: int):
        self.total = total
        self.done = 0
        self.failed = 0
        self.started: float | None = None
        self.last_log: float | None = None


class Progress:
    """Per-method progress of a run (see the module docstring).

    :param methods: method labels, in the order to show them.
    :param total: images each method will do: one number for all, or ``label -> count``.
    :param stream: where to write (default ``sys.stderr``).
    :param is_tty: draw bars in place; default: whether ``stream`` is a terminal.
    :param enabled: ``False`` writes nothing (ranks other than 0 of a distributed run).
    :param log_every: seconds between two plain lines of one method (not on a terminal).
    :param clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        methods: Sequence[str],
        total: int | Mapping[str, int],
        stream: TextIO | None = None,
        is_tty: bool | None = None,
        enabled: bool = True,
        log_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stderr
        if is_tty is None:
            isatty = getattr(self.stream, "isatty", None)
            is_tty = bool(isatty and isatty())
        self.is_tty = is_tty
        self.enabled = enabled
        self.log_every = log_every
        self.clock = clock
        totals = total if isinstance(total, Mapping) else dict.fromkeys(methods, total)
        self.counts = {m: _Count(int(totals.get(m, 0))) for m in methods}
        self.running: str | None = None
        self._label_width = max((len(m) for m in methods), default=0)
        self._drawn = 0
        self._last_draw = float("-inf")
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _count(self, method: str) -> _Count:
        try:
            return self.counts[method]
        except KeyError:
            raise ValueError(
                f"progress: unknown method {method!r}; known: {', '.join(self.counts)}"
            ) from None

    def start(self, method: str) -> None:
        """``method`` begins a batch: its clock starts (the first time); a terminal marks it."""
        count = self._count(method)
        if count.started is None:
            count.started = self.clock()
        self.running = method
        if self.is_tty:
            self._draw()

    @staticmethod
    def failed_in(images: Iterable[Sequence[ResultItem]]) -> int:
        """How many images failed, given each image's result items: those with an item whose
        ``error`` is set (the ``failed`` of :meth:`advance`)."""
        return sum(1 for items in images if any(item.error for item in items))

    def advance(self, method: str, n: int = 1, failed: int = 0) -> None:
        """``method`` finished ``n`` more images, ``failed`` of them with an error."""
        count = self._count(method)
        now = self.clock()
        if count.started is None:
            count.started = now
        count.done += n
        count.failed += failed
        if self.running == method:
            self.running = None
        if self.is_tty:
            self._draw(force=count.done >= count.total)
        else:
            first = count.last_log is None
            finished = count.done >= count.total
            if first or finished or now - count.last_log >= self.log_every:
                count.last_log = now
                self._write(f"[xai] {self.line(method)}\n")

    def rate(self, method: str) -> float | None:
        """Images per second of ``method`` since its first batch began (``None``: not known yet)."""
        count = self._count(method)
        if count.started is None or count.done == 0:
            return None
        elapsed = self.clock() - count.started
        return count.done / elapsed if elapsed > 0 else None

    def eta(self, method: str) -> float | None:
        """Seconds until ``method`` is done at its rate so far (``0`` once done)."""
        count = self._count(method)
        if count.done >= count.total:
            return 0.0
        rate = self.rate(method)
        return (count.total - count.done) / rate if rate else None

    def line(self, method: str) -> str:
        """``<method> <done>/<total> <rate> img/s eta <m:ss>``: one method's state in words
        (``done`` at the end; ``, <n> failed`` or ``all <n> failed`` when images failed)."""
        count = self._count(method)
        rate = self.rate(method)
        speed = f"{rate:.3g} img/s" if rate is not None else "- img/s"
        if count.done < count.total:
            state = f"eta {format_seconds(self.eta(method))}"
        elif count.failed and count.failed >= count.done:
            return f"{method} {count.done}/{count.total} {speed} all {count.failed} failed"
        else:
            state = "done"
        failed = f", {count.failed} failed" if count.failed else ""
        return f"{method} {count.done}/{count.total} {speed} {state}{failed}"

    def _bar(self, method: str, width: int) -> str:
        count = self._count(method)
        filled = int(width * min(count.done, count.total) / count.total) if count.total else width
        marker = ">" if method == self.running else " "
        bar = "#" * filled + "." * (width - filled)
        return f"{marker} {method:<{self._label_width}} |{bar}|"

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        lines = []
        for method in self.counts:
            _, rest = self.line(method).split(" ", 1)
            lines.append(f"\x1b[2K{self._bar(method, BAR_WIDTH)} {rest}\n")
        self._drawn = len(lines)
        self._write(up + "".join(lines))

    def _write(self, text: str) -> None:
        if self.enabled and not self._closed:
            self.stream.write(text)
            self.stream.flush()

    def close(self) -> None:
        """Draw the final state on a terminal; write nothing more after this."""
        if self._closed:
            return
        if self.is_tty and self.counts:
            self._draw(force=True)
        self._closed = True

