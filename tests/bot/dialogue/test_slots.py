"""Reading the value the bot asked for, and business hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.dialogue.handoff import BusinessHours, due
from bot.dialogue.slots import SlotSpec, read_slot
from bot.errors import SettingsError


@pytest.mark.parametrize(
    ("text", "value", "mostly"),
    [
        ("ORD-5521", "ORD-5521", True),
        ("it's ORD-5521", "ORD-5521", True),
        ("my order number is 5521", "5521", True),
        ("sure, ORD-5521 thanks!", "ORD-5521", True),
        ("um ok its #48213", "48213", True),
        ("502-2345678-9012345", "502-2345678-9012345", True),
        ("I want to track order 5521 instead", "5521", False),
        ("I don't have it", None, False),
        ("55", None, False),
    ],
)
def test_order_number(text: str, value: str | None, mostly: bool) -> None:
    got = read_slot(text, "Order Number")
    assert got.value == value
    assert got.mostly_value == mostly


def test_a_short_bad_value_counts_as_an_attempt() -> None:
    assert read_slot("55", "Order Number").attempted
    assert not read_slot("what is your refund policy", "Order Number").attempted


def test_email_and_text_slots() -> None:
    assert read_slot("it's jane.doe@example.com", "Email").value == "jane.doe@example.com"
    assert read_slot("jane@example", "Email").value is None
    assert read_slot("to Berlin please", "Delivery City").value == "Berlin"


def test_configured_pattern_narrows_identifiers() -> None:
    specs = {"order number": SlotSpec("your order number", pattern=r"ORD-\d{4}")}
    assert read_slot("ORD-5521", "Order Number", specs).value == "ORD-5521"
    assert read_slot("5521", "Order Number", specs).value is None


def test_bad_pattern_is_refused() -> None:
    with pytest.raises(SettingsError):
        SlotSpec("x", pattern="(unclosed")


def test_unknown_slot_reads_nothing() -> None:
    assert read_slot("ORD-5521", "Favourite Colour").value is None


def test_hostile_text_is_read_in_bounded_time() -> None:
    text = ("1" * 10_000 + " ") * 50 + "a@" * 5_000
    assert read_slot(text, "Order Number").value is None
    assert read_slot(text, "Email").value is None


def test_business_hours() -> None:
    hours = BusinessHours.parse("Mon-Fri 09:00-17:00, Sat 10:00-12:00", "Europe/Berlin")
    # 2026-12-02 is a Wednesday; Berlin is UTC+1 in December.
    assert hours.is_open(datetime(2026, 12, 2, 9, 30, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 12, 2, 16, 30, tzinfo=UTC))
    assert hours.is_open(datetime(2026, 12, 5, 10, 0, tzinfo=UTC))  # Saturday 11:00
    assert not hours.is_open(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))  # Sunday
    assert BusinessHours.parse("").is_open(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("spec", "tz"),
    [
        ("Mon-Fri 9-5", "UTC"),
        ("Funday 09:00-17:00", "UTC"),
        ("Mon 17:00-09:00", "UTC"),
        ("", "Mars/Base"),
    ],
)
def test_bad_business_hours_are_refused(spec: str, tz: str) -> None:
    with pytest.raises(SettingsError):
        BusinessHours.parse(spec, tz)


def test_handoff_due() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert due("2026-12-02T11:54:00+00:00", now, 300)
    assert not due("2026-12-02T11:58:00+00:00", now, 300)
    assert not due(None, now, 300) and not due("garbage", now, 300)
