"""Progress: one redrawn line (tqdm) on a terminal, plain periodic lines when the output is a log.

A bench reports cells done of the suite's total (reused cells count as done), a run its steps; both
with an ETA from the pace so far. Redraws written to a file would fill it with carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class PlainProgress:
    """Progress as plain lines (no carriage returns), at most one per ``interval`` seconds plus the last.

    Has the subset of tqdm's interface the bench uses: ``update``, ``set_postfix_str`` and ``close``.
    """

    def __init__(self, total: int, done: int, desc: str, stream: TextIO | None = None, interval: float = 30.0,
                 clock=time.monotonic, unit: str = "cells") -> None:
        self.total, self.n, self.initial, self.desc, self.unit = total, done, done, desc, unit
        self.stream = stream or sys.stdout
        self.interval, self.clock = interval, clock
        self.started = clock()
        self.last_line = float("-inf")
        self.postfix = ""
        self._write()

    def line(self) -> str:
        """The progress line as it would be printed now."""
        elapsed = self.clock() - self.started
        ran = self.n - self.initial
        left = self.total - self.n
        eta = _duration(elapsed / ran * left) if ran and left else ("0s" if not left else "unknown")
        text = f"{self.desc}: {self.n}/{self.total} {self.unit} done, elapsed {_duration(elapsed)}, ETA {eta}"
        return text + (f" (last: {self.postfix})" if self.postfix else "")

    def _write(self) -> None:
        self.last_line = self.clock()
        print(self.line(), file=self.stream, flush=True)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self.total or self.clock() - self.last_line >= self.interval:
            self._write()

    def close(self) -> None:
        if self.clock() - self.last_line > 0 and self.n < self.total:
            self._write()  # stopped early (interrupted): say where


def bench_progress(total: int, done: int, desc: str, stream: TextIO | None = None) -> Any:
    """A tqdm bar for the whole suite on a terminal; :class:`PlainProgress` lines when ``stream`` is not one."""
    stream = stream or sys.stdout
    if stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=done, desc=desc, unit="cell", dynamic_ncols=True, file=stream,
                    bar_format="{desc}: {n_fmt}/{total_fmt} cells |{bar}| elapsed {elapsed}, ETA {remaining} {postfix}")
    return PlainProgress(total, done, desc, stream)


def steps_progress(total: int, initial: int, desc: str, stream: TextIO | None = None, **tqdm_kwargs: Any) -> Any:
    """A run's step bar: tqdm on a terminal, :class:`PlainProgress` lines (every 30 s) in a log."""
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, file=stream, dynamic_ncols=True, **tqdm_kwargs)
    return PlainProgress(total, initial, desc, stream, unit="steps")


__all__ = ["PlainProgress", "bench_progress", "steps_progress"]
