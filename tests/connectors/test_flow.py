"""Every platform end to end: signed webhook → stored message → outbox → fake send API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.storage.models import OutboxStatus
from tests.connectors.fakes import CASES, Case, eventually, free_port
from tests.connectors.harness import Harness, customer_messages, outbox_rows

ids = [c.connector for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=ids)
async def test_valid_message_is_answered_through_the_send_api(
    make_harness: Any, case: Case
) -> None:
    h: Harness = await make_harness(case)
    resp = await h.post_valid()
    assert resp.status == 200, await resp.text()
    await eventually(lambda: h.fake.requests)
    sent = h.fake.requests[0]
    assert case.reply_of(sent) == f"echo: {case.text}"
    assert case.recipient_of(sent) == case.expected_recipient
    assert await customer_messages(h.db) == 1
    rows = await eventually(lambda: _all_sent(h))
    assert rows[0].attempts == 1 and rows[0].sent_at is not None


async def _all_sent(h: Harness) -> Any:
    rows = await outbox_rows(h.db)
    return rows if rows and all(r.status == OutboxStatus.SENT for r in rows) else None


def _bad_requests(case: Case) -> list[str]:
    kinds = ["missing_signature", "wrong_signature", "malformed_body"]
    kinds += ["tampered_body"] if case.signs_body else []
    return [*kinds, "stale_timestamp"] if case.timestamped else kinds


BAD = [(c, kind) for c in CASES for kind in _bad_requests(c)]


@pytest.mark.parametrize(("case", "kind"), BAD, ids=[f"{c.connector}-{k}" for c, k in BAD])
async def test_bad_requests_are_refused_and_store_nothing(
    make_harness: Any, case: Case, kind: str
) -> None:
    h: Harness = await make_harness(case)
    body = case.body()
    if kind == "missing_signature":
        headers = {k: v for k, v in case.sign(body, h.url).items() if k == "Content-Type"}
    elif kind == "wrong_signature":
        headers = case.forged(body, h.url)
    elif kind == "tampered_body":
        headers = case.sign(body, h.url)
        body = body.replace(b"order", b"ORDER")
    elif kind == "stale_timestamp":
        headers = case.sign(body, h.url, age_s=600)
    else:  # correctly signed, but not the platform's format
        body = b"{not json" if not case.form else b"%%%=&&"
        headers = case.sign(body, h.url)
    resp = await h.post(body, headers)
    expected = 400 if kind == "malformed_body" else 401
    assert resp.status == expected, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == ("bad_request" if expected == 400 else "unauthorized")
    assert h.inbound_calls == []
    assert await customer_messages(h.db) == 0
    assert await outbox_rows(h.db) == []


@pytest.mark.parametrize("case", CASES, ids=ids)
async def test_a_redelivered_message_is_processed_once(make_harness: Any, case: Case) -> None:
    h: Harness = await make_harness(case)
    first = await h.post_valid()
    retry_headers = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    second = await h.post_valid(**(retry_headers if case.connector == "slack" else {}))
    assert (first.status, second.status) == (200, 200)
    assert len(h.inbound_calls) == 2  # both verified and parsed...
    assert await customer_messages(h.db) == 1  # ...stored once
    await eventually(lambda: _all_sent(h))
    h.worker.wake()
    await asyncio.sleep(0.1)  # a second reply would have been sent by now
    assert len(h.fake.requests) == 1
    assert len(await outbox_rows(h.db)) == 1


@pytest.mark.parametrize("case", CASES, ids=ids)
async def test_send_api_down_then_recovering_delivers_once_across_a_restart(
    make_harness: Any, aiohttp_server: Any, case: Case
) -> None:
    port = free_port()
    h: Harness = await make_harness(case, fake_port=port, start_fake=False)
    assert (await h.post_valid()).status == 200

    # Nothing listens on the platform's port: connection refused, retried with backoff.
    rows = await eventually(lambda: _failed_once(h))
    assert "cannot reach" in (rows[0].last_error or "")

    await h.worker.stop()  # the server goes down with the reply still unsent
    h.fake.fail_next(case.server_error.status, case.server_error.body, case.server_error.headers)
    h.fake.fail_next(case.rate_limited.status, case.rate_limited.body, case.rate_limited.headers)
    await aiohttp_server(h.fake.app, port=port)  # the platform comes back, still unwell
    await h.restart_worker()  # a new worker instance on the same database

    rows = await eventually(lambda: _all_sent(h), within_s=8)
    assert len(h.fake.requests) == 3  # 500, 429, then accepted: exactly one successful send
    throttled_at, accepted_at = h.fake.requests[1].at, h.fake.requests[2].at
    assert accepted_at - throttled_at >= 0.95  # waited as the 429 asked, not the tiny backoff
    assert case.reply_of(h.fake.requests[2]) == f"echo: {case.text}"
    assert rows[0].attempts >= 4
    await asyncio.sleep(0.1)
    assert len(h.fake.requests) == 3


async def _failed_once(h: Harness) -> Any:
    rows = await outbox_rows(h.db)
    return rows if rows and rows[0].attempts >= 1 and rows[0].last_error else None


def test_cases_cover_every_builtin_connector() -> None:
    from connectors.registration import connector_names

    assert sorted(c.connector for c in CASES) == connector_names()
