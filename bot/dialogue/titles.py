"""How intents read to customers: quick-reply labels and the "what I can help with" line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Titles for the intents of the bundled sample (the Bitext customer-support set); any other
# label reads as its words ("reset_pin" -> "Reset pin") unless ``dialogue.intent_titles``
# names it.
DEFAULT_TITLES: Mapping[str, str] = {
    "cancel_order": "Cancel an order",
    "change_order": "Change an order",
    "place_order": "Place an order",
    "track_order": "Track an order",
    "delivery_period": "Delivery times",
    "delivery_options": "Delivery options",
    "change_shipping_address": "Change the shipping address",
    "set_up_shipping_address": "Set up a shipping address",
    "get_refund": "Get a refund",
    "track_refund": "Track a refund",
    "check_refund_policy": "Refund policy",
    "check_cancellation_fee": "Cancellation fees",
    "get_invoice": "Get an invoice",
    "check_invoice": "Check an invoice",
    "payment_issue": "A payment problem",
    "check_payment_methods": "Payment methods",
    "create_account": "Create an account",
    "delete_account": "Delete an account",
    "edit_account": "Edit your account",
    "switch_account": "Switch accounts",
    "recover_password": "Recover a password",
    "registration_problems": "Problems signing up",
    "newsletter_subscription": "The newsletter",
    "complaint": "Make a complaint",
    "review": "Leave a review",
    "contact_customer_service": "Contact customer service",
    "contact_human_agent": "Talk to a person",
    "human_agent": "Talk to a person",
}


def title(intent: str, overrides: Mapping[str, str] | None = None) -> str:
    if overrides and intent in overrides:
        return overrides[intent]
    if intent in DEFAULT_TITLES:
        return DEFAULT_TITLES[intent]
    words = intent.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def capabilities(
    intents: Iterable[str], overrides: Mapping[str, str] | None = None, most: int = 6
) -> str:
    """A short list of what the bot can help with, from the intents it knows."""
    titles = []
    for intent in intents:
        if not intent:
            continue
        t = title(intent, overrides)
        if t not in titles and t != "Talk to a person":
            titles.append(t)
    titles = [t[:1].lower() + t[1:] for t in titles[:most]]
    if not titles:
        return "questions about our products and services"
    if len(titles) == 1:
        return titles[0]
    return ", ".join(titles[:-1]) + " and more"
