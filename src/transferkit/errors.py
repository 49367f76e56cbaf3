"""User-facing errors.

Anything the user can fix (a missing file, an unknown column, a bad flag) raises a subclass of
`TransferkitError`. The CLI prints its message as one line and exits with status 2, without a
traceback; programming errors still raise ordinary exceptions so bugs are never disguised.
"""

from __future__ import annotations


class TransferkitError(Exception):
    """A problem the user can fix; the message says what, where and how."""


class DataError(TransferkitError):
    """The input data is missing, malformed or unusable for the task."""


class ModelError(TransferkitError):
    """A model source is unknown, not installed, unreachable or not a transferkit artifact."""


class ConfigError(TransferkitError):
    """A configuration value or combination of values is invalid."""


class OutputExistsError(TransferkitError):
    """The output directory already holds a run and --overwrite was not given."""


class VerificationError(TransferkitError):
    """An exported model did not reproduce its source closely enough; nothing was written."""
