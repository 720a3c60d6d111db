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


class UnknownVolunteer(MapathonError):
    """A name that is no volunteer of the project but is close to one (a typo?).

    ``name`` is the name given, ``suggestion`` the registered volunteer it resembles (or None), so
    that a caller (the room server) can offer it; the message says both.
    """

    def __init__(self, message: str, *, name: str, suggestion: str | None = None):
        super().__init__(message)
        self.name = name
        self.suggestion = suggestion


class NotPermitted(MapathonError):
    """An action the actor's part in the task does not allow (the room server answers 403)."""

    exit_code = 3
