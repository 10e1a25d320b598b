import json
from datetime import date
from pathlib import Path

import pytest

from firmware.core.schedule import ScheduleError, check_against_policy, parse_schedule
from tests.core.helpers import policy, prog

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "schedule.example.json"


def doc(*programmes, **kw) -> bytes:
    return json.dumps({"version": 1, "programmes": list(programmes), **kw}).encode()


def problems_of(raw) -> list[str]:
    with pytest.raises(ScheduleError) as e:
        parse_schedule(raw, "s.json")
    return e.value.problems


def test_example_schedule_is_valid_and_fits_the_example_policy():
    from firmware.config import load_config

    d = parse_schedule(EXAMPLE.read_bytes())
    cfg = load_config(EXAMPLE.parent / "station.example.toml")
    assert len(d.programmes) >= 5
    assert {p.source.type for p in d.programmes} >= {"file", "stream", "tts", "tone"}
    assert check_against_policy(d, cfg.policy, cfg.station.timezone) == []


def test_refusal_names_programme_time_day_and_window():
    d = parse_schedule(doc(prog("tin-sang", "04:45", days=["mon"])))
    p = policy(("05:30", "07:00", -6))
    assert check_against_policy(d, p) == [
        'programme "tin-sang" starts 04:45 on Mon, outside allowed window 05:30-07:00'
    ]


def test_refusals_are_one_line_per_programme_with_its_days_grouped():
    d = parse_schedule(doc(prog("som", "04:45"), prog("sang", "06:00", days=["sat", "sun"])))
    p = policy(("05:30", "07:00", -6, ["mon", "tue", "wed", "thu", "fri"]), ("05:00", "05:20", -6, ["sat"]))
    assert check_against_policy(d, p) == [
        'programme "som" starts 04:45 on Mon, Tue, Wed, Thu, Fri, outside allowed window 05:30-07:00',
        'programme "som" starts 04:45 on Sat, outside allowed window 05:00-05:20',
        'programme "som" starts 04:45 on Sun, outside allowed windows none',
        'programme "sang" starts 06:00 on Sat, outside allowed window 05:00-05:20',
        'programme "sang" starts 06:00 on Sun, outside allowed windows none',
    ]


def test_programme_inside_yesterdays_midnight_window_is_allowed():
    d = parse_schedule(doc(prog("le-hoi", "00:30", days=["sun"])))
    assert check_against_policy(d, policy(("21:00", "01:00", -6, ["sat"]))) == []


@pytest.mark.parametrize(
    "programme,expected",
    [
        (prog("a", "25:00"), '("a").start: "25:00" is not a time of day'),
        (prog("a", "7h"), '("a").start: "7h" is not a time'),
        (prog("a", "06:00", level="urgent"), '("a").level'),
        (prog("a", "06:00", gain_db=6), '("a").gain_db'),
        (prog("Bad Id", "06:00"), "(\"Bad Id\").id: \"Bad Id\" is not a valid id"),
        (prog("a", "06:00", source={"type": "stream", "urls": ["http://x/y.mp3"]}), "needs max_duration_s"),
        (prog("a", "06:00", source={"type": "file", "url": "http://x/a.mp3", "duration_s": 5}), "sha256"),
        (prog("a", "06:00", source={"type": "file", "duration_s": 5}), "path or a url"),
        (prog("a", "06:00", source={"type": "vinyl"}), "programmes[0]"),
        (prog("a", "06:00", recurrence={}), "recurrence"),
        (prog("a", "06:00", recurrence={"days": ["mon"], "from": "2026-12-10", "until": "2026-12-01"}), "before"),
        (prog("a", "06:00", colour="red"), "colour: unknown key"),
    ],
)
def test_bad_programmes_are_refused_saying_where(programme, expected):
    assert any(expected in p for p in problems_of(doc(programme))), problems_of(doc(programme))


def test_duplicate_ids_name_both_positions():
    ps = problems_of(doc(prog("tin", "06:00"), prog("tin", "06:30")))
    assert any('"tin" is used twice (programmes[0] and programmes[1])' in p for p in ps)


def test_not_json_and_oversize_are_clear():
    assert problems_of(b"{not json")[0].startswith("not valid JSON")
    assert problems_of(b" " * (1024 * 1024 + 1))[0].startswith("too large")
    assert problems_of(b"[]")  # a list is not a document


def test_an_unknown_timezone_is_named_with_a_suggestion():
    ps = problems_of(doc(prog("a", "06:00"), timezone="Asia/Ho_Chi_Minhh"))
    assert any(p.startswith("timezone: ") and 'unknown timezone "Asia/Ho_Chi_Minhh" (did you mean "Asia/Ho_Chi_Minh"?)'
               in p for p in ps), ps


def test_several_problems_are_reported_together():
    ps = problems_of(doc(prog("a", "25:00"), prog("b", "7h", level="x")))
    assert len(ps) >= 3


def test_schedule_for_another_station():
    d = parse_schedule(doc(prog("a", "06:00"), target="hoa-vang/hoa-ninh"))
    assert not d.applies_to("hoa-vang", "hoa-bac", "thon-1")
    assert d.applies_to("hoa-vang", "hoa-ninh", "thon-1")


def test_recurrence_dates_ranges_and_exceptions():
    d = parse_schedule(doc(
        prog("tet", "06:00", recurrence={"days": "daily", "from": "2027-02-01", "until": "2027-02-10",
                                         "except": ["2027-02-06"]}),
        prog("nhuan", "06:00", recurrence={"dates": ["2028-02-29"]}),
    ))
    tet, nhuan = d.programmes
    assert tet.recurrence.occurs_on(date(2027, 2, 1)) and tet.recurrence.occurs_on(date(2027, 2, 10))
    assert not tet.recurrence.occurs_on(date(2027, 2, 6))
    assert not tet.recurrence.occurs_on(date(2027, 2, 11))
    assert nhuan.recurrence.occurs_on(date(2028, 2, 29))
    assert not nhuan.recurrence.occurs_on(date(2028, 3, 1))
