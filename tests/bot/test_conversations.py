"""Whole conversations through real HTTP: small talk, values across turns, clarification,
out-of-domain lines, handoff that nobody takes, and the state surviving a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.api.common import SERVICES
from bot.auth import create_api_key
from bot.settings import load_settings
from bot.storage.models import Conversation, Message
from tests.bot.test_server import say, start

ASK_CANCEL = "I want to cancel my order"  # the sample answers hold {{Order Number}}
UNSURE = "I have a question about my order"  # cancel, change or track: the sample cannot tell


async def client_for(aiohttp_client: Any, home: Path, embedder: Any, **sections: Any) -> Any:
    from bot.app import create_app

    settings = load_settings(
        home=home,
        server={"policy": "hybrid"},
        generation={"backend": "off"},
        **sections,
    )
    return await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))


async def stored(client: Any, model: type, row_id: int) -> Any:
    async with client.app[SERVICES].db.session() as s:
        return await s.get(model, row_id)


async def test_greet_ask_give_the_order_number_and_get_the_filled_answer(
    make_client: Any,
) -> None:
    client = await make_client()
    conv, auth = await start(client)
    hello = (await say(client, conv, auth, "hi"))["reply"]
    assert hello["status"] == "sent" and hello["action"] == "smalltalk"
    assert "help" in hello["text"].lower()

    asked = (await say(client, conv, auth, ASK_CANCEL))["reply"]
    assert asked["status"] == "sent" and asked["action"] == "ask"
    assert asked["intent"] == "cancel_order" and "order number" in asked["text"]
    state = (await stored(client, Conversation, conv)).state
    assert state["pending"]["slot"] == "Order Number"
    assert state["pending"]["intent"] == "cancel_order"

    body = await say(client, conv, auth, "ORD-5521")
    filled = body["reply"]
    assert filled["status"] == "sent" and filled["action"] == "fill"
    assert filled["intent"] == "cancel_order"
    assert "ORD-5521" in filled["text"] and "{{" not in filled["text"]
    customer = await stored(client, Message, body["message"]["id"])
    # The decision records the state it was made in: the value was pending.
    assert customer.details["state"]["pending"]["slot"] == "Order Number"
    assert customer.details["dialogue"]["act"] == "fill"
    state = (await stored(client, Conversation, conv)).state
    assert state["pending"] is None and state["slots"] == {"Order Number": "ORD-5521"}

    thanks = (await say(client, conv, auth, "thanks a lot!"))["reply"]
    assert thanks["status"] == "sent" and thanks["action"] == "smalltalk"


async def test_misspelt_greetings_and_closers_are_small_talk_not_follow_ups(
    make_client: Any,
) -> None:
    client = await make_client()
    conv, auth = await start(client)
    hello = (await say(client, conv, auth, "hullo"))["reply"]
    assert hello["status"] == "sent" and hello["action"] == "smalltalk"
    asked = (await say(client, conv, auth, ASK_CANCEL))["reply"]
    assert asked["intent"] == "cancel_order"
    await say(client, conv, auth, "ORD-5521")
    # "it" makes this look like a follow-up on the topic; every word is a social word.
    for text in ("nope thats it. thanks again.", "ok great. thnx."):
        reply = (await say(client, conv, auth, text))["reply"]
        assert reply["status"] == "sent" and reply["action"] == "smalltalk", text


async def test_a_bare_value_after_an_answer_without_its_slot_stays_on_the_topic(
    make_client: Any,
) -> None:
    client = await make_client()
    conv, auth = await start(client)
    answered = (await say(client, conv, auth, "what is your refund policy?"))["reply"]
    assert answered["status"] == "sent" and answered["action"] == "answer"
    topic = answered["intent"]
    # Not re-classified on its own: the number is a detail of the same topic.
    body = await say(client, conv, auth, "uh 954487")
    reply = body["reply"]
    assert reply["status"] == "sent" and reply["action"] == "fill", reply
    assert reply["intent"] == topic and "954487" in reply["text"]
    state = (await stored(client, Conversation, conv)).state
    assert state["active_intent"] == topic
    assert "954487" in state["slots"].values()


async def test_value_in_a_sentence_and_a_greeting_mixed_with_a_question(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    asked = (await say(client, conv, auth, "hello, " + ASK_CANCEL))["reply"]
    assert asked["action"] == "ask" and asked["intent"] == "cancel_order"
    filled = (await say(client, conv, auth, "sure, my order number is 88123"))["reply"]
    assert filled["action"] == "fill" and "88123" in filled["text"]


async def test_clarification_answered_through_a_quick_reply(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    unsure = (await say(client, conv, auth, UNSURE))["reply"]
    assert unsure["status"] == "sent" and unsure["action"] == "clarify"
    labels = unsure["quick_replies"]
    assert len(labels) >= 3 and labels[-1] == "Something else"
    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    assert listed["messages"][-1]["quick_replies"] == labels  # the widget draws them again

    offered = (await stored(client, Conversation, conv)).state["clarify"]["options"]
    assert len(offered) == len(labels) - 1  # one button per intent, then "Something else"

    picked = (await say(client, conv, auth, labels[1]))["reply"]
    state = (await stored(client, Conversation, conv)).state
    assert picked["status"] == "sent" and picked["action"] in ("answer", "ask")
    assert picked["intent"] == offered[1]  # the button pressed, not a guess at its text
    assert state["clarify"] is None and state["active_intent"] == offered[1]


async def test_clarification_that_fails_twice_hands_off(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    assert (await say(client, conv, auth, UNSURE))["reply"]["action"] == "clarify"
    again = (await say(client, conv, auth, "5"))["reply"]
    assert again["action"] == "clarify" and again["quick_replies"]
    last = (await say(client, conv, auth, "9"))["reply"]
    assert last["status"] == "handoff"
    assert (await stored(client, Conversation, conv)).status == "handoff"


async def test_something_else_hands_off(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    assert (await say(client, conv, auth, UNSURE))["reply"]["action"] == "clarify"
    assert (await say(client, conv, auth, "Something else"))["reply"]["status"] == "handoff"


async def test_out_of_domain_line_gets_what_the_bot_can_do_and_a_person_on_offer(
    make_client: Any,
) -> None:
    client = await make_client()
    conv, auth = await start(client)
    ood = (await say(client, conv, auth, "what's the weather in Paris?"))["reply"]
    assert ood["status"] == "sent" and ood["action"] == "capabilities"
    assert "can help with" in ood["text"] and ood["quick_replies"] == ["Talk to a person"]
    person = (await say(client, conv, auth, "Talk to a person"))["reply"]
    assert person["status"] == "handoff"


async def test_explicit_request_for_a_human_hands_off_at_once(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    await say(client, conv, auth, ASK_CANCEL)  # even with a value pending
    reply = (await say(client, conv, auth, "I want to talk to a human"))["reply"]
    assert reply["status"] == "handoff"


async def test_handoff_nobody_takes_tells_the_customer_once(
    aiohttp_client: Any, home: Path, embedder: Any
) -> None:
    client = await client_for(
        aiohttp_client, home, embedder, handoff={"wait_s": 0.2, "check_every_s": 0.05}
    )
    conv, auth = await start(client)
    assert (await say(client, conv, auth, "agent please"))["reply"]["status"] == "handoff"
    for _ in range(100):
        listed = await (
            await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
        ).json()
        if len(listed["messages"]) >= 3:
            break
        await asyncio.sleep(0.05)
    texts = [m["text"] for m in listed["messages"]]
    assert len(texts) == 3 and "leave a message" in texts[-1]
    await asyncio.sleep(0.3)  # several more checks: told once only
    assert await client.app[SERVICES].pipeline.tell_waiting_handoffs() == 0
    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    assert len(listed["messages"]) == 3


async def test_handoff_outside_business_hours_says_so_at_once(
    aiohttp_client: Any, home: Path, embedder: Any
) -> None:
    # One minute a week: almost surely closed now; skip the minute it is open.
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    day = "Mon" if now.weekday() != 0 else "Tue"
    client = await client_for(
        aiohttp_client, home, embedder, handoff={"hours": f"{day} 03:00-03:01"}
    )
    conv, auth = await start(client)
    reply = (await say(client, conv, auth, "agent please"))["reply"]
    assert reply["status"] == "handoff" and "away right now" in reply["text"]
    assert f"{day} 03:00-03:01" in reply["text"]


async def test_agent_handback_resumes_the_bot_with_a_fresh_state(make_client: Any) -> None:
    client = await make_client()
    db = client.app[SERVICES].db
    agent = {"Authorization": f"Bearer {await create_api_key(db, 'Ada', 'agent')}"}
    conv, auth = await start(client)
    await say(client, conv, auth, ASK_CANCEL)
    assert (await say(client, conv, auth, "real person please"))["reply"]["status"] == "handoff"
    seen = await (await client.get(f"/api/v1/agent/conversations/{conv}", headers=agent)).json()
    assert seen["conversation"]["state"]["active_intent"] == "cancel_order"  # agents see it
    assert (await client.post(f"/api/v1/agent/conversations/{conv}/claim", headers=agent)).ok
    assert (await client.post(f"/api/v1/agent/conversations/{conv}/handback", headers=agent)).ok
    assert (await stored(client, Conversation, conv)).state == {}
    reply = (await say(client, conv, auth, "hello"))["reply"]
    assert reply["status"] == "sent" and reply["action"] == "smalltalk"


async def test_state_survives_a_server_restart_between_turns(
    aiohttp_client: Any, home: Path, embedder: Any
) -> None:
    first = await client_for(aiohttp_client, home, embedder)
    conv, auth = await start(first)
    assert (await say(first, conv, auth, ASK_CANCEL))["reply"]["action"] == "ask"
    await first.close()  # the process goes; the state is in the database

    second = await client_for(aiohttp_client, home, embedder)
    filled = (await say(second, conv, auth, "ORD-777"))["reply"]
    assert filled["action"] == "fill" and "ORD-777" in filled["text"]
