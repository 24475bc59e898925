from __future__ import annotations

from dataclasses import dataclass

from connectors.config import ChannelConfig, check_url, require, secret
from connectors.errors import ChannelConfigError


@dataclass(frozen=True, kw_only=True)
class TwilioConfig(ChannelConfig):
    account_sid: str = ""  # AC...
    auth_token: str = secret()  # signs webhooks and authenticates API calls
    # Sender: a number ("+15017122661", "whatsapp:+14155238886") or a Messaging Service.
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base: str = "https://api.twilio.com"
    # The webhook URL exactly as configured in Twilio; the signature covers it, and behind a
    # proxy the URL this process sees differs. Empty: the request's own URL.
    webhook_url: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        require("account_sid", self.account_sid)
        require("auth_token", self.auth_token)
        if not (self.from_number or self.messaging_service_sid):
            raise ChannelConfigError("from_number", "set from_number or messaging_service_sid")
        check_url("api_base", self.api_base)
        check_url("webhook_url", self.webhook_url, allow_empty=True)
