from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bot.generation.placeholders import PlaceholderStream, extract_values, fill

ANSWER = (
    "I understand you want to cancel order {{Order Number}}. Open the "
    "'{{Online Order Interaction}}' section on our {{Website URL}}, or call "
    "{{Customer Support Phone Number}} during {{Customer Support Hours}}."
)


def test_order_number_from_the_conversation_fills_the_slot():
    history = [
        ("customer", "Hi, I ordered a lamp last week."),
        ("bot", "How can I help with your order?"),
        ("customer", "please cancel order #ORD-48213, it has not shipped"),
    ]
    text, missing = fill(ANSWER, history)
    assert "ORD-48213" in text
    assert "{{" not in text and "}}" not in text
    assert "Order Number" not in missing
    assert "order number" not in text.lower()  # nothing to ask for


def test_missing_order_number_is_asked_for_and_reworded():
    text, missing = fill(ANSWER, [("customer", "cancel my order")])
    assert "{{" not in text
    assert missing[0] == "Order Number"
    assert "cancel your order." in text
    assert text.endswith("Could you please share your order number?")
    assert "our website" in text and "'Orders'" in text


def test_agent_turns_are_not_a_source_of_values():
    text, missing = fill("Order {{Order Number}} is on its way.", [("agent", "order 99999")])
    assert "99999" not in text
    assert missing == ["Order Number"]


def test_emails_phones_names_and_amounts():
    values = extract_values(
        ["My name is Ann Lee, reach me at ann.lee@example.com or +1 555 123 4567. I paid $45.20"]
    )
    assert values["email"] == "ann.lee@example.com"
    assert values["phone number"] == "+1 555 123 4567"
    assert values["client last name"] == "Lee"
    text, _ = fill(
        "Dear {{Client First Name}}, your refund of {{Currency Symbol}}{{Refund Amount}} "
        "goes to {{Email}}.",
        [("customer", "My name is Ann Lee, ann.lee@example.com, I paid $45.20")],
    )
    assert text == "Dear Ann, your refund of $45.20 goes to ann.lee@example.com."


def test_company_facts_fill_company_slots():
    text, missing = fill(
        "Call {{Customer Support Phone Number}}.",
        [],
        facts={"Customer Support Phone Number": "0800 1"},
    )
    assert text == "Call 0800 1."
    assert missing == []


def test_unknown_and_broken_slots_never_leak_braces():
    text, _ = fill("Go to {{Settings}} then {{Some Odd Thing}} and {{broken", [])
    assert "{" not in text and "}" not in text
    assert "Settings" in text


def test_stream_filter_holds_slots_split_across_pieces():
    stream = PlaceholderStream([("customer", "order ORD-777 is late")])
    pieces = ["Your order {", "{Order", " Number}", "} ships from {{Web", "site URL}}. {x} ok"]
    out = "".join(stream.feed(p) for p in pieces) + stream.finish()
    assert out == "Your order ORD-777 ships from our website. {x} ok"
    assert stream.missing == []  # the website is the company's, not the customer's to give


def _streamed(stream: PlaceholderStream, text: str) -> tuple[str, list[str]]:
    """Feed ``text`` in token-sized pieces (1-4 characters after any spaces)."""
    pieces = [stream.feed(p) for p in re.findall(r"\s*\S{1,4}", text)]
    pieces.append(stream.finish())
    assert not any("{{" in p or "}}" in p for p in pieces)
    return "".join(pieces), pieces


def test_stream_preview_reads_as_the_final_reply():
    """Rewording before a slot reaches text already streamed: the stream holds it back."""
    history = [("customer", "where is my parcel?")]
    answer = (
        "I can look into your order with the order number {{Order Number}} right away. You "
        "can also follow it on our website at {{Website URL}} any time."
    )
    text, pieces = _streamed(PlaceholderStream(history), answer)
    assert text == fill(answer, history, ask=False)[0]
    assert text == (
        "I can look into your order right away. You can also follow it on our website any time."
    )
    assert sum(1 for p in pieces if p) > 5  # still streamed, not all at the end


def test_stream_previews_match_the_final_text_for_the_bundled_answers():
    """Every bundled Bitext answer with slots streams to the text the final fill gives."""
    sample = Path(__file__).resolve().parents[3] / "examples" / "sample_pairs.csv"
    with open(sample, encoding="utf-8", newline="") as f:
        answers = [row["response"] for row in csv.DictReader(f) if "{{" in row["response"]]
    assert len(answers) > 100
    history = [("customer", "order ORD-777 is late; I'm Ann Lee, ann@example.com")]
    for answer in answers:
        text, _ = _streamed(PlaceholderStream(history), answer)
        assert " ".join(text.split()) == " ".join(fill(answer, history, ask=False)[0].split())


def test_stream_filter_reports_only_values_the_customer_must_give():
    stream = PlaceholderStream([("customer", "where is my parcel?")])
    pieces = ["Order {{Order", " Number}} is in '{{Custom Order Details}}' on {{Website URL}}."]
    out = "".join(stream.feed(p) for p in pieces) + stream.finish()
    assert "{" not in out and "'Custom Order Details'" in out
    assert stream.missing == ["Order Number"]


# Sentences from Bitext answers (../shared/data/bitext/bitext_cs_train.csv.gz, CDLA-Sharing-1.0;
# data row and intent given) whose slot only names a thing the sentence already named.
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (  # row 4, cancel_order
            "You can reach us during {{Customer Support Hours}} at {{Customer Support Phone "
            "Number}}, or you can connect with us using the Live Chat feature on our website at "
            "{{Website URL}}.",
            "You can reach us during our business hours at our customer support phone line, or "
            "you can connect with us using the Live Chat feature on our website.",
        ),
        (  # row 22416, track_order: the slot is doubled in the data
            "I take note that you need help checking the current status of your order with the "
            "number {{Order Number}} {{Order Number}}.",
            "I take note that you need help checking the current status of your order.",
        ),
        (  # row 3577, check_invoice
            "I certainly recognize your confusion about locating the invoice with the number "
            "#{{Invoice Number}}.",
            "I certainly recognize your confusion about locating the invoice.",
        ),
        (  # row 11065, delivery_options: "helpline" names the phone line, ", {{...}}" apposition
            "Reach out to them through our helpline at {{Customer Support Phone Number}} or via "
            "the Live Chat option on our website, {{Website URL}}.",
            "Reach out to them through our helpline or via the Live Chat option on our website.",
        ),
        (  # row 17973, recover_password: the quotes go with the slot
            'Start by visiting our platform\'s login page at "{{Login Page URL}}".',
            "Start by visiting our platform's login page.",
        ),
        (  # row 14471, get_refund: the "$" goes with the amount
            "I'm sensitive to the fact that you are seeking a refund of ${{Refund Amount}}.",
            "I'm sensitive to the fact that you are seeking a refund.",
        ),
    ],
    ids=["website", "doubled-order", "invoice-number", "helpline-apposition", "quoted", "amount"],
)
def test_slot_naming_what_the_sentence_already_named_is_dropped(answer, expected):
    text, _ = fill(answer, [], ask=False)
    assert text == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (  # row 12, cancel_order: "your" + "our website"
            "Access Your Account: Log in to your {{Online Company Portal Info}} using your "
            "credentials.",
            "Access Your Account: Log in to our website using your credentials.",
        ),
        (  # row 329, cancel_order: the phrase does not repeat "customer support"
            "To assist you further, I recommend reaching out to our customer support team at "
            "{{Customer Support Phone Number}} or through the Live Chat on our website at "
            "{{Website URL}}.",
            "To assist you further, I recommend reaching out to our customer support team at our "
            "phone line or through the Live Chat on our website.",
        ),
        (  # row 8970, create_account: the emptied slot takes "a" to "an"
            "Thank you for your interest in creating a {{Account Type}} account for your daughter!",
            "Thank you for your interest in creating an account for your daughter!",
        ),
    ],
    ids=["determiner", "modifiers", "article"],
)
def test_rewording_reads_naturally_where_the_text_brings_its_own_words(answer, expected):
    text, _ = fill(answer, [], ask=False)
    assert text == expected


def test_values_the_answer_asks_for_itself_are_named_once_and_not_asked_again():
    # row 11656, delivery_period
    answer = "Could you please provide us with the {{Tracking Number}} or {{Order Number}}?"
    text, missing = fill(answer, [("customer", "when will it arrive?")])
    assert text == "Could you please provide us with your tracking number or your order number?"
    assert missing == ["Tracking Number", "Order Number"]


def test_slot_after_an_unrelated_noun_is_still_reworded():
    text, _ = fill("Visit {{Website URL}} or ask our team about {{Order Number}}.", [], ask=False)
    assert text == "Visit our website or ask our team about your order."


def test_labels_and_company_facts_are_not_reported_missing():
    answer = (
        "Dear {{Client First Name}}, open '{{Custom Order Details}}' under '{{Settings}}' on "
        "{{Website URL}} to see order {{Order Number}}, or call {{Customer Support Phone Number}} "
        "during {{Customer Support Hours}}. We will write to {{Email}} about account "
        "{{Account Number}}."
    )
    text, missing = fill(answer, [("customer", "I can't find my order")])
    assert "'Custom Order Details'" in text and "'Settings'" in text and "{" not in text
    assert missing == ["Client First Name", "Order Number", "Email", "Account Number"]
    labels_only, none_missing = fill("Open '{{Custom Order Details}}' in {{Settings}}.", [])
    assert none_missing == []
    assert labels_only == "Open 'Custom Order Details' in Settings."  # nothing asked for
