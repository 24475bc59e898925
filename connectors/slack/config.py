from __future__ import annotations

from dataclasses import dataclass

from connectors.config import ChannelConfig, check_url, require, secret
from connectors.errors import ChannelConfigError


@dataclass(frozen=True, kw_only=True)
class SlackConfig(ChannelConfig):
    signing_secret: str = secret()
    bot_token: str = secret()  # xoxb-...
    api_base: str = "https://slack.com/api"
    # Slack's documented replay window is five minutes.
    replay_window_s: float = 300.0
    # The bot's own user id (U...); its messages and a leading @mention of it are dropped.
    bot_user_id: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        require("signing_secret", self.signing_secret)
        require("bot_token", self.bot_token)
        check_url("api_base", self.api_base)
        if not 0 < self.replay_window_s <= 3600:
            raise ChannelConfigError("replay_window_s", "must be in (0, 3600] seconds")
