"""Errors a connector raises while sending; the delivery worker retries or gives up on them."""

from __future__ import annotations

from bot.errors import BackendUnavailableError, SettingsError


class DeliveryError(BackendUnavailableError):
    """A platform did not accept an outbound message.

    ``retryable`` says whether trying again later can help (network errors, 5xx, 429);
    ``retry_after`` is the platform's own wait in seconds, when it gave one.
    """

    code = "delivery_failed"
    retryable = False

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status=status, retry_after=retry_after)
        self.http_status = status
        self.retry_after = retry_after


class RetryableDeliveryError(DeliveryError):
    """Try again later: the platform was unreachable, failed (5xx) or throttled us (429)."""

    code = "delivery_retry"
    retryable = True


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: bad token, unknown recipient, blocked bot, message rejected."""

    code = "delivery_rejected"


class ChannelConfigError(SettingsError, ValueError):
    """A channel option is missing or bad; a ``ValueError`` too so pydantic reports its key."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"option {option!r}: {problem}", option=option)
        self.option = option
