"""The pages in a real browser against the real server with the bundled sample data.

Set ``DESKBOT_UPDATE_SCREENSHOTS=1`` to copy the screenshots into ``docs/`` for the README.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, expect

from tests.bot.web.conftest import BROWSER_LOOP, SAMPLE_PAIRS, LiveServer, StartServer
from tests.bot.web.pages import (
    TIMEOUT_MS,
    collect_dialogs,
    collect_errors,
    open_widget,
    screenshot,
    send,
    sign_in,
    widget_messages,
)
from tests.conftest import REPO_ROOT

pytestmark = BROWSER_LOOP

DOCS = REPO_ROOT / "docs"


def keep_for_docs(path: Path, name: str) -> None:
    if os.environ.get("DESKBOT_UPDATE_SCREENSHOTS") == "1":
        shutil.copy2(path, DOCS / name)


def sample_question(intent: str) -> str:
    """The shortest question of ``intent`` in the sample data."""
    with SAMPLE_PAIRS.open(encoding="utf-8") as fh:
        questions = [row["instruction"] for row in csv.DictReader(fh) if row["intent"] == intent]
    assert questions, f"no sample question for {intent}"
    return min(questions, key=len)


async def stored_conversation(page: Page) -> tuple[int, str]:
    saved = await page.evaluate(
        """() => {
          const key = Object.keys(localStorage).find(k => k.startsWith('deskbot.conversation:'));
          return key ? JSON.parse(localStorage.getItem(key)) : null;
        }"""
    )
    assert saved is not None, "the widget did not keep its conversation in localStorage"
    return saved["id"], saved["token"]


async def api_messages(server: LiveServer, conv_id: int, token: str) -> list[dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.url}/api/v1/conversations/{conv_id}/messages",
            headers={"Authorization": f"Bearer {token}"},
        ) as res,
    ):
        assert res.status == 200
        return (await res.json())["messages"]


async def test_customer_asks_a_sample_question_and_sees_the_answer(
    browser: Browser, start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    page = await browser.new_page()
    errors = collect_errors(page)
    await open_widget(page, server.url)
    question = sample_question("check_payment_methods")
    await send(page, question)

    answer = widget_messages(page, "bot").last
    await expect(answer).to_be_visible(timeout=TIMEOUT_MS)
    await expect(widget_messages(page, "customer")).to_have_text([re.compile(re.escape(question))])
    conv_id, token = await stored_conversation(page)
    stored = [m for m in await api_messages(server, conv_id, token) if m["role"] == "bot"]
    assert len(stored) == 1
    # What the customer sees is exactly the reply the server stored, as plain text.
    assert (await answer.locator(".body").text_content()) == stored[0]["text"]
    assert "payment" in stored[0]["text"].lower()
    keep_for_docs(await screenshot(page, tmp_path, "widget"), "widget.png")

    # A reload keeps the conversation: same id, history shown again, still live.
    await page.reload()
    await page.get_by_role("button", name=re.compile("^Open chat")).click()
    await expect(widget_messages(page, "bot")).to_have_count(1, timeout=TIMEOUT_MS)
    assert (await stored_conversation(page))[0] == conv_id
    await send(page, sample_question("track_order"))
    await expect(widget_messages(page, "bot")).to_have_count(2, timeout=TIMEOUT_MS)
    assert errors == []


async def test_handoff_reaches_a_live_agent_and_the_reply_reaches_the_customer(
    browser: Browser, start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    agent_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    agent = await agent_ctx.new_page()
    agent_errors = collect_errors(agent)
    await sign_in(agent, f"{server.url}/agent", server.agent_key)
    await expect(agent.locator("#live")).to_have_text("live", timeout=TIMEOUT_MS)
    await expect(agent.locator("#queue-list li")).to_have_count(0)

    customer_ctx = await browser.new_context()
    customer = await customer_ctx.new_page()
    await open_widget(customer, server.url)
    await send(customer, "I want to talk to a human")
    notices = customer.locator("#deskbot-widget .msg.system, #deskbot-widget .notice")
    await expect(notices).to_contain_text([re.compile("agent", re.I)], timeout=TIMEOUT_MS)
    conv_id, _ = await stored_conversation(customer)

    # The agent, who has not reloaded, sees it arrive in the queue.
    item = agent.locator(f'#queue-list button[data-conversation="{conv_id}"]')
    await expect(item).to_be_visible(timeout=TIMEOUT_MS)
    await expect(item).to_contain_text("hand-off")
    await item.click()
    history = agent.locator("#history li.customer")
    await expect(history).to_contain_text(["I want to talk to a human"])
    await agent.get_by_role("button", name="Take over").click()
    await expect(agent.locator("#conversation")).to_contain_text(
        "assigned to alice", timeout=TIMEOUT_MS
    )
    await agent.get_by_label("Reply to the customer").fill("Hi, this is Alice. How can I help?")
    await agent.get_by_role("button", name="Send reply").click()

    # The customer, who has not reloaded either, sees the agent's reply arrive.
    reply = widget_messages(customer, "agent")
    await expect(reply).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(reply.locator(".body")).to_have_text("Hi, this is Alice. How can I help?")

    # The customer's next message shows up live in the agent's open conversation.
    await send(customer, "My card was charged twice")
    await expect(agent.locator("#history li.customer").last).to_have_text(
        re.compile("charged twice"), timeout=TIMEOUT_MS
    )
    keep_for_docs(await screenshot(agent, tmp_path, "agent"), "agent.png")

    # Hand back: the bot answers again and the customer is asked to rate the conversation.
    await agent.get_by_role("button", name="Hand back to bot").click()
    await expect(customer.get_by_text("How would you rate this conversation?")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    await customer.get_by_role("button", name="5 out of 5").click()
    await expect(customer.get_by_text("Thank you for rating us 5 out of 5.")).to_be_visible()
    assert agent_errors == []


async def test_agent_edits_a_suggestion_and_the_customer_sees_the_edit(
    browser: Browser, start_server: StartServer
) -> None:
    server = await start_server(policy="assist")
    agent = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await sign_in(agent, f"{server.url}/agent", server.agent_key)
    customer = await (await browser.new_context()).new_page()
    await open_widget(customer, server.url)
    await send(customer, sample_question("cancel_order"))
    await expect(customer.get_by_text(re.compile("agent is checking the answer"))).to_be_visible(
        timeout=TIMEOUT_MS
    )
    conv_id, _ = await stored_conversation(customer)

    item = agent.locator(f'#queue-list button[data-conversation="{conv_id}"]')
    await expect(item).to_contain_text("suggestion", timeout=TIMEOUT_MS)
    await item.click()
    card = agent.locator("[data-suggestion]")
    await expect(card).to_have_count(1)
    await expect(card.locator(".intent")).to_have_text("cancel_order")
    await expect(card.locator(".confidence")).to_have_text(re.compile(r"^\d+\.\d%$"))
    await expect(card.locator(".grounding")).to_have_text(re.compile(r"^\d\.\d\d$"))
    assert await card.locator(".sources > li").count() >= 1

    edited = "You can cancel it under Orders > Cancel. Edited by Alice."
    await card.get_by_label(re.compile("^Reply")).fill(edited)
    send_button = card.locator("button.send-suggestion")
    await expect(send_button).to_have_text("Send edited reply")
    await send_button.click()
    await expect(agent.locator("[data-suggestion]")).to_have_count(0, timeout=TIMEOUT_MS)

    shown = customer.locator("#deskbot-widget .msg[data-id] .body", has_text=edited)
    await expect(shown).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(shown).to_have_text(edited)


async def test_admin_sees_models_charts_and_starts_a_training_run(
    browser: Browser, start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as http:  # some traffic so the charts have a point
        async with http.post(f"{server.url}/api/v1/conversations", json={}) as res:
            conv = await res.json()
        for text in ("how can I cancel my order?", "I want to talk to a human"):
            async with http.post(
                f"{server.url}/api/v1/conversations/{conv['id']}/messages",
                json={"text": text},
                headers={"Authorization": f"Bearer {conv['token']}"},
            ) as res:
                assert res.status == 200

    page = await (await browser.new_context(viewport={"width": 1280, "height": 1000})).new_page()
    errors = collect_errors(page)
    await sign_in(page, f"{server.url}/admin", server.admin_key)
    row = page.locator('#models tr[data-kind="index"][data-version="sample"]')
    await expect(row).to_be_visible(timeout=TIMEOUT_MS)
    await expect(row.locator(".badge")).to_have_text("active")
    await expect(row).to_contain_text("count")
    chart = page.locator("#chart-rates svg[role=img]")
    await expect(chart).to_be_visible()
    assert await page.locator("#chart-rates path.series").count() >= 1
    await expect(page.locator("#kpis")).to_contain_text("Messages")

    await page.get_by_label("Kind").select_option("index")
    await page.get_by_role("button", name="Start training").click()
    run = page.locator("#runs tr[data-run]").first
    await expect(run).to_contain_text("index", timeout=TIMEOUT_MS)
    await expect(run.locator(".badge")).to_have_text("queued")
    await page.evaluate("window.scrollTo(0, 0)")
    keep_for_docs(await screenshot(page, tmp_path, "admin"), "admin.png")

    # An agent key is refused by the dashboard with a clear message.
    other = await (await browser.new_context()).new_page()
    await other.goto(f"{server.url}/admin")
    await other.get_by_label("Admin API key").fill(server.agent_key)
    await other.get_by_role("button", name="Sign in").click()
    await expect(other.get_by_role("alert")).to_contain_text("needs an admin key")
    assert errors == []


async def test_html_in_a_message_is_shown_as_text_everywhere(
    browser: Browser, start_server: StartServer
) -> None:
    server = await start_server(policy="assist")  # every message reaches the agent queue
    attack = "<img src=x onerror=alert(1)> how do I cancel my order? <b>bold</b>"
    customer = await browser.new_page()
    dialogs = collect_dialogs(customer)
    await open_widget(customer, server.url)
    await send(customer, attack)
    mine = widget_messages(customer, "customer")
    await expect(mine).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(mine.locator(".body")).to_have_text(attack)
    assert await customer.locator("#deskbot-widget img, #deskbot-widget b").count() == 0

    conv_id, _ = await stored_conversation(customer)
    agent = await (await browser.new_context()).new_page()
    agent_dialogs = collect_dialogs(agent)
    await sign_in(agent, f"{server.url}/agent", server.agent_key)
    await agent.locator(f'#queue-list button[data-conversation="{conv_id}"]').click()
    await expect(agent.locator("#history li.customer .text")).to_have_text([attack])
    assert await agent.locator("#app img, #app b").count() == 0
    await customer.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert dialogs == [] and agent_dialogs == []


async def test_customer_clicks_a_quick_reply_to_clarify(
    browser: Browser, start_server: StartServer
) -> None:
    server = await start_server()
    page = await browser.new_page()
    errors = collect_errors(page)
    await open_widget(page, server.url)
    await send(page, "I have a question about my order")

    buttons = page.locator("#deskbot-widget .quick button")
    await expect(buttons.last).to_have_text("Something else", timeout=TIMEOUT_MS)
    labels = await buttons.all_text_contents()
    assert len(labels) >= 3
    await buttons.nth(0).click()

    # The label goes as the customer's message, the buttons go, and the choice is answered.
    await expect(widget_messages(page, "customer").last).to_have_text(
        re.compile(re.escape(labels[0])), timeout=TIMEOUT_MS
    )
    await expect(page.locator("#deskbot-widget .quick")).to_have_count(0)
    conv_id, token = await stored_conversation(page)
    for _ in range(100):
        stored = [m for m in await api_messages(server, conv_id, token) if m["role"] == "bot"]
        if len(stored) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(stored) == 2 and not stored[1]["quick_replies"]
    await expect(widget_messages(page, "bot").last.locator(".body")).to_have_text(
        stored[1]["text"], timeout=TIMEOUT_MS
    )
    assert errors == []
