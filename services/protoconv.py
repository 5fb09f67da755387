"""Conversions between protobuf values and the Python values use cases work with.

A proto enum value is the Python enum member's name behind a prefix (`JOB_STATUS_PAUSED` <->
`JobStatus.PAUSED`); `ProtoEnum` does that mapping once for every enum of every service.
"""

from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from services.errors import InvalidArgument

E = TypeVar("E", bound=Enum)


class ProtoEnum(Generic[E]):
    def __init__(self, proto_enum: EnumTypeWrapper, python_enum: type[E], prefix: str) -> None:
        self._proto_enum = proto_enum
        self._python_enum = python_enum
        self._prefix = prefix

    def to_proto(self, member: E) -> int:
        return self._proto_enum.Value(self._prefix + member.name)

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


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A Timestamp for a timezone-aware datetime; None (the field stays unset) for None."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


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
    """A Struct as plain JSON data. A Struct can hold NaN and Infinity, JSON cannot: refused."""
    try:
        return json_format.MessageToDict(value)
    except ValueError:
        raise InvalidArgument(f"{field} must not contain NaN or Infinity (JSON has no such numbers)") from None
