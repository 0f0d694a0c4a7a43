"""The WebSocket protocol over a real Hypercorn server, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket as stdlib_socket
import time
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage

from sora_actors.hub import DropReason, TaskEvent
from sora_actors.server import Running, run_server
from sora_actors.settings import Settings
from sora_actors.storage import Task
from tests.conftest import TEST_SECRET, make_settings
from tests.harness import LiveServer, live_server
from tests.wsclient import Message, ResilientClient, Session, ws_url

FAST = {"simulator_time_scale": 60, "polling_speedup": 20}


def ws_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Test settings without WebSocket pings: Hypercorn keeps a closed connection's ping
    task (and so the server's graceful shutdown) waiting for one ping interval."""
    return make_settings(tmp_path, database_url, **{"ws_ping_seconds": 0, **overrides})


TERMINAL_TYPES = ("taskCompleted", "taskFailed", "taskCancelled")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return ws_settings(tmp_path, database_url, **FAST)


async def token_of(server: LiveServer, username: str) -> str:
    headers = await server.user(username)
    return headers["Authorization"].removeprefix("Bearer ")


async def create_task(server: LiveServer, token: str, prompt: str = "a red fox") -> dict[str, Any]:
    response = await server.client.post(
        "/api/video/tasks",
        json={"prompt": prompt, "duration": 5},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def is_event_of(video_id: str) -> Any:
    return lambda m: m["type"].startswith("task") and m["payload"].get("videoId") == video_id


def assert_envelope(message: Message) -> None:
    assert set(message) <= {"type", "id", "timestamp", "payload", "_connection"}
    assert isinstance(message["type"], str)
    assert isinstance(message["timestamp"], int) and message["timestamp"] > 1_700_000_000_000
    assert isinstance(message["payload"], dict)


async def test_old_page_sequence_through_completion(server: LiveServer) -> None:
    token = await token_of(server, "alice")
    task = await create_task(server, token)
    video_id = task["videoId"]
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        connected = await session.recv()
        assert connected["type"] == "connected"
        assert connected["payload"]["connectionId"]
        assert connected["payload"]["serverVersion"] == server.services.version
        assert "subscribe_task" in connected["payload"]["capabilities"]
        # The old page: auth, then subscribe_task ~100 ms later, without waiting for a reply.
        auth_id = await session.send("auth", {"token": token})
        await trio.sleep(0.1)
        sub_id = await session.send("subscribe_task", {"videoId": video_id})
        messages = await session.recv_until(lambda m: m["type"] in TERMINAL_TYPES, timeout=60)
    for message in messages:
        assert_envelope(message)
    kinds = [m["type"] for m in messages]
    assert kinds[:3] == ["authSuccess", "subscribeSuccess", "taskStatus"], kinds
    auth, ack, snapshot = messages[:3]
    assert auth["id"] == auth_id
    assert auth["payload"]["username"] == "alice"
    assert set(auth["payload"]) == {"userId", "username", "sessionId", "expiresAt"}
    assert ack["id"] == sub_id and ack["payload"] == {"videoId": video_id, "subscribed": True}
    assert snapshot["payload"]["videoId"] == video_id
    assert "externalVideoId" in snapshot["payload"]
    done = messages[-1]
    assert done["type"] == "taskCompleted", messages[-3:]
    payload = done["payload"]
    assert payload["videoId"] == video_id
    assert payload["externalVideoId"] and payload["externalVideoId"].startswith("video_")
    assert payload["status"] == "completed" and payload["progress"] == 100
    assert payload["result"]["duration"] == 5 and payload["result"]["resolution"] == "720x1280"
    assert "videoUrl" in payload["result"]
    assert payload["metrics"]["totalTime"] >= payload["metrics"]["processTime"] >= 0
    # Every task event carries both ids and seq; seqs increase, progress never goes back.
    events = messages[2:]
    assert all({"videoId", "externalVideoId", "seq"} <= set(m["payload"]) for m in events)
    seqs = [m["payload"]["seq"] for m in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert any(m["type"] == "taskProgress" for m in events)
    progress = [m["payload"]["progress"] for m in events]
    assert progress == sorted(progress)


async def test_users_are_isolated(server: LiveServer) -> None:
    token_a = await token_of(server, "anna")
    token_b = await token_of(server, "bert")
    async with (
        open_websocket_url(ws_url(server.base_url)) as conn_a,
        open_websocket_url(ws_url(server.base_url)) as conn_b,
    ):
        a, b = Session(conn_a), Session(conn_b)
        await a.recv()
        await b.recv()
        assert (await a.auth(token_a))["type"] == "authSuccess"
        assert (await b.auth(token_b))["type"] == "authSuccess"
        await a.send("subscribe_tasks")
        await b.send("subscribe_tasks")
        assert (await a.recv())["type"] == "subscribeTasksSuccess"
        assert (await b.recv())["type"] == "subscribeTasksSuccess"
        task = await create_task(server, token_a)
        video_id = task["videoId"]
        # B asks for A's task by id: an error, as for a task that does not exist.
        denied_id = await b.send("subscribe_task", {"videoId": video_id})
        denied = await b.recv()
        assert denied["type"] == "error" and denied["id"] == denied_id
        assert denied["payload"]["code"] == "TASK_NOT_FOUND"
        missing_id = await b.send("subscribe_task", {"videoId": "video_nope"})
        missing = await b.recv()
        assert missing["id"] == missing_id and missing["payload"] == denied["payload"] | {
            "message": "No task video_nope."
        }
        # A sees its task through to the end (via subscribe_tasks, a task created later).
        a_events = await a.recv_until(lambda m: m["type"] in TERMINAL_TYPES, timeout=60)
        assert a_events[-1]["payload"]["videoId"] == video_id
        # B heard nothing at all about it: within a ping round trip, only its pong.
        ping_id = await b.send("ping")
        rest = await b.recv_until(lambda m: m.get("id") == ping_id)
        assert [m["type"] for m in rest] == ["pong"]
        assert video_id not in json.dumps(b.received[4:-1])


async def test_subscribe_before_auth_and_bad_frames(server: LiveServer) -> None:
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()
        early = await session.send("subscribe_task", {"videoId": "video_x"})
        reply = await session.recv()
        assert reply["type"] == "error" and reply["id"] == early
        assert reply["payload"]["code"] == "AUTH_REQUIRED"
        await connection.send_message("{not json")
        assert (await session.recv())["payload"]["code"] == "INVALID_JSON"
        await connection.send_message("[1, 2]")
        assert (await session.recv())["payload"]["code"] == "INVALID_MESSAGE"
        await connection.send_message(json.dumps({"id": "n1", "payload": {}}))
        no_type = await session.recv()
        assert no_type["payload"]["code"] == "INVALID_MESSAGE" and no_type["id"] == "n1"
        unknown = await session.send("launch_rockets", {})
        reply = await session.recv()
        assert reply["type"] == "error" and reply["id"] == unknown
        assert reply["payload"]["code"] == "UNKNOWN_TYPE"
        await connection.send_message(json.dumps({"type": "auth", "id": 7, "payload": []}))
        assert (await session.recv())["id"] == 7
        missing = await session.send("auth", {})
        reply = await session.recv()
        assert reply["id"] == missing and reply["payload"]["code"] == "VALIDATION_ERROR"
        bad = await session.send("auth", {"token": "garbage"})
        reply = await session.recv()
        assert reply["type"] == "authFailed" and reply["id"] == bad
        assert reply["payload"]["code"] == "INVALID_TOKEN" and reply["payload"]["error"]
        for message in session.received:
            assert_envelope(message)
            assert "Traceback" not in json.dumps(message)
        # A binary frame closes the connection with 1003.
        await connection.send_message(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            await session.recv()
        assert closed.value.reason.code == 1003


async def test_oversized_message_closes_with_1009(tmp_path: Path, sqlite_url: str) -> None:
    settings = ws_settings(tmp_path, sqlite_url, ws_max_message_bytes=4096)
    async with (
        live_server(settings) as server,
        open_websocket_url(ws_url(server.base_url)) as connection,
    ):
        session = Session(connection)
        await session.recv()
        await session.send("auth", {"token": "x" * 10_000})
        with pytest.raises(ConnectionClosed) as closed:
            await session.recv()
        assert closed.value.reason.code == 1009


async def test_query_token_auth_expired_token_and_auth_timeout(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = ws_settings(tmp_path, sqlite_url, ws_auth_timeout_seconds=0.5)
    async with live_server(settings) as server:
        token = await token_of(server, "carl")
        async with open_websocket_url(ws_url(server.base_url, f"token={token}")) as connection:
            session = Session(connection)
            assert (await session.recv())["type"] == "connected"
            success = await session.recv()
            assert success["type"] == "authSuccess" and "id" not in success
            await trio.sleep(0.8)  # past the auth timeout: authenticated, so still open
            assert (await session.auth(token))["type"] == "authSuccess"

        user_id = success["payload"]["userId"]
        expired = jwt.encode({"sub": user_id, "sid": "s", "exp": 1_000_000_000}, TEST_SECRET)
        async with open_websocket_url(ws_url(server.base_url)) as connection:
            session = Session(connection)
            await session.recv()
            refused = await session.auth(expired)
            assert refused["type"] == "authFailed"
            assert refused["payload"]["code"] == "TOKEN_EXPIRED"
            # Still unauthenticated: closed at the auth timeout with 4408 and a reason.
            with pytest.raises(ConnectionClosed) as closed:
                await session.recv(timeout=5)
            assert closed.value.reason.code == 4408
            assert "auth" in (closed.value.reason.reason or "")
        assert server.services.runtime.hub.connections == 0


async def test_token_expiring_while_connected_closes_with_4401(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The hub's sweeper (started by the runtime) drops the subscriber; /ws says 4401."""
    async with live_server(ws_settings(tmp_path, sqlite_url)) as server:
        token = await token_of(server, "dora")
        claims = jwt.decode(token, options={"verify_signature": False})
        exp = int(time.time()) + 2
        # The login's own session (a token must name a stored one), expiring sooner.
        short = jwt.encode({"sub": claims["sub"], "sid": claims["sid"], "exp": exp}, TEST_SECRET)
        async with open_websocket_url(ws_url(server.base_url)) as connection:
            session = Session(connection)
            await session.recv()
            assert (await session.auth(short))["type"] == "authSuccess"
            with pytest.raises(ConnectionClosed) as closed:
                await session.recv(timeout=10)
            assert time.time() >= exp
            assert closed.value.reason.code == 4401
            assert "expired" in (closed.value.reason.reason or "")
        assert server.services.runtime.hub.statistics().dropped == 1


async def test_heartbeat(tmp_path: Path, sqlite_url: str) -> None:
    settings = ws_settings(tmp_path, sqlite_url, ws_heartbeat_seconds=0.2)
    async with (
        live_server(settings) as server,
        open_websocket_url(ws_url(server.base_url)) as connection,
    ):
        session = Session(connection)
        await session.recv()
        beats = [
            (await session.recv_until(lambda m: m["type"] == "heartbeat", skip_heartbeats=False))[
                -1
            ]
            for _ in range(2)
        ]
        for beat in beats:
            assert beat["payload"]["connectedClients"] == 1
            assert beat["payload"]["uptime"] >= 0
        assert beats[1]["timestamp"] > beats[0]["timestamp"]


async def test_reconnect_mid_task_loses_nothing(server: LiveServer) -> None:
    token = await token_of(server, "dora")
    task = await create_task(server, token)
    video_id = task["videoId"]
    client = ResilientClient(server.base_url, token, [video_id])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        first = await client.wait_for(
            lambda m: m["type"] == "taskProgress" and m["payload"]["seq"] >= 3
        )
        assert first["_connection"] == 1
        await client.drop()
        await client.wait_for(lambda m: m["_connection"] >= 2 and m["type"] == "taskStatus")
        await client.wait_for(lambda m: m["type"] in TERMINAL_TYPES, timeout=60)
        nursery.cancel_scope.cancel()
    assert client.connections >= 2
    later = [m for m in client.messages if m["_connection"] == client.connections]
    kinds = [m["type"] for m in later]
    assert kinds[:3] == ["authSuccess", "subscribeSuccess", "taskStatus"], kinds
    snapshot_seq = later[2]["payload"]["seq"]
    events = [m for m in later[3:] if m["type"] != "heartbeat"]
    seqs = [m["payload"]["seq"] for m in events]
    assert seqs == list(range(snapshot_seq + 1, snapshot_seq + 1 + len(seqs))), seqs
    assert events[-1]["type"] == "taskCompleted" and events[-1]["payload"]["videoId"] == video_id
    # The final state equals what REST says.
    stored = await server.client.get(
        f"/api/video/tasks/{video_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert stored.json()["data"]["seq"] == seqs[-1]


async def test_cancelled_task_sends_progress_then_cancelled(server: LiveServer) -> None:
    token = await token_of(server, "emil")
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()
        await session.auth(token)
        task = await create_task(server, token)
        video_id = task["videoId"]
        await session.subscribe(video_id)
        response = await server.client.post(
            f"/api/video/tasks/{video_id}/cancel", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        messages = await session.recv_until(lambda m: m["type"] in TERMINAL_TYPES)
    last_two = messages[-2:]
    assert [m["type"] for m in last_two] == ["taskProgress", "taskCancelled"]
    assert last_two[0]["payload"]["status"] == "CANCELLED"
    assert last_two[1]["payload"]["status"] == "cancelled"
    assert last_two[0]["payload"]["seq"] == last_two[1]["payload"]["seq"]
    assert last_two[1]["payload"]["videoId"] == video_id


# -- slow consumers ---------------------------------------------------------------------


async def open_stalled_client(base_url: str, token: str, video_id: str) -> trio.SocketStream:
    """A client that authenticates, subscribes and then never reads (tiny receive buffer)."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=host, target=f"/ws?token={token}")))
    while not any(isinstance(event, AcceptConnection) for event in ws.events()):
        ws.receive_data(await stream.receive_some(1024))
    for kind, payload in (("subscribe_task", {"videoId": video_id}),):
        text = json.dumps({"type": kind, "id": "s1", "payload": payload})
        await stream.send_all(ws.send(TextMessage(data=text)))
    return stream


def fake_events(task: Task, count: int) -> list[TaskEvent]:
    """``count`` progress events after ``task``, then a completion."""
    events = [
        TaskEvent(
            dataclasses.replace(
                task, seq=task.seq + i, status="PROCESSING", progress=min(98, i * 98 // count)
            ),
            f"progress {i}",
        )
        for i in range(1, count + 1)
    ]
    done = dataclasses.replace(
        task, seq=task.seq + count + 1, status="COMPLETED", progress=100, phase="COMPLETED"
    )
    return [*events, TaskEvent(done, "completed")]


async def test_slow_consumer_neither_delays_others_nor_grows(
    tmp_path: Path, database_url: str
) -> None:
    queue_size = 32
    settings = ws_settings(
        tmp_path,
        database_url,
        ws_send_queue_size=queue_size,
        ws_stuck_seconds=1.0,
        simulator_time_scale=0.001,  # the real actor stays quiet; we publish ourselves
    )
    async with live_server(settings) as server:
        hub = server.services.runtime.hub
        token = await token_of(server, "fred")
        created = await create_task(server, token)
        # Cancelled, so that its actor is gone and the only events are the ones we publish.
        cancelled = await server.client.post(
            f"/api/video/tasks/{created['videoId']}/cancel",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert cancelled.status_code == 200
        task = await server.services.storage.tasks.get(created["videoId"])
        assert task is not None
        stalled = await open_stalled_client(server.base_url, token, task.video_id)
        with trio.fail_after(10):
            while not any(task.video_id in s.tasks for s in hub.subscribers()):
                await trio.sleep(0.01)
        (slow,) = [s for s in hub.subscribers() if task.video_id in s.tasks]
        async with open_websocket_url(ws_url(server.base_url)) as connection:
            fast = Session(connection)
            await fast.recv()
            await fast.auth(token)
            _, snapshot = await fast.subscribe(task.video_id)
            base = dataclasses.replace(task, seq=snapshot["payload"]["seq"])
            events = fake_events(base, 3000)
            for index, event in enumerate(events):
                hub.publish(event)
                if index % 10 == 0:  # let the fast client's sender run, as actors would
                    await trio.lowlevel.checkpoint()
            received = await fast.recv_until(lambda m: m["type"] == "taskCompleted", timeout=30)
            # The fast client got the terminal event while the slow one is still stuck
            # on the same task (it has not even drained its socket).
            assert received[-1]["payload"]["seq"] == events[-1].task.seq
            queue = slow.statistics()
            assert queue.high_water <= queue_size + 1
            assert queue.coalesced > 0
            assert slow.dropped in (None, DropReason.TOO_SLOW)
            # Stuck past ws_stuck_seconds: the server gives up on it and forgets its queue.
            with trio.fail_after(10):
                while not slow.closed:
                    await trio.sleep(0.05)
            assert slow.dropped is DropReason.TOO_SLOW and slow.queued == 0
            assert slow not in hub.subscribers()
        await stalled.aclose()


async def test_pings_are_sent(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, ws_ping_seconds=0.1)
    async with live_server(settings) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=host, target="/ws")))
        pings = 0
        with trio.fail_after(5):
            while pings < 2:
                ws.receive_data(await stream.receive_some(4096))
                pings += sum(isinstance(event, Ping) for event in ws.events())
        await stream.aclose()


async def handshake(server: LiveServer, target: str) -> list[Any]:
    """Open a raw WebSocket handshake to ``target``; the server's first answer events."""
    host, port = server.base_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=host, target=target)))
    events: list[Any] = []
    with trio.fail_after(5):
        while not events:
            data = await stream.receive_some(4096)
            if not data:
                break
            ws.receive_data(data)
            events.extend(ws.events())
    await stream.aclose()
    return events


async def test_ws_upgrade_is_observed_and_other_paths_are_not_ours(
    tmp_path: Path, sqlite_url: str
) -> None:
    """/ws is served in front of Quart: the upgrade still carries a request id, and a
    WebSocket to any other path is left to Quart (which has no route for it)."""
    async with live_server(ws_settings(tmp_path, sqlite_url)) as server:
        accepted = (await handshake(server, "/ws?token=x"))[0]
        assert isinstance(accepted, AcceptConnection)
        assert any(name == b"x-request-id" and value for name, value in accepted.extra_headers)

        refused = (await handshake(server, "/ws/other"))[0]
        assert not isinstance(refused, AcceptConnection)
        assert getattr(refused, "status_code", None) == 404


async def test_shutdown_closes_clients_with_1001_without_waiting_out_the_grace(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A WebSocket never ends by itself: stopping the server closes it (1001, going away),
    so the drain does not sit out its grace period (30 s here; the bound below is 20 s)."""
    settings = ws_settings(tmp_path, sqlite_url, shutdown_grace_seconds=30.0)
    stop = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(
                partial(run_server, settings, host="127.0.0.1", port=0, shutdown_trigger=stop.wait)
            )
            url = running.url.replace("http://", "ws://") + "/ws"
            async with open_websocket_url(url) as connection:
                assert json.loads(await connection.get_message())["type"] == "connected"
                stop.set()
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await connection.get_message()
                assert closed.value.reason.code == 1001
                assert closed.value.reason.reason == "the server is shutting down"


async def read_until_closed(session: Session) -> tuple[list[Message], int | None]:
    """Every message until the server closes; and the close code."""
    seen: list[Message] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            seen.append(await session.recv())
    return seen, closed.value.reason.code


async def test_message_flood_gets_an_error_then_a_close(tmp_path: Path, sqlite_url: str) -> None:
    """6,500 messages in 13 s used to be processed, every one."""
    settings = ws_settings(tmp_path, sqlite_url, ws_messages_per_second=5, ws_message_burst=20)
    async with live_server(settings) as server:
        token = await token_of(server, "flooder")
        async with open_websocket_url(ws_url(server.base_url)) as connection:
            session = Session(connection)
            await session.recv_type("connected")
            assert (await session.auth(token))["type"] == "authSuccess"  # message 1 of 20

            async def flood() -> None:
                with contextlib.suppress(ConnectionClosed):
                    for _ in range(200):
                        await session.send("ping")

            # Read while sending: a flood still unread by the server when it closes the
            # socket makes its kernel reset the connection, and a reset discards what the
            # client had not read yet (the error and the close frame).
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                seen, code = await read_until_closed(session)
        pongs = [m for m in seen if m["type"] == "pong"]
        errors = [m for m in seen if m["type"] == "error"]
        assert code == 4429
        assert [e["payload"]["code"] for e in errors] == ["RATE_LIMITED"]
        assert seen[-1] == errors[0]  # the last word before the close
        assert len(pongs) < 50  # the burst (19 after auth) and what refilled meanwhile

        # Others are unaffected, and the flooder may come back.
        async with open_websocket_url(ws_url(server.base_url)) as connection:
            session = Session(connection)
            await session.recv_type("connected")
            assert (await session.auth(token))["type"] == "authSuccess"


async def test_subscriptions_are_capped_per_connection_and_per_user(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = ws_settings(
        tmp_path,
        sqlite_url,
        ws_max_subscriptions_per_connection=2,
        ws_max_subscriptions_per_user=3,
        **FAST,
    )
    async with live_server(settings) as server:
        token = await token_of(server, "hoarder")
        videos = [(await create_task(server, token))["videoId"] for _ in range(4)]

        async def session_of(connection: Any) -> Session:
            session = Session(connection)
            await session.recv_type("connected")
            assert (await session.auth(token))["type"] == "authSuccess"
            return session

        async with open_websocket_url(ws_url(server.base_url)) as connection:
            one = await session_of(connection)
            await one.subscribe(videos[0])
            await one.subscribe(videos[1])
            await one.subscribe(videos[1])  # the same task again holds no second place
            third = await one.send("subscribe_task", {"videoId": videos[2]})
            seen, code = await read_until_closed(one)
        refusal = [m for m in seen if m["type"] == "error"]
        assert code == 4429
        assert [(m["id"], m["payload"]["code"]) for m in refusal] == [
            (third, "TOO_MANY_SUBSCRIPTIONS")
        ]
        assert "per connection" in refusal[0]["payload"]["message"]

        async with (
            open_websocket_url(ws_url(server.base_url)) as first,
            open_websocket_url(ws_url(server.base_url)) as second,
        ):
            two, three = await session_of(first), await session_of(second)
            await two.subscribe(videos[0])
            await two.subscribe(videos[1])
            await three.subscribe(videos[2])  # the user's third
            fourth = await three.send("subscribe_task", {"videoId": videos[3]})
            seen, code = await read_until_closed(three)
            refusal = [m for m in seen if m["type"] == "error"]
            assert code == 4429
            assert [(m["id"], m["payload"]["code"]) for m in refusal] == [
                (fourth, "TOO_MANY_SUBSCRIPTIONS")
            ]
            assert "per user" in refusal[0]["payload"]["message"]
            # The other connection keeps its subscriptions and is still served.
            ping = await two.send("ping")
            assert (await two.recv_until(lambda m: m.get("id") == ping))[-1]["type"] == "pong"
