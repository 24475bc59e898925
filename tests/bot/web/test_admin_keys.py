"""The admin page's API-key row in a real browser: listed, revoked, refused at once."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Browser, expect

from tests.bot.web.conftest import BROWSER_LOOP, StartServer
from tests.bot.web.pages import TIMEOUT_MS, collect_errors, sign_in

pytestmark = BROWSER_LOOP


async def test_admin_revokes_an_agent_key_from_the_page(
    browser: Browser, start_server: StartServer
) -> None:
    server = await start_server()
    page = await (await browser.new_context(viewport={"width": 1280, "height": 1000})).new_page()
    errors = collect_errors(page)
    page.on("dialog", lambda dialog: dialog.accept())  # "Revoke the agent key of alice?"
    await sign_in(page, f"{server.url}/admin", server.admin_key)
    rows = page.locator("#api-keys tr[data-key-id]")
    await expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    alice = rows.filter(has_text="alice")
    await expect(alice.locator(".badge")).to_have_text("active")

    await alice.get_by_role("button", name="Revoke").click()
    await expect(alice.locator(".badge")).to_have_text("revoked", timeout=TIMEOUT_MS)
    await expect(alice.get_by_role("button")).to_have_count(0)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.url}/api/v1/agent/me",
            headers={"Authorization": f"Bearer {server.agent_key}"},
        ) as res,
    ):
        assert res.status == 401
    assert errors == []
