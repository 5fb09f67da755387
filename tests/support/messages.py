"""Hypothesis strategies that build any protobuf message from its descriptor.

Values mix the arbitrary (any integer of the field's width, NaN, huge durations, long text,
unknown enum numbers) with the plausible (for a string field, values that a field of that name
holds in the service's own responses: ids that exist, names in use), so that generated requests
get past the first checks and reach the deeper ones.
"""

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.struct_pb2 import Struct
from hypothesis import strategies as st

F = FieldDescriptor
_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1), F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}
_TEXT = st.text(max_size=40)
_ODD_TEXT = st.sampled_from(["", " ", "\x00", "a" * 64, "x" * 5000, "ünicode", "Open AI", "openai\n", "../..", "%s%n"])
_NOT_JSON = st.sampled_from([math.nan, math.inf, -math.inf])
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | _NOT_JSON | st.integers(-(2**53), 2**53) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


def _struct(data: dict[str, Any]) -> Struct:
    value = Struct()
    value.update(data)
    return value


Plausible = Mapping[str, Sequence[str]]  # field name -> values such a field holds


def plausible_values(responses: Sequence[Message]) -> dict[str, list[str]]:
    """Every string value in the messages, by the name of its field (at any depth)."""
    found: dict[str, set[str]] = {}
    for response in responses:
        for name, value in _strings(response):
            found.setdefault(name, set()).add(value)
    return {name: sorted(values) for name, values in found.items()}


def _strings(message: Message) -> Iterator[tuple[str, str]]:
    for field, value in message.ListFields():
        items = value if field.is_repeated else [value]
        for item in items:
            if isinstance(item, Message):
                yield from _strings(item)
            elif isinstance(item, str):
                yield field.name, item


def messages(descriptor: Descriptor, plausible: Plausible, depth: int = 3) -> st.SearchStrategy[Message]:
    """Any message of the type: each field set or not, to any value its type can hold."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Struct":
        return st.dictionaries(_TEXT, _JSON, max_size=3).map(_struct)
    if descriptor.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
        seconds = st.integers(0, 100_000) | st.sampled_from([86_400, 86_401, 315_576_000_000, 315_576_000_001, 2**63 - 1, -1]) | st.integers(-(2**63), 2**63 - 1)
        nanos = st.just(0) | st.integers(0, 999_999_999) | st.integers(-(2**31), 2**31 - 1)
        return st.builds(cls, seconds=seconds, nanos=nanos)
    if descriptor.full_name == "google.protobuf.FieldMask":
        paths = st.sampled_from(plausible.get("paths") or [""]) | _TEXT | _ODD_TEXT
        return st.lists(paths, max_size=3).map(lambda p: cls(paths=p))
    fields = {
        field.name: _field_values(field, plausible, depth)
        for field in descriptor.fields
        if depth > 0 or field.type != F.TYPE_MESSAGE
    }
    if not fields:
        return st.just(cls())
    # Sparse (one or two fields set) reaches the checks of each field alone; dense, their mix.
    sparse = st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({name: fields[name] for name in chosen})
    )
    return (sparse | st.fixed_dictionaries({}, optional=fields)).map(lambda values: _build(cls, values))


def _field_values(field: FieldDescriptor, plausible: Plausible, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key, plausible), _single(value, plausible, depth - 1), max_size=3)
    single = _single(field, plausible, depth)
    return st.lists(single, max_size=4) if field.is_repeated else single


def _single(field: FieldDescriptor, plausible: Plausible, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        return messages(field.message_type, plausible, depth - 1)
    return _scalar(field, plausible)


def _scalar(field: FieldDescriptor, plausible: Plausible) -> st.SearchStrategy[Any]:
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        return st.integers(low, high) | st.integers(max(low, -3), 120) | st.sampled_from([low, high])
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(width=64 if field.type == F.TYPE_DOUBLE else 32) | st.floats(0, 100)
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.sampled_from(known) | st.integers(-(2**31), 2**31 - 1)
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=40)
    known = plausible.get(field.name) or [""]
    return st.sampled_from(known) | _TEXT | _ODD_TEXT | st.builds(lambda: str(uuid.uuid4()))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name) if field.is_repeated or field.type == F.TYPE_MESSAGE else None
        if isinstance(value, dict):  # a map
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Message):
                    target.add().CopyFrom(item)
                else:
                    target.append(item)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
