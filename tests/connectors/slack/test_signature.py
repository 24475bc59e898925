"""Slack's request signature against Slack's documented example."""

from __future__ import annotations

import pytest

from bot.errors import AuthError
from connectors.slack.signature import slack_signature, verify_slack


def test_slack_signature_matches_slacks_documented_example() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
        b"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body) == expected
    # ...and the 5-minute window refuses that same, correctly signed, 2018 request.
    headers = {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": expected}
    with pytest.raises(AuthError, match="replay window"):
        verify_slack("8f742231b10e8888abcd99yyyzzz85a5", headers, body)
