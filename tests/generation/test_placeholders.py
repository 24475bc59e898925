from __future__ import annotations

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
    assert stream.missing == ["Website URL"]
