"""Take the README's picture: the demo page's widget in a short conversation with a running server.

    deskbot prepare && deskbot serve &          # or `make run`
    python docs/screenshot.py http://127.0.0.1:8080 docs/screenshot.png

Needs Playwright and Chromium (DESKBOT_TEST_CHROMIUM, default /usr/bin/chromium).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys

from playwright.async_api import async_playwright, expect

CONVERSATION = ("I want to cancel my order", "it's ORD-5521")


async def main(url: str, out: str) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=os.environ.get("DESKBOT_TEST_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox"],
        )
        page = await browser.new_page(viewport={"width": 1100, "height": 680})
        await page.goto(f"{url.rstrip('/')}/")
        await page.get_by_role("button", name=re.compile("^Open chat")).click()
        box = page.get_by_label("Your message")
        for n, text in enumerate(CONVERSATION, 1):
            await box.fill(text)
            await box.press("Enter")
            replies = page.locator("#deskbot-widget .msg.bot[data-id]")
            await expect(replies).to_have_count(n, timeout=120_000)
        # The answer is long: show the conversation from its first message.
        first = page.locator("#deskbot-widget .msg.customer").first
        await first.evaluate("el => el.scrollIntoView({block: 'start'})")
        await page.wait_for_timeout(800)
        await page.screenshot(path=out)
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
