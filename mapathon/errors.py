"""The one exception type for user mistakes.

Anything raised as :class:`MapathonError` is shown by the CLI as a single
line (``Error: ...``) with a non-zero exit code, never as a traceback.
Its message must name the file, value or task at fault and say what is wrong.
"""


class MapathonError(Exception):
    """A user-facing error: bad input, a forbidden action, a missing project."""

    exit_code = 1


class ForbiddenTransition(MapathonError):
    """A task state change that the lifecycle or the actor's role forbids."""

    exit_code = 3
