from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.protocol.topics import Scope, TopicError, parse_topic, station_subscriptions


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("hoa-vang", "loa/v1/hoa-vang/alert"),
        ("hoa-vang/hoa-bac", "loa/v1/hoa-vang/hoa-bac/alert"),
        ("hoa-vang/hoa-bac/tram-01", "loa/v1/hoa-vang/hoa-bac/tram-01/alert"),
    ],
)
def test_scope_string_round_trips_through_its_alert_topic(text, topic):
    scope = Scope.parse(text)
    assert str(scope) == text
    assert scope.topic("alert") == topic
    parsed = parse_topic(topic)
    assert parsed.scope == scope and parsed.kind == "alert"


@pytest.mark.parametrize("bad", ["", "Hoa-vang", "hoa vang", "a/b/c/d", "a//c", "a/", "-x" * 40, "hoà-vang"])
def test_invalid_scopes_are_refused(bad):
    with pytest.raises(TopicError):
        Scope.parse(bad)


def test_a_commune_may_be_called_alert_because_depth_tells_scopes_apart():
    assert parse_topic("loa/v1/d/alert/alert").scope == Scope("d", "alert")
    assert parse_topic("loa/v1/d/alert").scope == Scope("d")


@pytest.mark.parametrize(
    "topic",
    [
        "loa/v1/d/status",
        "loa/v1/d/c/ack",
        "loa/v2/d/alert",
        "loa/v1/d/c/s/x/alert",
        "loa/v1/d/c/s/unknown",
        "x",
    ],
)
def test_topics_that_are_not_protocol_v1_are_refused(topic):
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_station_topics_only_exist_at_station_scope():
    with pytest.raises(TopicError):
        Scope("d", "c").topic("ack")
    assert Scope("d", "c", "s").topic("ack") == "loa/v1/d/c/s/ack"


@pytest.mark.parametrize(
    ("scope", "filter_"),
    [("d", "loa/v1/d/+/+/ack"), ("d/c", "loa/v1/d/c/+/ack"), ("d/c/s", "loa/v1/d/c/s/ack")],
)
def test_ack_filter_matches_every_station_inside_the_scope(scope, filter_):
    assert Scope.parse(scope).station_filter("ack") == filter_


def test_a_station_subscribes_to_alerts_schedules_and_policies_at_every_enclosing_scope():
    subs = station_subscriptions(Scope("d", "c", "s"))
    assert subs == [
        "loa/v1/d/alert",
        "loa/v1/d/c/alert",
        "loa/v1/d/c/s/alert",
        "loa/v1/d/schedule",
        "loa/v1/d/c/schedule",
        "loa/v1/d/c/s/schedule",
        "loa/v1/d/policy",
        "loa/v1/d/c/policy",
        "loa/v1/d/c/s/policy",
        "loa/v1/d/c/s/cmd",
    ]


def test_scope_containment():
    assert Scope("d").contains(Scope("d", "c", "s"))
    assert Scope("d", "c").contains(Scope("d", "c"))
    assert not Scope("d", "c").contains(Scope("d", "x", "s"))
    assert not Scope("d", "c", "s").contains(Scope("d", "c"))


@settings(max_examples=300)
@given(st.text(alphabet="loav1/+#-abcz09 A\x00é", max_size=40))
def test_parsing_any_topic_or_scope_raises_only_topic_error(text):
    for parse in (parse_topic, Scope.parse):
        try:
            parse(text)
        except TopicError:
            pass
