"""The one exception type for user mistakes.

Anything raised as :class:`MapathonError` is shown by the CLI as a single
line (``Error: ...``) with a non-zero exit code, never as a traceback.
Its message must name the file, value or task at fault and say what is wrong.

An error about one parameter carries it as ``field`` (its meaning: ``village``, ``tasks``,
``bbox``, ``as``) and the ``value`` typed. The library's message names the field, never a
command-line flag; the CLI shows ``--village X: ...`` (see :mod:`mapathon.cli_options`), the
room server ``village``. :func:`describe` gives both parts to any caller.

Exit codes (the CLI): 1 for a failure, 2 for a wrong use of the command (click's usage
error), 3 for a change the rules refuse, 130 when interrupted (Ctrl-C).
"""

from __future__ import annotations


class MapathonError(Exception):
    """A user-facing error: bad input, a forbidden action, a missing project.

    With ``field``, the message reads ``village 'Dianguirde X': no such village; ...``:
    ``detail`` is what is wrong (without the field and value).
    """

    exit_code = 1

    def __init__(self, message: str = "", *, field: str | None = None, value: object = None):
        self.detail = message
        self.field = field
        self.value = value
        if field is not None:
            message = f"{field} {_quoted(value)}: {message}" if value is not None else f"{field}: {message}"
        super().__init__(message)

    def with_label(self, label: str | None) -> str:
        """The message with the field named *label* (e.g. the CLI flag ``--village``)."""
        if self.field is None or label is None:
            return str(self)
        return f"{label} {self.value}: {self.detail}" if self.value is not None else f"{label}: {self.detail}"


def _quoted(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def only_outcome(outcomes: list):
    """The outcome of a function for many items (``..._many``: one outcome each, a value or the error that
    refuses it) called for one item: its value, or its error raised."""
    got = outcomes[0]
    if isinstance(got, BaseException):
        raise got
    return got


def describe(e: MapathonError) -> tuple[str | None, str]:
    """(field or None, message) for an error: what the room server shows next to the field."""
    return getattr(e, "field", None), str(e)


class UsageMistake(MapathonError):
    """Parameters that do not go together or a value of the wrong form (the CLI exits 2)."""

    exit_code = 2


class NoSuchVillage(MapathonError):
    """A village name that matches none of the project's (or the data's) villages.

    ``suggestion`` is the closest one if the name looks like a typo of it, ``choices`` the names.
    """

    def __init__(self, value: str, *, suggestion: str | None = None, choices: list[str] | None = None,
                 detail: str | None = None):
        self.suggestion = suggestion
        self.choices = list(choices or [])
        if detail is None:
            detail = "no such village"
            if suggestion:
                detail += f"; did you mean '{suggestion}'?"
            if self.choices:
                shown = ", ".join(self.choices[:20]) + (" ..." if len(self.choices) > 20 else "")
                detail += f" (villages: {shown})"
        super().__init__(detail, field="village", value=value)


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
