"""What a compile tells the person running it while it runs (stderr; the CLI's --quiet, default
and --verbose levels).

Three kinds of message: a `step` says a long step starts (calibration, refining exponents, the
--snr-target search, measuring the program, building and checking the C); a `tick` says how far
a long step got ("sensitivity 3/16: ..."); a `detail` is for --verbose only (every pass and its
time). QUIET prints none of them; NORMAL prints the steps and at most one tick every
TICK_SECONDS, so a long step shows it is alive without flooding a short compile; VERBOSE prints
everything, each line with the seconds since the compile started.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

QUIET, NORMAL, VERBOSE = 0, 1, 2
TICK_SECONDS = 2.0


class Progress:
    def __init__(self, level: int = NORMAL, *, emit: Callable[[str], None] | None = None,
                 tick_seconds: float | None = None, elapsed: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """`emit`: where a line goes (default: `rill: <line>` on the current sys.stderr);
        `elapsed`: prefix the seconds since the start (default: at VERBOSE)."""
        self.level = level
        self.emit = emit or _stderr
        self.tick_seconds = TICK_SECONDS if tick_seconds is None else tick_seconds
        self.elapsed = level >= VERBOSE if elapsed is None else elapsed
        self.clock = clock
        self.start = self.last = clock()

    @classmethod
    def to_log(cls, log: Callable[[str], None]) -> "Progress":
        """Every message, unthrottled and without times, to `log` (the API's `log=` hook)."""
        return cls(VERBOSE, emit=log, elapsed=False)

    def _say(self, message: str) -> None:
        self.last = self.clock()
        self.emit(f"[{self.last - self.start:6.1f} s] {message}" if self.elapsed else message)

    def step(self, message: str) -> None:
        if self.level >= NORMAL:
            self._say(message)

    def tick(self, message: str) -> None:
        if self.level >= VERBOSE or (self.level == NORMAL and
                                     self.clock() - self.last >= self.tick_seconds):
            self._say(message)

    def detail(self, message: str) -> None:
        if self.level >= VERBOSE:
            self._say(message)


def _stderr(line: str) -> None:
    print(f"rill: {line}", file=sys.stderr, flush=True)
