"""Conversions between protobuf values and the Python values use cases work with.

A proto enum value is the Python enum member's name behind a prefix (`JOB_STATUS_PAUSED` <->
`JobStatus.PAUSED`); `ProtoEnum` does that mapping once for every enum of every service.
"""

import math
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from services.errors import InvalidArgument

E = TypeVar("E", bound=Enum)


class ProtoEnum(Generic[E]):
    def __init__(self, proto_enum: EnumTypeWrapper, python_enum: type[E], prefix: str) -> None:
        self._proto_enum = proto_enum
        self._python_enum = python_enum
        self._prefix = prefix
        # Looked up once: a member's `name` is a slow descriptor, and an answer maps thousands.
        self._numbers = {member: proto_enum.Value(prefix + member.name) for member in python_enum}

    def to_proto(self, member: E) -> int:
        return self._numbers[member]

    def from_proto(self, number: int, field: str) -> E | None:
        """The member, or None for the zero value (UNSPECIFIED: "any" in filters); an unknown
        number is INVALID_ARGUMENT naming the field."""
        if number == 0:
            return None
        try:
            return self._python_enum[self._proto_enum.Name(number).removeprefix(self._prefix)]
        except (ValueError, KeyError):
            raise InvalidArgument(f"{field} {number} is not a known {self._proto_enum.DESCRIPTOR.name}") from None

    def required_from_proto(self, number: int, field: str) -> E:
        member = self.from_proto(number, field)
        if member is None:
            raise InvalidArgument(f"{field} is required")
        return member


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_TIMESTAMP_S, _MAX_TIMESTAMP_S = -62_135_596_800, 253_402_300_799


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A Timestamp for a datetime (a naive one is UTC, as in Timestamp.FromDatetime); None (the
    field stays unset) for None. Computed from the distance to the epoch: FromDatetime's detour
    through a time tuple (calendar.timegm) costs four times as much, and a batch answer carries
    thousands of timestamps."""
    if moment is None:
        return None
    since_epoch = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)) - _EPOCH
    whole_s = since_epoch.days * 86_400 + since_epoch.seconds
    if not _MIN_TIMESTAMP_S <= whole_s <= _MAX_TIMESTAMP_S:
        raise ValueError(f"{moment.isoformat()} is outside the range of a Timestamp")
    return Timestamp(seconds=whole_s, nanos=since_epoch.microseconds * 1000)


_NANOS_PER_S = 1_000_000_000


def duration(length_s: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(length_s * _NANOS_PER_S))
    return value


# google.protobuf.Duration's own range (about 10,000 years), which protobuf JSON can print.
MAX_DURATION_SECONDS = 315_576_000_000


def seconds(duration: Duration, field: str) -> float:
    """A Duration as seconds; refuses malformed and negative ones, naming the field. Each field's
    own range is checked by its service's validation."""
    d = duration
    malformed_nanos = not -_NANOS_PER_S < d.nanos < _NANOS_PER_S or (d.seconds > 0 > d.nanos) or (d.seconds < 0 < d.nanos)
    if malformed_nanos or abs(d.seconds) > MAX_DURATION_SECONDS:
        raise InvalidArgument(f"{field} is not a valid Duration (seconds={d.seconds}, nanos={d.nanos})")
    value = d.seconds + d.nanos / _NANOS_PER_S
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative, got {value}s")
    return value


def json_object(value: Struct, field: str) -> dict[str, Any]:
    """A Struct as plain JSON data, as json_format.MessageToDict gives it (numbers are floats, a
    Value of no kind is null) at half its cost: a batch converts a thousand payloads. A Struct
    can hold NaN and Infinity, JSON cannot: refused."""
    try:
        return _object(value)
    except ValueError:
        raise InvalidArgument(f"{field} must not contain NaN or Infinity (JSON has no such numbers)") from None


def _object(struct: Struct) -> dict[str, Any]:
    return {key: _plain(item) for key, item in struct.fields.items()}


def _plain(value: Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            raise ValueError("not a JSON number")
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _object(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    return None  # null_value, or no kind set
