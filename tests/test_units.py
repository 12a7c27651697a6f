"""Durations and sizes: what parses, what round-trips, and that bare numbers never do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanri.config import format_duration, format_size, parse_duration, parse_size

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}

bare_numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1m30s", 90), ("1.5s", 1.5)],
)
def test_parse_duration_examples(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@given(parts=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(list(DURATION_UNITS)))))
def test_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * DURATION_UNITS[unit] for n, unit in parts)
    if not parts:
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == pytest.approx(expected)


@given(milliseconds=st.integers(0, 999))
def test_short_durations_round_trip(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@given(seconds=st.integers(1, 10 * 365 * 86400))
def test_whole_second_durations_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(value=bare_numbers)
def test_bare_number_is_not_a_duration(value: float) -> None:
    with pytest.raises(ValueError, match="has no unit"):
        parse_duration(value)


@given(value=st.integers(0, 10**9))
def test_number_in_a_string_without_unit_is_not_a_duration(value: int) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(str(value))


@given(n=st.integers(0, 10**6), unit=st.sampled_from(list(SIZE_UNITS)))
def test_size_with_unit(n: int, unit: str) -> None:
    assert parse_size(f"{n}{unit}") == n * SIZE_UNITS[unit]
    assert parse_size(f"{n} {unit.lower()}") == n * SIZE_UNITS[unit]


@given(n=st.integers(0, 1024**4))
def test_sizes_round_trip_to_the_shown_precision(n: int) -> None:
    shown = format_size(n)
    # One decimal is shown, so the error is at most half a tenth of the unit.
    unit = SIZE_UNITS[shown.lstrip("0123456789.")]
    assert abs(parse_size(shown) - n) <= unit * 0.05 + 1


@given(value=bare_numbers)
def test_bare_number_is_not_a_size(value: float) -> None:
    with pytest.raises(ValueError, match="has no unit"):
        parse_size(value)


@given(value=st.integers(0, 10**9))
def test_number_in_a_string_without_unit_is_not_a_size(value: int) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(str(value))


@pytest.mark.parametrize("value", [True, None, [1], {"s": 1}])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration string"):
        parse_duration(value)
    with pytest.raises(ValueError, match="expected a size string"):
        parse_size(value)


@pytest.mark.parametrize("text", ["5 sec", "fast", "-1s", "1s2", "s"])
def test_malformed_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["lots", "1TiB", "-1MiB", "MiB"])
def test_malformed_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)
