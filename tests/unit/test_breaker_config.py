"""BreakerConfig validation and serialization, and dependency-name validation."""

import math

import pytest

from breaker_svc.domain import BreakerConfig, WindowType, validate_dependency_name
from services.errors import InvalidArgument


def test_the_default_config_is_valid():
    config = BreakerConfig()
    assert config.validated() is config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window_type", "sliding", "sliding_window_type must be one of count_based, time_based, got 'sliding'"),
        ("window_size", 0, "sliding_window_size must be in 1..10000, got 0"),
        ("window_size", 10_001, "sliding_window_size must be in 1..10000, got 10001"),
        ("window_size", 2.5, "sliding_window_size must be an integer, got 2.5"),
        ("window_size", True, "sliding_window_size must be an integer, got True"),
        ("minimum_calls", 0, "minimum_calls must be an integer >= 1, got 0"),
        ("failure_rate_threshold", 0, "failure_rate_threshold must be in (0, 100], got 0"),
        ("failure_rate_threshold", 100.5, "failure_rate_threshold must be in (0, 100], got 100.5"),
        ("failure_rate_threshold", math.nan, "failure_rate_threshold must be in (0, 100], got nan"),
        ("failure_rate_threshold", "50", "failure_rate_threshold must be in (0, 100], got '50'"),
        ("slow_call_rate_threshold", -1.0, "slow_call_rate_threshold must be in (0, 100], got -1"),
        ("slow_call_duration_threshold_s", 0.0, "slow_call_duration_threshold must be in (0s, 86400s], got 0s"),
        ("slow_call_duration_threshold_s", math.inf, "slow_call_duration_threshold must be in (0s, 86400s], got inf"),
        ("slow_call_duration_threshold_s", 9.2e18, "slow_call_duration_threshold must be in (0s, 86400s], got 9.2e+18s"),
        ("consecutive_failure_threshold", -1, "consecutive_failure_threshold must be 0 (off) or in 1..10000, got -1"),
        ("consecutive_failure_threshold", 10_001, "must be 0 (off) or in 1..10000, got 10001"),
        ("open_wait_s", 0.0, "open_wait_duration must be in (0s, 86400s], got 0s"),
        ("open_wait_s", 86_401.0, "open_wait_duration must be in (0s, 86400s], got 86401s"),
        ("open_wait_multiplier", 0.5, "open_wait_multiplier must be in [1, 100], got 0.5"),
        ("open_wait_multiplier", 101, "open_wait_multiplier must be in [1, 100], got 101"),
        ("max_open_wait_s", 29.0, "max_open_wait_duration must be in [open_wait_duration (30s), 86400s], got 29s"),
        ("max_open_wait_s", 86_401.0, "max_open_wait_duration must be in [open_wait_duration (30s), 86400s], got 86401s"),
        ("half_open_permitted_calls", 0, "half_open_permitted_calls must be in 1..1000, got 0"),
        ("half_open_permitted_calls", 1001, "half_open_permitted_calls must be in 1..1000, got 1001"),
    ],
)
def test_validated_names_the_bad_field_and_its_range(field, value, message):
    with pytest.raises(InvalidArgument) as raised:
        BreakerConfig(**{field: value}).validated()
    assert raised.value.message.endswith(message)


def test_minimum_calls_above_a_count_window_size_is_refused():
    expected = r"minimum_calls must be <= sliding_window_size \(5\) for a count-based window, got 6"
    with pytest.raises(InvalidArgument, match=expected):
        BreakerConfig(window_size=5, minimum_calls=6).validated()


def test_minimum_calls_above_a_time_window_size_in_seconds_is_fine():
    BreakerConfig(window_type=WindowType.TIME_BASED, window_size=5, minimum_calls=60).validated()


def test_the_bounds_themselves_are_valid():
    BreakerConfig(
        window_size=10_000,
        minimum_calls=10_000,
        failure_rate_threshold=100,
        slow_call_rate_threshold=0.001,
        consecutive_failure_threshold=10_000,
        open_wait_s=86_400,
        open_wait_multiplier=100,
        max_open_wait_s=86_400,
        half_open_permitted_calls=1000,
    ).validated()
    BreakerConfig(window_size=1, minimum_calls=1, open_wait_multiplier=1, half_open_permitted_calls=1).validated()


def test_integers_given_for_float_fields_become_floats_so_equal_configs_serialize_alike():
    config = BreakerConfig(failure_rate_threshold=50, open_wait_s=30)
    assert type(config.failure_rate_threshold) is float and type(config.open_wait_s) is float
    assert config == BreakerConfig() and config.to_dict() == BreakerConfig().to_dict()


def test_a_window_type_given_as_its_string_becomes_the_enum():
    assert BreakerConfig(window_type="time_based").window_type is WindowType.TIME_BASED


def test_to_dict_and_from_dict_round_trip():
    config = BreakerConfig(window_type=WindowType.TIME_BASED, window_size=60, open_wait_multiplier=2.5)
    assert config.to_dict()["window_type"] == "time_based"
    assert BreakerConfig.from_dict(config.to_dict()) == config


def test_from_dict_takes_defaults_for_missing_fields():
    assert BreakerConfig.from_dict({"window_size": 20}) == BreakerConfig(window_size=20)


def test_from_dict_refuses_unknown_fields_and_invalid_values():
    with pytest.raises(InvalidArgument, match="unknown breaker config field"):
        BreakerConfig.from_dict({"window": 20})
    with pytest.raises(InvalidArgument, match="window_size"):
        BreakerConfig.from_dict({"window_size": 0})


def test_the_open_wait_grows_by_the_multiplier_per_opening_up_to_the_cap():
    config = BreakerConfig(open_wait_s=10, open_wait_multiplier=2, max_open_wait_s=35)
    assert [config.open_wait_for(n) for n in range(5)] == [10, 20, 35, 35, 35]


def test_the_open_wait_of_a_huge_opening_count_is_the_cap_not_an_overflow():
    config = BreakerConfig(open_wait_multiplier=100, max_open_wait_s=86_400)
    assert config.open_wait_for(100_000) == 86_400


@pytest.mark.parametrize("name", ["openai", "a", "0", "api.v2", "my_dep-1", "a" * 63, "1password"])
def test_valid_dependency_names_are_returned_unchanged(name):
    assert validate_dependency_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "dependency is required"),
        ("a" * 64, "dependency must be at most 63 characters, got 64"),
        ("OpenAI", "dependency 'OpenAI' is malformed: it may contain only lowercase letters, digits, '.', '_' and '-'"),
        ("open ai", "may contain only lowercase letters"),
        ("openai\n", "may contain only lowercase letters"),
        ("caf\u00e9", "may contain only lowercase letters"),
        ("-openai", "dependency '-openai' is malformed: it must start and end with a lowercase letter or digit"),
        ("openai.", "must start and end with a lowercase letter or digit"),
        ("_", "must start and end with a lowercase letter or digit"),
        (None, "dependency must be a string, got NoneType"),
    ],
)
def test_invalid_dependency_names_are_refused_with_a_clear_message(name, message):
    with pytest.raises(InvalidArgument) as raised:
        validate_dependency_name(name)
    assert message in raised.value.message
