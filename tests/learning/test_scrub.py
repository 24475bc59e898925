from __future__ import annotations

import pytest

from bot.errors import InputError
from bot.scrub import Scrubber, luhn_valid
from bot.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+shop@mail.example.co.uk today", "write to {{Email}} today"),
        ("call me on +1 (555) 123-4567 please", "call me on {{Phone Number}} please"),
        ("my mobile is 07700 900123", "my mobile is {{Phone Number}}"),
        ("card 4111 1111 1111 1111 was declined", "card {{Card Number}} was declined"),
        ("card 4111-1111-1111-1111", "card {{Card Number}}"),
        ("IBAN DE89 3704 0044 0532 0130 00 is mine", "IBAN {{Account Number}} is mine"),
        ("my account number is 0012-3456-78", "my account number is {{Account Number}}"),
        ("acct #: 12345678 frozen", "acct #: {{Account Number}} frozen"),
    ],
)
def test_personal_data_becomes_typed_placeholders(text: str, expected: str) -> None:
    assert Scrubber().scrub(text).text == expected


def test_ordinary_text_dates_amounts_and_placeholders_are_kept() -> None:
    text = "On 2024-01-15 I paid 25.99 for 3 items, order {{Order Number}}, ref 12/03/2024"
    out = Scrubber().scrub(text)
    assert out.text == text
    assert out.found == {}


def test_counts_what_it_replaced() -> None:
    out = Scrubber().scrub("a@b.io, c@d.io and 4111111111111111")
    assert out.found == {"Email": 2, "Card Number": 1}


def test_non_luhn_long_number_is_not_called_a_card() -> None:
    assert not luhn_valid("4111 1111 1111 1112")
    assert "{{Card Number}}" not in Scrubber()("number 4111 1111 1111 1112")


def test_configured_patterns_and_disabling_builtins() -> None:
    scrubber = Scrubber({"Order Number": r"ORD-\d{6}"}, disable=["Phone Number"])
    assert scrubber("order ORD-123456, call 555-123-4567") == (
        "order {{Order Number}}, call 555-123-4567"
    )


def test_bad_configuration_names_the_key() -> None:
    with pytest.raises(InputError, match="scrub_disable"):
        Scrubber(disable=["Passport"])
    with pytest.raises(SettingsError, match=r"learning\.scrub_patterns"):
        load_settings(learning={"scrub_patterns": {"Order": "("}})
    with pytest.raises(SettingsError, match=r"learning\.margin"):
        load_settings(learning={"margin": 2})


def test_settings_build_the_scrubber() -> None:
    settings = load_settings(learning={"scrub_patterns": {"Member Id": r"M-\d{4}"}})
    assert Scrubber.from_settings(settings.learning)("id M-1234") == "id {{Member Id}}"
