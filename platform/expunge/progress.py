"""Progress of long stages: a live bar on a terminal, one plain line per step everywhere else.

A live bar redraws itself with carriage returns (and cursor escape codes), which a terminal shows as
one moving line but a log file, ``ray job logs`` or a CI console keeps as one long garbled line. So
every progress display goes through :func:`progress`, which checks the stream it writes to: a
terminal gets tqdm's bar, anything else gets ``<desc>: <n>/<total> <unit>s done (<note>)`` lines.
"""
from __future__ import annotations

import os
import sys
from typing import TextIO


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal that can redraw a line."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Counts steps of a stage of ``total`` steps; :meth:`advance` records one finished step."""

    def __init__(self, total: int, desc: str, unit: str = "step", stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.stream = sys.stderr if stream is None else stream
        self._bar = None
        if is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True, file=self.stream)

    def advance(self, note: str = "") -> None:
        self.n += 1
        if self._bar is not None:
            self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(1)
            return
        unit = self.unit if self.total == 1 else f"{self.unit}s"
        print(f"{self.desc}: {self.n}/{self.total} {unit} done" + (f" ({note})" if note else ""),
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "step", stream: TextIO | None = None) -> Progress:
    """A :class:`Progress` on ``stream`` (default stderr): a bar on a terminal, plain lines otherwise."""
    return Progress(total, desc, unit, stream)
