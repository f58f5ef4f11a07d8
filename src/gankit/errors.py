"""One exception type for problems the user can fix.

The CLI turns a :class:`GankitError` into a single ``error: ...`` line and exit code 2,
so every module raises it for bad input instead of letting a traceback escape.
"""


class GankitError(Exception):
    """Bad input or environment: the message says what was wrong and what to do."""
