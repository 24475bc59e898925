"""The knowledge-gaps page in Chromium against the real server: topics ranked by size, the
examples still needed, accepting a topic as a new intent and dismissing one."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect
from sqlmodel import col, select

from bot.storage.db import Database
from bot.storage.models import Message, TrainingRun
from tests.bot.gap_fixtures import GIFT_ANSWER, stored_topics
from tests.bot.web.conftest import BROWSER_LOOP, StartServer
from tests.bot.web.pages import TIMEOUT_MS, collect_dialogs, collect_errors, sign_in

pytestmark = BROWSER_LOOP


async def test_gaps_page_lists_accepts_and_dismisses(
    browser: Browser, start_server: StartServer
) -> None:
    server = await start_server()
    db = Database(server.database_url)
    try:
        topics = await stored_topics(db)
    finally:
        await db.dispose()
    page = await browser.new_page()
    errors, dialogs = collect_errors(page), collect_dialogs(page)
    await sign_in(page, f"{server.url}/admin/gaps", server.admin_key)

    opens = page.get_by_role("button", name=re.compile("^Open topic"))
    await expect(opens).to_have_text(["gift card", "buy bitcoin"], timeout=TIMEOUT_MS)
    rows = page.locator("#topics tbody tr")
    await expect(rows.first).to_contain_text("12")
    await expect(rows.first).to_contain_text("+500% (2 before)")
    await expect(rows.first).to_contain_text("new")

    # Too few examples: the page says how many more, and accepting is not offered.
    await page.get_by_role("button", name="Open topic buy bitcoin").click()
    await expect(page.locator("#detail")).to_contain_text("7 more examples needed")
    await expect(page.get_by_role("button", name="Accept and retrain")).to_be_disabled()

    await page.get_by_role("button", name="Open topic gift card").click()
    await expect(page.locator("#detail .examples li")).to_have_count(5)
    answer = page.get_by_label("Answer", exact=True)
    await expect(answer).to_have_value(GIFT_ANSWER)
    await page.get_by_label(re.compile("^Ask in a branch")).check()
    await expect(answer).to_have_value("Ask in a branch.")
    await page.get_by_label(re.compile("^Gift cards are sold")).check()
    await page.get_by_label("Intent name").fill("gift_cards")
    await page.get_by_role("button", name="Accept and retrain").click()
    await expect(page.locator("#flash")).to_contain_text(
        "accepted as gift_cards", timeout=TIMEOUT_MS
    )
    await expect(opens).to_have_text(["buy bitcoin"], timeout=TIMEOUT_MS)

    await page.get_by_role("button", name="Open topic buy bitcoin").click()
    await page.get_by_role("button", name="Dismiss topic").click()
    await expect(page.locator("#topics")).to_contain_text("No open topics.", timeout=TIMEOUT_MS)
    await page.get_by_label("Show").select_option("accepted")
    await expect(opens).to_have_text(["gift card"], timeout=TIMEOUT_MS)

    db = Database(server.database_url)
    try:
        async with db.session() as s:
            labels = (
                await s.exec(
                    select(Message.corrected_intent).where(
                        col(Message.id).in_(topics["gift"].message_ids)
                    )
                )
            ).all()
            runs = (await s.exec(select(TrainingRun.kind, TrainingRun.status))).all()
    finally:
        await db.dispose()
    assert set(labels) == {"gift_cards"}
    assert runs == [("retrain", "queued")]
    assert errors == [] and dialogs == []
