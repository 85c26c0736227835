"""One exception root for every user-facing error.

The message must name the file, line or field and what was expected, e.g.
``scenario.toml: [fleet] replicas = 0: expected an integer >= 1``. The CLI prints
``error: <message>`` on one line and exits with status 2; ``--debug`` shows the traceback.
"""


class AgentwattError(Exception):
    """A problem with the user's input or environment, described in one line."""


class InputError(AgentwattError):
    """A file, field or flag the user gave is malformed or out of range."""


class MeasurementUnavailable(AgentwattError):
    """A meter or device cannot be used here (no GPU, no RAPL, no permission)."""


class InvariantViolation(AgentwattError):
    """A simulator invariant failed at the end of a run: a bug, reported with the seed."""
