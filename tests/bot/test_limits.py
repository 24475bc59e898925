"""Limits for the public internet (issue 20): each test goes one past its limit."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlmodel import select

from bot.api.common import SERVICES, client_ip
from bot.errors import ImportFileError
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Feedback,
    Message,
    TrainingRun,
    utcnow,
)
from tests.bot.test_server import count, keys, open_stream, read_events, say, start

CANCEL = "How can I cancel my order?"


async def post_message(client: Any, conv: int, auth: dict[str, str], text: str = CANCEL) -> Any:
    return await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": text}, headers=auth
    )


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body["error"]) >= {"code", "message"}
    return body["error"]


# -- widget metadata and bodies -----------------------------------------------------------------


async def test_widget_meta_takes_only_allowlisted_keys_up_to_its_size(make_client: Any) -> None:
    client = await make_client(widget_meta_bytes=40)
    ok = await client.post("/api/v1/conversations", json={"meta": {"page": "x" * 28}})
    assert ok.status == 201  # {"page": "xxx..."} is exactly 40 bytes of JSON
    before = await count(client, Conversation)
    too_big = await client.post("/api/v1/conversations", json={"meta": {"page": "x" * 29}})
    assert "limit is 40" in (await error_of(too_big, 400))["message"]
    unknown = await client.post("/api/v1/conversations", json={"meta": {"evil": "1"}})
    assert "'evil'" in (await error_of(unknown, 400))["message"]
    nested = await client.post("/api/v1/conversations", json={"meta": {"page": {"a": 1}}})
    await error_of(nested, 400)
    assert await count(client, Conversation) == before


async def test_public_bodies_are_capped(make_client: Any) -> None:
    client = await make_client(max_body_bytes=4096, max_message_chars=10_000)
    conv, auth = await start(client)
    before = await count(client, Message)
    envelope = len(json.dumps({"text": ""}))
    fits = await post_message(client, conv, auth, "a" * (4096 - envelope))
    assert fits.status == 200, await fits.text()
    over = await post_message(client, conv, auth, "a" * (4096 - envelope + 1))
    await error_of(over, 413)
    assert await count(client, Message) == before + 2  # the one that fit and its reply


# -- feedback -----------------------------------------------------------------------------------


async def test_a_second_rating_replaces_the_first(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    reply = (await say(client, conv, auth, CANCEL))["reply"]
    url = f"/api/v1/messages/{reply['id']}/feedback"
    first = await client.post(url, json={"rating": "down"}, headers=auth)
    assert first.status == 201
    second = await client.post(url, json={"rating": "up", "comment": "ok now"}, headers=auth)
    assert second.status == 200 and (await second.json())["replaced"]
    async with client.app[SERVICES].db.session() as s:
        rows = (await s.exec(select(Feedback))).all()
    assert [(r.rating, r.comment) for r in rows] == [(5, "ok now")]


async def test_feedback_is_rate_limited_per_conversation(make_client: Any) -> None:
    client = await make_client(feedback_per_conversation=0.01, feedback_burst=3)
    conv, auth = await start(client)
    reply = (await say(client, conv, auth, CANCEL))["reply"]
    url = f"/api/v1/messages/{reply['id']}/feedback"
    for _ in range(3):
        assert (await client.post(url, json={"rating": 4}, headers=auth)).status in (200, 201)
    over = await client.post(url, json={"rating": 1}, headers=auth)
    assert (await error_of(over, 429))["code"] == "rate_limited"
    async with client.app[SERVICES].db.session() as s:
        assert [r.rating for r in (await s.exec(select(Feedback))).all()] == [4]


# -- replies in flight --------------------------------------------------------------------------


async def test_a_full_server_refuses_with_503_and_stores_nothing(make_client: Any) -> None:
    client = await make_client(max_replies_in_flight=2, overload_retry_after_s=7)
    svc = client.app[SERVICES]
    conv, auth = await start(client)
    svc.replies_in_flight = 1  # one reply being worked on: one slot left
    assert (await post_message(client, conv, auth)).status == 200
    assert svc.replies_in_flight == 1  # the slot was given back
    svc.replies_in_flight = 2  # every slot taken: one past the cap
    before = await count(client, Message)
    resp = await post_message(client, conv, auth)
    assert (await error_of(resp, 503))["code"] == "overloaded"
    assert resp.headers["Retry-After"] == "7"
    assert await count(client, Message) == before


async def test_a_full_server_can_hand_off_instead(make_client: Any) -> None:
    client = await make_client(max_replies_in_flight=1, overload="handoff")
    svc = client.app[SERVICES]
    conv, auth = await start(client)
    svc.replies_in_flight = 1
    body = await say(client, conv, auth, CANCEL)
    assert body["reply"]["status"] == "handoff" and body["reply"]["text"]
    async with svc.db.session() as s:
        stored = await s.get(Message, body["message"]["id"])
        conversation = await s.get(Conversation, conv)
    assert stored.decision == "handoff"
    assert conversation.status == ConversationStatus.HANDOFF


async def test_the_understanding_queue_is_bounded() -> None:
    from bot.batching import MicroBatcher
    from bot.errors import OverloadedError

    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(items: list[int]) -> list[int]:
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result()
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(slow, max_size=1, max_queue=2)
    first = asyncio.create_task(batcher.submit(0))  # taken by the worker
    await asyncio.sleep(0.05)
    waiting = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]  # the queue's two places
    await asyncio.sleep(0.05)
    with pytest.raises(OverloadedError):
        await batcher.submit(3)
    gate.set()
    assert await first == 0 and await asyncio.gather(*waiting) == [1, 2]
    await batcher.close()


def test_the_generation_queue_is_bounded() -> None:
    import threading

    from bot.errors import OverloadedError
    from bot.generation.scheduler import BatchScheduler, Job

    release = threading.Event()
    started = threading.Event()

    class BlockedEngine:
        name, max_batch, stop_ids = "blocked", 1, frozenset()

        def run(self, jobs: list[Job], admit: Any) -> None:
            started.set()
            release.wait(5)
            for job in jobs:
                job.finish("stop")

        def close(self) -> None:
            return None

    scheduler = BatchScheduler(BlockedEngine(), max_batch=1, max_wait_ms=0, max_queue=2)
    done: list[Any] = []

    def job() -> Job:
        return Job([1], 1, detokenizer=None, on_done=done.append)  # type: ignore[arg-type]

    scheduler.submit(job())
    assert started.wait(5)
    scheduler.submit(job())
    scheduler.submit(job())
    with pytest.raises(OverloadedError):
        scheduler.submit(job())
    release.set()
    scheduler.close()
    assert len(done) == 3


# -- event streams ------------------------------------------------------------------------------


async def test_event_streams_are_capped_per_conversation_and_in_total(make_client: Any) -> None:
    client = await make_client(max_streams_per_conversation=2, max_streams=3)
    conv, auth = await start(client)
    streams = [await open_stream(client, conv, auth) for _ in range(2)]
    assert [s.status for s in streams] == [200, 200]
    third = await open_stream(client, conv, auth)
    assert "at most 2" in (await error_of(third, 429))["message"]
    other, other_auth = await start(client)
    streams.append(await open_stream(client, other, other_auth))
    assert streams[-1].status == 200  # three open in all
    fourth = await open_stream(client, other, other_auth)
    assert "too many open event streams" in (await error_of(fourth, 429))["message"]
    streams.pop(0).close()
    for _ in range(50):  # the server notices the closed stream
        again = await open_stream(client, other, other_auth)
        if again.status == 200:
            break
        await asyncio.sleep(0.05)
    assert again.status == 200
    for s in [*streams, again]:
        s.close()


async def test_event_streams_need_a_single_use_ticket(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    token = auth["Authorization"][7:]
    url = f"/api/v1/conversations/{conv}/events"
    await error_of(await client.get(url), 401)
    await error_of(await client.get(f"{url}?token={token}"), 401)  # no credential in a URL
    await error_of(await client.get(f"{url}?ticket=stk_made-up"), 401)
    resp = await client.post(f"{url}/ticket", headers=auth)
    ticket = (await resp.json())["ticket"]
    other, _ = await start(client)
    wrong = await client.get(f"/api/v1/conversations/{other}/events?ticket={ticket}")
    await error_of(wrong, 404)  # a ticket opens its own conversation only, and is spent
    resp = await client.post(f"{url}/ticket", headers=auth)
    ticket = (await resp.json())["ticket"]
    stream = await client.get(f"{url}?ticket={ticket}")
    assert stream.status == 200
    stream.close()
    await error_of(await client.get(f"{url}?ticket={ticket}"), 401)  # used once already


async def test_an_expired_ticket_is_refused(make_client: Any) -> None:
    from bot.storage.models import StreamTicket

    client = await make_client()
    conv, auth = await start(client)
    url = f"/api/v1/conversations/{conv}/events"
    ticket = (await (await client.post(f"{url}/ticket", headers=auth)).json())["ticket"]
    async with client.app[SERVICES].db.session() as s:
        row = (await s.exec(select(StreamTicket))).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
    await error_of(await client.get(f"{url}?ticket={ticket}"), 401)


async def test_the_agent_stream_opens_with_a_ticket_and_never_with_a_key(
    make_client: Any,
) -> None:
    from bot.storage.models import ApiKey

    client = await make_client()
    agent, _ = await keys(client)
    key = agent["Authorization"][7:]
    await error_of(await client.get(f"/api/v1/agent/events?key={key}"), 401)
    ticket = (await (await client.post("/api/v1/agent/events/ticket", headers=agent)).json())[
        "ticket"
    ]
    stream = await client.get(f"/api/v1/agent/events?ticket={ticket}")
    assert stream.status == 200
    stream.close()
    # A key revoked after its ticket was issued opens nothing.
    ticket = (await (await client.post("/api/v1/agent/events/ticket", headers=agent)).json())[
        "ticket"
    ]
    async with client.app[SERVICES].db.session() as s:
        for row in (await s.exec(select(ApiKey))).all():
            row.active = False
            s.add(row)
    await error_of(await client.get(f"/api/v1/agent/events?ticket={ticket}"), 401)


# -- widget tokens and closed conversations -----------------------------------------------------


async def test_a_token_expires_after_the_idle_days(make_client: Any) -> None:
    client = await make_client(conversation_idle_days=1)
    conv, auth = await start(client)
    await say(client, conv, auth, CANCEL)

    async def idle_for(days: float) -> None:
        async with client.app[SERVICES].db.session() as s:
            row = await s.get(Conversation, conv)
            row.updated_at = utcnow() - timedelta(days=days)
            s.add(row)

    await idle_for(0.99)
    assert (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).status == 200
    await idle_for(1.01)
    before = await count(client, Message)
    await error_of(await post_message(client, conv, auth), 401)
    listed = await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
    assert "expired" in (await error_of(listed, 401))["message"]
    await error_of(
        await client.post(f"/api/v1/conversations/{conv}/events/ticket", headers=auth), 401
    )
    assert await count(client, Message) == before


async def test_a_closed_conversation_refuses_new_messages(make_client: Any) -> None:
    client = await make_client()
    conv, auth = await start(client)
    events: list[tuple[str, dict[str, Any]]] = []
    stream = await open_stream(client, conv, auth)
    reader = asyncio.create_task(read_events(stream, events))
    closed = await client.post(f"/api/v1/conversations/{conv}/close", headers=auth)
    assert (await closed.json())["status"] == "closed"
    before = await count(client, Message)
    refused = await post_message(client, conv, auth)
    assert "closed" in (await error_of(refused, 410))["message"]
    assert await count(client, Message) == before
    for _ in range(50):
        if ("status", {"status": "closed"}) in events:
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    stream.close()
    assert ("status", {"status": "closed"}) in events
    other, _ = await start(client)
    await error_of(await client.post(f"/api/v1/conversations/{other}/close", headers=auth), 404)


# -- what the widget is shown -------------------------------------------------------------------


async def test_widget_json_carries_no_agent_names_or_scores(make_client: Any) -> None:
    client = await make_client()
    agent, _ = await keys(client)
    conv, auth = await start(client)
    events: list[tuple[str, dict[str, Any]]] = []
    stream = await open_stream(client, conv, auth)
    reader = asyncio.create_task(read_events(stream, events))
    body = await say(client, conv, auth, CANCEL)
    assert "confidence" not in body["reply"]
    assert set(body["message"]) == {
        "id",
        "conversation_id",
        "role",
        "text",
        "created_at",
        "reply_to",
        "quick_replies",
    }
    assert set(body["reply"]) == {"id", "text", "status", "intent", "action", "quick_replies"}
    await client.post(f"/api/v1/agent/conversations/{conv}/claim", headers=agent)
    sent = await client.post(
        f"/api/v1/agent/conversations/{conv}/messages",
        json={"text": "Hi, I can help with that."},
        headers=agent,
    )
    assert sent.status in (200, 201), await sent.text()
    for _ in range(50):
        if any(e == "message" and d["role"] == "agent" for e, d in events):
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    stream.close()
    listed = await (await client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)).json()
    shown = [d for e, d in events if e == "message"] + listed["messages"]
    assert any(m["role"] == "agent" for m in shown)
    for m in shown:
        assert not {"author", "confidence", "verdict", "intent"} & set(m), m
        assert "Ada" not in json.dumps(m)


# -- proxies ------------------------------------------------------------------------------------


class _App(dict):  # type: ignore[type-arg]
    pass


def _request(make_settings: Any, remote: str, xff: str | None, proxies: list[str]) -> Any:
    from bot.services import Services

    settings = make_settings(trusted_proxies=proxies)
    svc = Services(settings=settings, db=None, runtime=None)  # type: ignore[arg-type]
    app = _App()
    app[SERVICES] = svc
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    request = make_mocked_request("GET", "/", headers=headers, app=app)  # type: ignore[arg-type]
    request._transport_peername = (remote, 1234)  # type: ignore[attr-defined]
    return request


@pytest.mark.parametrize(
    ("remote", "xff", "proxies", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", [], "203.0.113.9"),  # no proxies configured
        ("203.0.113.9", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.9"),  # not from a proxy
        ("10.0.0.2", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", ["10.0.0.0/8"], "1.2.3.4"),  # spoofed left
        ("10.0.0.2", "10.0.0.3", ["10.0.0.0/8"], "10.0.0.2"),  # only proxies
        ("10.0.0.2", "not-an-ip", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", "6.6.6.6, " * 100 + "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),  # padded
        ("10.0.0.2", None, ["10.0.0.0/8"], "10.0.0.2"),
    ],
)
def test_forwarded_for_counts_only_from_trusted_proxies(
    make_settings: Any, remote: str, xff: str | None, proxies: list[str], expected: str
) -> None:
    assert client_ip(_request(make_settings, remote, xff, proxies)) == expected


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(make_client: Any) -> None:
    client = await make_client(trusted_proxies=["127.0.0.1", "::1"], rate_limit_per_ip=0.01)
    # The per-IP burst is twice the rate, rounded down: 0 requests, so any repeat is refused.
    first = await client.post("/api/v1/conversations", headers={"X-Forwarded-For": "1.1.1.1"})
    await error_of(first, 429)
    client = await make_client(trusted_proxies=["127.0.0.1", "::1"], rate_limit_per_ip=1)
    for ip in ("1.1.1.1", "2.2.2.2"):
        ok = await client.post("/api/v1/conversations", headers={"X-Forwarded-For": ip})
        assert ok.status == 201
        ok = await client.post("/api/v1/conversations", headers={"X-Forwarded-For": ip})
        assert ok.status == 201
    third = await client.post("/api/v1/conversations", headers={"X-Forwarded-For": "1.1.1.1"})
    await error_of(third, 429)  # one past 1.1.1.1's burst of 2; 2.2.2.2 was not charged


# -- uploads and admin jobs ---------------------------------------------------------------------


def test_gzip_imports_expand_only_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval import data_files

    monkeypatch.setattr(data_files, "MAX_DECOMPRESSED", 1000)
    header = b"question,answer\n"
    fits = tmp_path / "fits.csv.gz"
    fits.write_bytes(gzip.compress(header + b"q,a\n" * ((1000 - len(header)) // 4)))
    assert data_files.read_text(fits).startswith("question")
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(header + b"x" * (1000 - len(header) + 1)))
    with pytest.raises(ImportFileError, match="more than 1000 bytes"):
        data_files.read_text(bomb)


async def test_admin_job_parameters_are_bounded(make_client: Any) -> None:
    client = await make_client()
    _, admin = await keys(client)
    home = client.app[SERVICES].settings.home
    (home / "train.csv").write_text("text,intent\nhi,greeting\n")
    url = "/api/v1/admin/training-runs"

    async def run(params: dict[str, Any]) -> Any:
        return await client.post(url, json={"kind": "intent", "params": params}, headers=admin)

    ok = await run({"epochs": 100, "data": "train.csv"})
    assert ok.status == 202, await ok.text()
    assert (await ok.json())["params"]["data"] == str((home / "train.csv").resolve())
    before = await count(client, TrainingRun)
    for params, words in [
        ({"epochs": 101}, "between 1 and 100"),
        ({"epochs": 0}, "between 1 and 100"),
        ({"epochs": "3"}, "whole number"),
        ({"data": "../../etc/passwd"}, "inside DESKBOT_HOME"),
        ({"data": "/etc/passwd"}, "inside DESKBOT_HOME"),
        ({"data": "missing.csv"}, "no such file"),
        ({"lr": 1}, "not a parameter"),
    ]:
        resp = await run(params)
        assert words in (await error_of(resp, 400))["message"], params
    assert await count(client, TrainingRun) == before


async def test_admins_see_dead_letters_and_retry_them(make_client: Any) -> None:
    from bot.storage.models import Outbox, OutboxStatus

    client = await make_client()
    agent, admin = await keys(client)
    async with client.app[SERVICES].db.session() as s:
        conv = Conversation(channel="webhook:main", external_id="c1")
        s.add(conv)
        await s.flush()
        s.add(
            Outbox(
                conversation_id=conv.id,
                channel="webhook:main",
                payload={"text": "hello"},
                status=OutboxStatus.FAILED,
                attempts=8,
                last_error="HTTP 500",
            )
        )
    await error_of(await client.get("/api/v1/admin/outbox", headers=agent), 403)
    listed = await (await client.get("/api/v1/admin/outbox", headers=admin)).json()
    [dead] = listed["deliveries"]
    assert dead["text"] == "hello" and dead["last_error"] == "HTTP 500"
    retried = await client.post(f"/api/v1/admin/outbox/{dead['id']}/retry", headers=admin)
    assert (await retried.json())["status"] == "pending"
    again = await client.post(f"/api/v1/admin/outbox/{dead['id']}/retry", headers=admin)
    await error_of(again, 409)
    await error_of(await client.post("/api/v1/admin/outbox/999/retry", headers=admin), 404)
