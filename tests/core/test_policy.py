import pytest
from pydantic import ValidationError

from firmware.core.policy import Policy, parse_hhmm
from tests.core.helpers import at, policy


@pytest.mark.parametrize(
    "text,allow_24,minutes",
    [("00:00", False, 0), ("05:30", False, 330), ("23:59", False, 1439), ("24:00", True, 1440)],
)
def test_times_parse(text, allow_24, minutes):
    assert parse_hhmm(text, allow_24=allow_24) == minutes


@pytest.mark.parametrize("text", ["25:00", "7h", "5:30", "", "24:00", "12:60", "noon", "05:30:00"])
def test_impossible_times_are_refused_with_the_text_quoted(text):
    with pytest.raises(ValueError) as e:
        parse_hhmm(text)
    assert text in str(e.value) or text == ""


def test_window_crossing_midnight_belongs_to_the_day_it_starts():
    p = policy(("21:00", "01:00", -10, ["sat"]))  # a festival night
    assert p.window_at(at(2026, 12, 5, 23, 0)) is not None  # Saturday 23:00
    assert p.window_at(at(2026, 12, 6, 0, 30)) is not None  # Sunday 00:30, still Saturday's window
    assert p.window_at(at(2026, 12, 6, 1, 0)) is None  # ends at 01:00
    assert p.window_at(at(2026, 12, 5, 20, 59)) is None
    assert p.window_at(at(2026, 12, 6, 23, 0)) is None  # not on Sunday night


def test_window_ending_at_24_00_includes_the_last_second():
    p = policy(("23:00", "24:00", -10))
    assert p.window_at(at(2026, 12, 31, 23, 59, 59)) is not None
    assert p.window_at(at(2027, 1, 1, 0, 0)) is None


def test_empty_window_is_refused():
    with pytest.raises(ValidationError, match="empty"):
        policy(("06:00", "06:00", -6))


def test_overlapping_windows_are_refused_naming_both():
    with pytest.raises(ValidationError) as e:
        policy(("05:30", "07:00", -6), ("06:30", "08:00", -6))
    msg = str(e.value)
    assert "windows[0]" in msg and "windows[1]" in msg and "overlaps" in msg


def test_sunday_night_window_overlapping_monday_morning_is_caught_across_the_week_boundary():
    with pytest.raises(ValidationError, match="overlaps"):
        policy(("23:00", "02:00", -6, ["sun"]), ("01:00", "03:00", -6, ["mon"]))


def test_adjacent_windows_do_not_overlap():
    p = policy(("05:30", "07:00", -6), ("07:00", "08:00", -3))
    assert p.window_at(at(2026, 12, 1, 7, 0))[0] == 1


def test_policy_needs_at_least_one_window():
    with pytest.raises(ValidationError):
        Policy.model_validate({"windows": []})


@pytest.mark.parametrize(
    "field,value", [("max_sessions_per_day", 0), ("max_session_minutes", -1), ("alert_gain_db", 3)]
)
def test_out_of_range_numbers_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        Policy.model_validate({"windows": [{"start": "05:00", "end": "06:00"}], field: value})
