"""Quick replies: the short choices a bot reply offers, rendered per platform.

A reply carries them as ``OutboundMessage.meta["quick_replies"]``: a list of short labels
("Cancel an order", "Something else"). Platforms with buttons show buttons; the others get
the labels as a numbered list appended to the text. Whatever the customer picks comes back
as an ordinary customer message whose text is the full label (or its number, for numbered
text), so the dialogue manager needs no per-platform code.

Several platforms cap a button title below our label length; those connectors show a cut
title and carry the full label in the button's payload, and :func:`pressed_label` reads the
label back only when the title is the cut of that payload (a button of ours).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from connectors.base import fit_text

log = logging.getLogger("deskbot.connectors")

META_KEY = "quick_replies"
# Generous: the bot offers at most 4; more would crowd every platform's UI.
MAX_QUICK_REPLIES = 10


def clean_quick_replies(value: Any) -> list[str]:
    """The labels in ``value`` if it is a list of non-empty strings, else ``[]``.

    Labels are stripped, duplicates dropped (a press must identify one label) and the list
    capped at :data:`MAX_QUICK_REPLIES`. Anything malformed is ignored as a whole: a reply
    without buttons is better than buttons that do not match what the bot offered.
    """
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        log.warning("ignoring malformed quick replies %r", value)
        return []
    labels = list(dict.fromkeys(v.strip() for v in value))
    if len(labels) > MAX_QUICK_REPLIES:
        log.warning("%d quick replies cut to %d", len(labels), MAX_QUICK_REPLIES)
    return labels[:MAX_QUICK_REPLIES]


def quick_replies_meta(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """The outbound ``meta`` for a stored reply's ``details``: ``{}`` when it offers none."""
    labels = clean_quick_replies((details or {}).get(META_KEY))
    return {META_KEY: labels} if labels else {}


def quick_replies_of(meta: Mapping[str, Any]) -> list[str]:
    """The labels an outbound message offers (validated again: the outbox row is data)."""
    return clean_quick_replies(meta.get(META_KEY))


def shorten(label: str, limit: int) -> str:
    """``label`` cut to ``limit`` characters with an ellipsis, for capped button titles."""
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def pressed_label(title: str | None, payload: str | None, limit: int) -> str | None:
    """The label behind a pressed button: the payload when the title is its cut, else the title.

    A button sent by another system on the same account carries a payload of its own; its
    title, which the customer saw, is then the better text.
    """
    if payload and title is not None and shorten(payload, limit) == title:
        return payload
    return title or payload


def numbered_text(text: str, labels: list[str], limit: int | None = None) -> str:
    """``text`` followed by the labels as a numbered list and a prompt to answer by number.

    With ``limit``, the text is cut (never the choices) so the whole fits the platform.
    """
    if not labels:
        return text if limit is None else fit_text(text, limit)
    choices = "\n".join(f"{i}. {label}" for i, label in enumerate(labels, 1))
    tail = f"\n\n{choices}\nReply with a number."
    if limit is None:
        return text + tail
    if len(tail) >= limit:  # absurdly low limit: the choices alone, cut
        return fit_text(tail.lstrip("\n"), limit)
    return fit_text(text, limit - len(tail)) + tail
