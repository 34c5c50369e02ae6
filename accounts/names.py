"""Names people give things: one check for the API, the settings forms, commands and any loader."""

from __future__ import annotations

from django.core.exceptions import ValidationError

APPLICATION_NAME_MAX_LENGTH = 100


def application_name_problem(name: str) -> str | None:
    """What is wrong with `name` as an application name (already stripped), or None."""
    if not name:
        return "An application needs a name."
    if len(name) > APPLICATION_NAME_MAX_LENGTH:
        return f"An application name has at most {APPLICATION_NAME_MAX_LENGTH} characters; this one has {len(name)}."
    if not name.isprintable():
        # Control characters, NUL, line breaks and invisible separators would make lists,
        # logs and exports ambiguous; spaces are fine.
        return "An application name may not contain control characters, line breaks or invisible characters."
    return None


def validate_application_name(value: str) -> None:
    """Django/DRF field validator form of `application_name_problem`."""
    problem = application_name_problem(value.strip())
    if problem is not None:
        raise ValidationError(problem)
