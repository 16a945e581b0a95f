"""Errors that a user can fix: bad data, a bad config value, an unusable model.

They are reported as one line (no traceback) by ``src/train.py``; anything else is a bug.
"""


class FdagmmError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class ConfigError(FdagmmError):
    """An impossible configuration value."""


class DataError(FdagmmError):
    """A missing, unreadable or malformed data file."""


class NumericalError(FdagmmError):
    """A numerical failure that retrying with more regularisation did not cure."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-line reports of library errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
