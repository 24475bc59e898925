from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.config import ChannelConfig, check_url, require, secret
from connectors.errors import ChannelConfigError

# setWebhook's rule for secret_token: 1-256 characters, A-Z, a-z, 0-9, _ and -.
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass(frozen=True, kw_only=True)
class TelegramConfig(ChannelConfig):
    bot_token: str = secret()
    # Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token; registered by setWebhook.
    secret_token: str = secret()
    api_base: str = "https://api.telegram.org"
    # Quote the customer's message in replies (reply_parameters).
    quote_replies: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require("bot_token", self.bot_token)
        if ":" not in self.bot_token:
            raise ChannelConfigError("bot_token", "expected '<bot id>:<secret>' from @BotFather")
        if not SECRET_TOKEN.match(self.secret_token):
            raise ChannelConfigError(
                "secret_token", "must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        check_url("api_base", self.api_base)
