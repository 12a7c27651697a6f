"""Errors of `kanri import`, under kanri's one exception tree.

    KanriError
     +-- ImporterError              kanri import could not do what was asked
          +-- SourceError           an input file is missing, unreadable or malformed
          +-- OutputExistsError     -o names a file that exists and --force was not given

The CLI maps them to exit code 2 (bad input); messages say what to do.
"""

from __future__ import annotations

from kanri.errors import KanriError


class ImporterError(KanriError):
    """`kanri import` could not do what was asked."""


class SourceError(ImporterError):
    """An input file is missing, unreadable or malformed; ``line`` is 1-based when known."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class OutputExistsError(ImporterError):
    """The output file exists; kanri import never overwrites without --force."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} exists; pass --force to overwrite it, or choose another -o file")
