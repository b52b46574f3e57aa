"""Errors that name what was wrong: the file, the entry range, the branch."""

from __future__ import annotations


class InputError(ValueError):
    """An input file cannot be read as the analysis needs it.

    Carries the file and, when known, the entry range, so that a failed chunk can be
    reported and accounted for instead of silently dropped.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str,
        entry_start: int | None = None,
        entry_stop: int | None = None,
    ):
        where = file if entry_start is None else f"{file} entries [{entry_start}, {entry_stop})"
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.file = file
        self.entry_start = entry_start
        self.entry_stop = entry_stop

    def __reduce__(self):
        # Keep the keyword arguments when the error crosses a Dask process boundary.
        return (_rebuild_input_error, (self.reason, self.file, self.entry_start, self.entry_stop))


def _rebuild_input_error(reason, file, entry_start, entry_stop):
    return InputError(reason, file=file, entry_start=entry_start, entry_stop=entry_stop)
