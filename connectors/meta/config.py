from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.config import ChannelConfig, check_url, require, secret
from connectors.errors import ChannelConfigError


@dataclass(frozen=True, kw_only=True)
class MetaConfig(ChannelConfig):
    app_secret: str = secret()  # signs X-Hub-Signature-256
    verify_token: str = secret()  # echoed in the GET subscription handshake
    access_token: str = secret()  # page token (Messenger) or system-user token (WhatsApp)
    api_base: str = "https://graph.facebook.com"
    api_version: str = "v21.0"

    def __post_init__(self) -> None:
        super().__post_init__()
        for option in ("app_secret", "verify_token", "access_token"):
            require(option, getattr(self, option))
        check_url("api_base", self.api_base)
        if not re.fullmatch(r"v\d+\.\d+", self.api_version):
            raise ChannelConfigError(
                "api_version", f"expected e.g. 'v21.0', got {self.api_version!r}"
            )

    def graph_url(self, path: str) -> str:
        return f"{self.api_base.rstrip('/')}/{self.api_version}/{path}"


@dataclass(frozen=True, kw_only=True)
class MessengerConfig(MetaConfig):
    pass


@dataclass(frozen=True, kw_only=True)
class WhatsAppConfig(MetaConfig):
    # The business number's id; messages to other numbers of the same app are skipped.
    phone_number_id: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        require("phone_number_id", self.phone_number_id)
