"""A plain-text progress bar: redrawn in place on a terminal, one line per step when piped or on a dumb
terminal (a log file or a serial console then shows every station)."""

from __future__ import annotations

import os
import sys
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30):
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stdout
        self.width = width
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.inplace = isatty and os.environ.get("TERM", "dumb") != "dumb"

    def step(self, label: str) -> None:
        self.done += 1
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {self.done:>{len(str(self.total))}}/{self.total} {label}"
        if self.inplace:
            self.stream.write("\r\033[K" + line)
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def abort(self) -> None:
        if self.inplace and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()
