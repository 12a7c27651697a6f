"""Terminal output of `kanri up`: every line prefixed and coloured by app and instance."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_COLOURS = ("36", "33", "35", "32", "34", "91", "96", "93", "95", "92")
_RESET = "\x1b[0m"


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


class Printer:
    """Writes ``name | text`` lines; one colour per app, chosen in config order."""

    def __init__(self, app_names: list[str], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream)
        self._colours = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(app_names)}
        self._width = max([len(n) + 3 for n in app_names] + [5])

    def line(self, app: str, label: str, text: str, *, error: bool = False) -> None:
        prefix = label.ljust(self._width)
        if self.colour:
            colour = self._colours.get(app, "1")
            bar = "\x1b[31m!\x1b[0m" if error else "|"
            out = f"\x1b[{colour}m{prefix}{_RESET} {bar} {text}\n"
        else:
            out = f"{prefix} {'!' if error else '|'} {text}\n"
        try:
            self.stream.write(out)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the terminal went away; the log files still have everything

    def kanri(self, text: str) -> None:
        self.line("", "kanri", text)
