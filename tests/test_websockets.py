"""WebSockets and Durable Object alarms: the ``chat`` example project (a chat room per
name on a hibernating Durable Object) served by ``alchemy-nb dev`` and driven by a real
WebSocket client, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import DevSession
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

PROJECTS = Path(__file__).resolve().parent / "projects"

pytestmark = pytest.mark.xdist_group("chat")


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DevSession]]:
    folder = tmp_path_factory.mktemp("chat") / "chat"
    shutil.copytree(PROJECTS / "chat", folder)
    with DevSession(folder) as dev:
        yield dev.wait_for_url(), dev


def ws_url(url: str) -> str:
    return "ws" + url.removeprefix("http")


def received(ws: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(ws.recv(timeout=10))  # type: ignore[attr-defined]
    return data


def test_messages_reach_everyone_in_the_room_and_leaving_is_announced(
    chat: tuple[str, DevSession],
) -> None:
    url, _ = chat
    with (
        connect(ws_url(url) + "/rooms/lobby/ws?name=ann") as ann,
        connect(ws_url(url) + "/rooms/lobby/ws?name=bob") as bob,
    ):
        status = httpx.get(url + "/rooms/lobby/status", timeout=10).json()
        assert status["online"] == ["ann", "bob"]  # ctx.getWebSockets() and getTags()
        ann.send("hello")
        assert received(ann) == {"from": "ann", "text": "hello", "n": 1}
        assert received(bob) == {"from": "ann", "text": "hello", "n": 1}
        bob.send("hi ann")
        assert received(ann) == {"from": "bob", "text": "hi ann", "n": 2}
        assert received(bob) == {"from": "bob", "text": "hi ann", "n": 2}
        ann.send("ping")  # the automatic answer: webSocketMessage does not run
        assert ann.recv(timeout=10) == "pong"
        ann.send(b"\x00\x01\x02\xff")  # binary frames stay binary
        assert ann.recv(timeout=10) == b"\xff\x02\x01\x00"
        status = httpx.get(url + "/rooms/lobby/status", timeout=10).json()
        assert status["count"] == 2  # the ping was not counted
        bob.close(code=4001, reason="gone fishing")  # webSocketClose sees code and reason
        assert received(ann) == {"left": "bob", "code": 4001, "reason": "gone fishing"}
    with connect(ws_url(url) + "/rooms/lobby/ws?name=cy") as cy:
        cy.send("/quit")
        with pytest.raises(ConnectionClosed) as closed:
            cy.recv(timeout=10)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye cy")
    assert httpx.get(url + "/rooms/lobby/status", timeout=10).json()["online"] == []
    other = httpx.get(url + "/rooms/other/status", timeout=10).json()
    assert other == {"count": 0, "fired": [], "alarm": None, "online": []}  # rooms are apart


def test_a_worker_serves_a_websocket_with_accept_and_event_listeners(
    chat: tuple[str, DevSession],
) -> None:
    url, dev = chat
    with connect(ws_url(url) + "/echo") as echo:
        echo.send("one")
        echo.send("two")
        assert [echo.recv(timeout=10), echo.recv(timeout=10)] == ["echo: one", "echo: two"]
        echo.close(code=1000)
    dev.wait_for(lambda: any("echo closed with 1000" in line for line in dev.lines), "close")


def test_an_alarm_fires_and_reaches_the_connected_sockets(chat: tuple[str, DevSession]) -> None:
    url, _ = chat
    with connect(ws_url(url) + "/rooms/alarm/ws?name=cat") as cat:
        set_at = httpx.get(url + "/rooms/alarm/remind?delay=200&text=tea", timeout=10).json()
        assert isinstance(set_at["alarm"], float)
        assert received(cat) == {"reminder": "tea"}
    status = httpx.get(url + "/rooms/alarm/status", timeout=10).json()
    assert (status["fired"], status["alarm"]) == (["tea"], None)


def test_an_alarm_survives_a_restart_of_the_worker_process(chat: tuple[str, DevSession]) -> None:
    url, dev = chat
    serving = dev.folder / ".alchemy/chat/dev/local/workers/chat.serving"
    pid = json.loads(serving.read_text())["pid"]
    httpx.get(url + "/rooms/restart/remind?delay=2500&text=later", timeout=10)
    os.kill(pid, signal.SIGKILL)  # the worker dies before its alarm is due
    dev.wait_for(lambda: json.loads(serving.read_text())["pid"] != pid, "the restarted worker")

    def fired() -> bool:
        try:
            status = httpx.get(url + "/rooms/restart/status", timeout=10).json()
        except httpx.HTTPError:
            return False
        return bool(status["fired"] == ["later"])

    dev.wait_for(fired, "the alarm after the restart")


def test_an_upgrade_the_worker_does_not_accept_is_refused_with_its_response(
    chat: tuple[str, DevSession],
) -> None:
    url, dev = chat
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(url) + "/plain", open_timeout=10).close()
    response = refused.value.response
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain;charset=UTF-8"
    assert response.body == b"this path does not speak WebSocket"
    dev.wait_for(
        lambda: any("a WebSocket upgrade to /plain was refused" in line for line in dev.lines),
        "the explanation in the dev output",
    )
    line = next(line for line in dev.lines if "WebSocket upgrade to /plain" in line)
    assert str(dev.folder / "src" / "entry.py") in line
    assert "return Response(None, status=101, web_socket=client)" in line
    plain = httpx.get(url + "/rooms/lobby/ws", timeout=10)  # the worker's own check
    assert (plain.status_code, plain.text) == (426, "expected Upgrade: websocket")
    # A WebSocket answer to a request that is no upgrade is an error, as on Cloudflare.
    fake = httpx.get(url + "/rooms/lobby/ws", headers={"upgrade": "websocket"}, timeout=10)
    assert fake.status_code == 500
    assert "Worker tried to return a WebSocket in a response to a request" in fake.text
    assert httpx.get(url + "/rooms/lobby/status", timeout=10).status_code == 200  # unaffected
