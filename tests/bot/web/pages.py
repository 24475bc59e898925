"""Small helpers that drive the pages the way a person does: by role, label and visible text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

TIMEOUT_MS = 30_000  # generous: the CPU is often shared with training jobs


async def open_widget(page: Page, base_url: str) -> None:
    await page.goto(f"{base_url}/")
    await page.get_by_role("button", name=re.compile("^Open chat")).click()
    await expect(page.get_by_label("Your message")).to_be_focused()


async def send(page: Page, text: str) -> None:
    box = page.get_by_label("Your message")
    await box.fill(text)
    await box.press("Enter")


def widget_messages(page: Page, role: str) -> Any:
    """Messages the server stored (they carry data-id), of one role, in the widget."""
    return page.locator(f"#deskbot-widget .msg.{role}[data-id]")


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(url)
    await page.get_by_label(re.compile("API key")).fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#app")).to_be_visible(timeout=TIMEOUT_MS)


async def screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5_000, f"{name}.png looks empty"
    return path


def collect_dialogs(page: Page) -> list[str]:
    """Record (and dismiss) any alert/confirm the page opens: XSS would show up here."""
    seen: list[str] = []

    async def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def collect_errors(page: Page) -> list[str]:
    """Uncaught script errors on the page; a test ends by asserting there were none."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors
