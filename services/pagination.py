"""AIP-158 paging: page sizes and opaque page tokens.

A token is the URL-safe base64 of a small JSON object holding the keyset position of the next
page and the filter it was issued for, so a token reused with another filter is refused.
"""

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from services.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Tokens this module issues are far shorter; a longer one is not ours.
MAX_PAGE_TOKEN_LENGTH = 1024


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(position: dict[str, Any], filters: dict[str, Any]) -> str:
    raw = json.dumps({"p": position, "f": filters}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, filters: dict[str, Any]) -> dict[str, Any] | None:
    """The position a token points at, or None for the first page."""
    if not token:
        return None
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise InvalidArgument(f"page_token is malformed: at most {MAX_PAGE_TOKEN_LENGTH} characters, got {len(token)}")
    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position, token_filters = decoded["p"], decoded["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgument("page_token is malformed") from None
    if not isinstance(position, dict) or token_filters != filters:
        raise InvalidArgument("page_token does not belong to this query (the filters changed)")
    return position


def created_position(created_at: datetime, record_id: str) -> dict[str, Any]:
    """The keyset position after a record, for lists ordered by (creation time, id)."""
    return {"t": created_at.isoformat(), "id": record_id}


def parse_created_position(position: dict[str, Any] | None) -> tuple[datetime, str] | None:
    """The (creation time, id) a token points after, every part checked: a token is input."""
    if position is None:
        return None
    moment, record_id = position.get("t"), position.get("id")
    if not isinstance(moment, str) or not isinstance(record_id, str):
        raise InvalidArgument("page_token is malformed")
    try:
        created_at, record_id = datetime.fromisoformat(moment), str(uuid.UUID(record_id))
        if created_at.tzinfo is None:
            raise ValueError("a naive time")
        # In UTC, as stored: year 1 or 9999 with an offset falls outside datetime's range here.
        created_at = created_at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument("page_token is malformed") from None
    return created_at, record_id
