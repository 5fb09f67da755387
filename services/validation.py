"""Input checks shared by every service. Each raises InvalidArgument naming the field.

The limits here (and the per-service ones that use these checks) are the ones the proto
comments state; every request passes them before anything is stored.
"""

import math
import re
import uuid

from services.errors import InvalidArgument

MAX_DEPENDENCIES = 20
MAX_REQUEST_ID_LENGTH = 128
MAX_DEPENDENCY_NAME_LENGTH = 63
# How long a provider call may be reported to have taken: a day is far beyond any real call,
# and keeps every stored duration a valid protobuf Duration on the way out again.
MAX_CALL_DURATION_S = 86_400.0
# Values a caller sent are echoed in error messages only up to this many characters.
MAX_ECHOED_CHARACTERS = 40
# Dependency (provider) names are data, not code: any name of this shape works.
_ALLOWED = re.compile(r"[a-z0-9._-]+")
_ENDS = re.compile(r"[a-z0-9](?:.*[a-z0-9])?", re.DOTALL)


def shown(value: str) -> str:
    """A caller's value as an error message echoes it: quoted, and cut to a short prefix, so a
    huge value never makes a huge reply."""
    if len(value) <= MAX_ECHOED_CHARACTERS:
        return repr(value)
    return f"{value[:MAX_ECHOED_CHARACTERS]!r}..."


def validate_dependency_name(name: str, field: str = "dependency") -> str:
    """Returns the name, or raises InvalidArgument saying what is wrong with it."""
    if not isinstance(name, str):
        raise InvalidArgument(f"{field} must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidArgument(f"{field} is required")
    if len(name) > MAX_DEPENDENCY_NAME_LENGTH:
        raise InvalidArgument(f"{field} must be at most {MAX_DEPENDENCY_NAME_LENGTH} characters, got {len(name)}")
    # fullmatch, not match with `$`: `$` also matches before a trailing newline.
    if not _ALLOWED.fullmatch(name):
        raise InvalidArgument(f"{field} {shown(name)} is malformed: it may contain only lowercase letters, digits, '.', '_' and '-'")
    if not _ENDS.fullmatch(name):
        raise InvalidArgument(f"{field} {shown(name)} is malformed: it must start and end with a lowercase letter or digit")
    return name


def validate_dependency_list(names: list[str] | tuple[str, ...], field: str = "dependencies") -> tuple[str, ...]:
    """A non-empty list of valid names, de-duplicated and sorted (so equal sets compare equal)."""
    if not names:
        raise InvalidArgument(f"{field} must name at least one dependency")
    if len(names) > MAX_DEPENDENCIES:
        raise InvalidArgument(f"{field} may name at most {MAX_DEPENDENCIES} dependencies, got {len(names)}")
    return tuple(sorted({validate_dependency_name(n, field) for n in names}))


def validate_text(value: str, field: str, *, min_length: int = 0, max_length: int) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold it: refuse it as input, not fail on it
        raise InvalidArgument(f"{field} must not contain NUL characters")
    if len(value) < min_length:
        raise InvalidArgument(f"{field} is required" if min_length == 1 else f"{field} must be at least {min_length} characters")
    if len(value) > max_length:
        raise InvalidArgument(f"{field} must be at most {max_length} characters, got {len(value)}")
    return value


def validate_request_id(value: str) -> str | None:
    """The optional idempotency key of create calls; empty means none."""
    return validate_text(value, "request_id", max_length=MAX_REQUEST_ID_LENGTH) or None


def validate_uuid(value: str, field: str = "id") -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(f"{field} must be a UUID, got {shown(value)}") from None


def validate_call_duration(duration_s: float | None, field: str) -> float | None:
    """How long a provider call took, when reported: 0 up to MAX_CALL_DURATION_S."""
    if duration_s is not None and not (math.isfinite(duration_s) and 0 <= duration_s <= MAX_CALL_DURATION_S):
        raise InvalidArgument(f"{field} must be between 0s and {MAX_CALL_DURATION_S:.0f}s (one day), got {duration_s:g}s")
    return duration_s
