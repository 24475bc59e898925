"""Twilio's request signature against Twilio's documented example."""

from __future__ import annotations

import pytest

from bot.errors import AuthError
from connectors.twilio.signature import twilio_signature, verify_twilio


def test_twilio_signature_matches_twilios_documented_example() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    verify_twilio("12345", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    # Twilio may sign with the default port spelled out; both forms verify.
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    verify_twilio("12345", with_port, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    with pytest.raises(AuthError):
        verify_twilio(
            "12345", url, [*params[:-1], ("To", "+18005551213")], "GvWf1cFY/Q7PnoempGyD5oXAezc="
        )
