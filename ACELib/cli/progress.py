"""A dependency-free progress bar for the terminal, used as a ``progress(done, total, message)`` callback."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Draw ``desc [####....] done/total pct rate ETA | message`` on stderr.

    On a terminal the line is redrawn in place (at most 10 times a second); otherwise (a log file,
    the Slicer console) one line is printed per 10 % step, so logs stay readable.
    """

    def __init__(self, desc: str = "", width: int = 28, stream=None, unit: str = "it"):
        self.desc, self.width, self.unit = desc, width, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1
        self._first_done = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = time.perf_counter()
        if self._first_done is None:  # rate counts from the first report
            self._first_done, self.start = done, now
        final = done >= total
        if self.tty:
            if not final and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            self.stream.write("\r" + self.render(done, total, message, now) + "\x1b[K" + ("\n" if final else ""))
        else:
            decile = int(10 * done / max(total, 1))
            if decile == self._last_decile and not final:
                return
            self._last_decile = decile
            self.stream.write(self.render(done, total, message, now) + "\n")
        self.stream.flush()

    def render(self, done: int, total: int, message: str, now: float) -> str:
        frac = min(max(done / max(total, 1), 0.0), 1.0)
        fill = int(round(frac * self.width))
        elapsed = now - self.start
        rate = (done - (self._first_done or 0)) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        parts = [f"{self.desc} " if self.desc else "", f"[{'#' * fill}{'.' * (self.width - fill)}] ",
                 f"{done}/{total} {100 * frac:3.0f}% ", f"{rate:.2f} {self.unit}/s " if rate else "",
                 f"ETA {_hms(eta)} " if eta == eta and done < total else f"in {_hms(elapsed)} ",
                 f"| {message}" if message else ""]
        return "".join(parts)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
