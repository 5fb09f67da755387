"""Dependency names are data, not code: any name of this shape names a breaker."""

import re

from services.errors import InvalidArgument

MAX_DEPENDENCY_NAME_LENGTH = 63
_ALLOWED = re.compile(r"[a-z0-9._-]+")
_ENDS = re.compile(r"[a-z0-9](?:.*[a-z0-9])?", re.DOTALL)


def validate_dependency_name(name: str) -> str:
    """Returns the name, or raises InvalidArgument saying what is wrong with it."""
    if not isinstance(name, str):
        raise InvalidArgument(f"dependency must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidArgument("dependency is required")
    if len(name) > MAX_DEPENDENCY_NAME_LENGTH:
        raise InvalidArgument(f"dependency must be at most {MAX_DEPENDENCY_NAME_LENGTH} characters, got {len(name)}")
    # fullmatch, not match with `$`: `$` also matches before a trailing newline.
    if not _ALLOWED.fullmatch(name):
        raise InvalidArgument(f"dependency {name!r} may contain only lowercase letters, digits, '.', '_' and '-'")
    if not _ENDS.fullmatch(name):
        raise InvalidArgument(f"dependency {name!r} must start and end with a lowercase letter or digit")
    return name
