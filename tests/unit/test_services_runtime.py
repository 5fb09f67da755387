"""The shared runtime's pure parts: paging tokens, validation, configuration, error mapping, proto
conversions."""

import gc
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import grpc
import pytest
import redis.exceptions
import sqlalchemy.exc
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from services import errors
from services.config import ConfigError, ServerSettings, env_bool, env_choice, env_float, env_int
from services.db import async_url
from services.interceptors import status_for
from services.pagination import (
    MAX_PAGE_SIZE,
    created_position,
    decode_page_token,
    encode_page_token,
    page_size,
    parse_created_position,
)
from services.protoconv import json_object, timestamp
from services.server import GC_THRESHOLDS, tune_garbage_collection
from services.validation import (
    validate_dependency_list,
    validate_dependency_name,
    validate_request_id,
    validate_text,
    validate_uuid,
)
from services.breaker_state import BreakerState
from services.watch import BREAKER_STATE


class TestPaging:
    def test_a_token_round_trips_its_position(self) -> None:
        token = encode_page_token({"after": "openai"}, {"state": 2})
        assert decode_page_token(token, {"state": 2}) == {"after": "openai"}

    def test_an_empty_token_is_the_first_page(self) -> None:
        assert decode_page_token("", {}) is None

    @pytest.mark.parametrize("token", ["garbage!", "e30", "bm90IGpzb24"])
    def test_a_malformed_token_is_invalid_argument(self, token: str) -> None:
        with pytest.raises(errors.InvalidArgument, match="page_token"):
            decode_page_token(token, {})

    def test_a_token_reused_with_other_filters_is_refused(self) -> None:
        token = encode_page_token({"after": "a"}, {"status": 1})
        with pytest.raises(errors.InvalidArgument, match="filters changed"):
            decode_page_token(token, {"status": 2})

    def test_a_created_position_round_trips_and_every_part_is_checked(self) -> None:
        moment = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        record_id = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        assert parse_created_position(created_position(moment, record_id)) == (moment, record_id)
        for bad in ({"t": moment.isoformat(), "id": 5}, {"t": "2026-11-28T12:00:00", "id": record_id},
                    {"t": moment.isoformat(), "id": "x\x00"}, {"t": 7, "id": record_id}, {}):
            with pytest.raises(errors.InvalidArgument, match="page_token"):
                parse_created_position(bad)

    def test_page_size_defaults_caps_and_refuses_negatives(self) -> None:
        assert page_size(0) == 50
        assert page_size(5000) == MAX_PAGE_SIZE
        with pytest.raises(errors.InvalidArgument):
            page_size(-1)


class TestValidation:
    @pytest.mark.parametrize("name", ["openai", "a", "million-verifier", "api.v2_x", "x" * 63])
    def test_good_dependency_names_pass(self, name: str) -> None:
        assert validate_dependency_name(name) == name

    @pytest.mark.parametrize("name", ["", "OpenAI", "-x", "x-", "a b", "x" * 64, "ünicode", "a/b", "openai\n"])
    def test_bad_dependency_names_are_invalid_argument(self, name: str) -> None:
        with pytest.raises(errors.InvalidArgument, match="dependency"):
            validate_dependency_name(name)

    def test_dependency_lists_are_deduplicated_sorted_and_bounded(self) -> None:
        assert validate_dependency_list(["openai", "apollo", "openai"]) == ("apollo", "openai")
        with pytest.raises(errors.InvalidArgument, match="at least one"):
            validate_dependency_list([])
        with pytest.raises(errors.InvalidArgument, match="at most 20"):
            validate_dependency_list([f"d{i}" for i in range(21)])

    def test_text_bounds_and_request_ids(self) -> None:
        assert validate_text("abc", "name", min_length=1, max_length=3) == "abc"
        with pytest.raises(errors.InvalidArgument, match="name is required"):
            validate_text("", "name", min_length=1, max_length=3)
        with pytest.raises(errors.InvalidArgument, match="at most 3"):
            validate_text("abcd", "name", max_length=3)
        with pytest.raises(errors.InvalidArgument, match="name must not contain NUL"):
            validate_text("a\x00b", "name", max_length=3)
        assert validate_request_id("") is None
        with pytest.raises(errors.InvalidArgument, match="request_id"):
            validate_request_id("r" * 129)

    def test_ids_must_be_uuids(self) -> None:
        assert validate_uuid("6F9619FF-8B86-D011-B42D-00C04FC964FF") == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        with pytest.raises(errors.InvalidArgument, match="UUID"):
            validate_uuid("42")


class TestConfiguration:
    def test_values_are_parsed_and_checked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("X_INT", "7")
        monkeypatch.setenv("X_FLOAT", "0.5")
        monkeypatch.setenv("X_BOOL", "yes")
        assert env_int("X_INT", 1, minimum=0) == 7
        assert env_float("X_FLOAT", 1.0) == 0.5
        assert env_bool("X_BOOL", False) is True
        assert env_int("X_MISSING", 3) == 3

    @pytest.mark.parametrize(
        "name,value,call",
        [
            ("X_INT", "seven", lambda: env_int("X_INT", 1)),
            ("X_INT", "-1", lambda: env_int("X_INT", 1, minimum=0)),
            ("X_FLOAT", "fast", lambda: env_float("X_FLOAT", 1.0)),
            ("X_BOOL", "maybe", lambda: env_bool("X_BOOL", False)),
            ("X_CHOICE", "mongo", lambda: env_choice("X_CHOICE", "memory", ("memory", "redis"))),
        ],
    )
    def test_bad_values_name_the_variable(self, monkeypatch: pytest.MonkeyPatch, name: str, value: str, call) -> None:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=name):
            call()

    def test_server_settings_read_the_service_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOB_PORT", "6000")
        monkeypatch.setenv("ADMIN_TOKEN", "s3cret")
        settings = ServerSettings.from_env("JOB", default_port=50053)
        assert (settings.port, settings.admin_token, settings.metrics_port) == (6000, "s3cret", None)

    def test_database_urls_get_async_drivers(self) -> None:
        assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
        assert async_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
        with pytest.raises(ConfigError, match="postgresql"):
            async_url("mysql://u@h/db")


class TestErrorMapping:
    @pytest.mark.parametrize(
        "error,code",
        [
            (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
            (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
            (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
            (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
            (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
            (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
            (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        ],
    )
    def test_service_errors_keep_their_message(self, error: errors.ServiceError, code: grpc.StatusCode) -> None:
        assert status_for(error) == (code, "x")

    def test_storage_outages_are_unavailable(self) -> None:
        assert status_for(redis.exceptions.ConnectionError("refused"))[0] is grpc.StatusCode.UNAVAILABLE
        outage = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
        assert status_for(outage)[0] is grpc.StatusCode.UNAVAILABLE

    @pytest.mark.parametrize(
        "driver_error",
        [
            asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
            asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
            asyncpg.exceptions.InterfaceError("connection is closed"),
        ],
        ids=lambda error: type(error).__name__,
    )
    def test_a_lost_database_connection_is_unavailable_however_sqlalchemy_wraps_it(self, driver_error) -> None:
        # SQLAlchemy's asyncpg dialect wraps these as InternalError or a bare DBAPIError.
        for wrapper in (sqlalchemy.exc.InternalError, sqlalchemy.exc.DBAPIError):
            try:
                try:
                    raise driver_error
                except Exception as cause:
                    raise wrapper("SELECT 1", {}, Exception(str(cause))) from cause
            except sqlalchemy.exc.DBAPIError as wrapped:
                assert status_for(wrapped) == (grpc.StatusCode.UNAVAILABLE, "storage is unavailable, retry later")
        invalidated = sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
        assert status_for(invalidated)[0] is grpc.StatusCode.UNAVAILABLE

    def test_a_value_the_database_refuses_is_invalid_argument(self) -> None:
        refused = sqlalchemy.exc.DataError("INSERT", {}, Exception("invalid byte sequence"))
        assert status_for(refused) == (grpc.StatusCode.INVALID_ARGUMENT, "a value in the request cannot be stored")

    def test_a_method_the_servicer_does_not_implement_is_unimplemented(self) -> None:
        assert status_for(NotImplementedError("Method not implemented!"))[0] is grpc.StatusCode.UNIMPLEMENTED

    def test_bugs_are_internal_without_leaking_details(self) -> None:
        assert status_for(KeyError("secret_column")) == (grpc.StatusCode.INTERNAL, "internal error")


def test_breaker_states_mirror_the_proto_enum() -> None:
    from breaker.v1 import breaker_pb2

    proto_values = {v for v in breaker_pb2.BreakerState.values() if v != 0}
    assert {BREAKER_STATE.to_proto(s) for s in BreakerState} == proto_values
    assert all(BREAKER_STATE.from_proto(BREAKER_STATE.to_proto(s), "state") is s for s in BreakerState)
    assert {s for s in BreakerState if s.blocks_calls} == {BreakerState.OPEN, BreakerState.FORCED_OPEN}


_JSON_DATA = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)


def _struct(data: dict[str, Any]) -> Struct:
    value = Struct()
    value.update(data)
    return value


class TestProtoConversions:
    """services.protoconv's shortcuts give what the protobuf library's own conversions give."""

    @given(st.dictionaries(st.text(max_size=10), _JSON_DATA, max_size=4))
    def test_a_struct_becomes_the_json_data_message_to_dict_makes(self, data: dict[str, Any]) -> None:
        struct = _struct(data)
        assert json_object(struct, "payload") == json_format.MessageToDict(struct)

    def test_a_value_of_no_kind_is_null(self) -> None:
        struct = Struct()
        struct.fields["unset"].Clear()
        assert json_object(struct, "payload") == json_format.MessageToDict(struct) == {"unset": None}

    @pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
    def test_nan_or_infinity_at_any_depth_is_refused_naming_the_field(self, number: float) -> None:
        with pytest.raises(errors.InvalidArgument, match="^result must not contain NaN or Infinity"):
            json_object(_struct({"a": [1, {"b": number}]}), "result")

    @given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))])))
    def test_a_timestamp_is_the_one_from_datetime_makes(self, moment: datetime) -> None:
        expected = Timestamp()
        try:
            expected.FromDatetime(moment)
        except (ValueError, OverflowError):  # beyond years 1..9999 once in UTC
            with pytest.raises(ValueError):
                timestamp(moment)
            return
        assert timestamp(moment) == expected

    def test_a_naive_datetime_is_utc_and_none_stays_unset(self) -> None:
        assert timestamp(datetime(2026, 12, 1, 4, 30, 0, 123456)) == timestamp(datetime(2026, 12, 1, 4, 30, 0, 123456, tzinfo=UTC))
        assert timestamp(None) is None


def test_a_started_service_freezes_its_start_up_objects_and_collects_young_garbage_rarely() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collection()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
