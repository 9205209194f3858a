"""The one base of the errors a user can act on.

``trm``'s entry point reports a :class:`TrmError` (and an :class:`OSError`: a file that is
missing or unreadable) as one line and exits with status 1; any other exception is a bug
and keeps its traceback. Messages name the file, the spectrum (index and title or native
id) and the key where there is one.
"""

from __future__ import annotations


class TrmError(Exception):
    """An error to report to the user as one clear line, without a traceback."""


class InputError(TrmError, ValueError):
    """Bad input: a file's content, a setting or a command-line value (a ``ValueError``
    too, so callers that catch those keep working)."""
