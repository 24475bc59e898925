from __future__ import annotations

from dataclasses import dataclass

from connectors.config import ChannelConfig, check_url, require
from connectors.config import secret as secret_option
from connectors.errors import ChannelConfigError


@dataclass(frozen=True, kw_only=True)
class WebhookConfig(ChannelConfig):
    secret: str = secret_option()  # signs inbound requests
    callback_url: str = ""  # replies are POSTed here
    # Signs outbound requests; empty means the inbound secret.
    callback_secret: str = secret_option("")
    replay_window_s: float = 300.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require("secret", self.secret)  # the length is checked for every secret
        check_url("callback_url", self.callback_url)
        if not 0 < self.replay_window_s <= 3600:
            raise ChannelConfigError("replay_window_s", "must be in (0, 3600] seconds")

    @property
    def outbound_secret(self) -> str:
        return self.callback_secret or self.secret
