"""The registrars: a file, a custom router's HTTP API (an in-test aiohttp router on
127.0.0.1), and an Application Gateway backend pool through the fake ARM over HTTPS."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.actuators.aci import AciActuator, AciRef, AciSettings
from controller.actuators.base import PermanentError, TemporaryError
from controller.arm import ArmSettings
from controller.registrars import (
    AppGatewayRef,
    AppGatewayRegistrar,
    FileRegistrar,
    HttpRegistrar,
    HttpRegistrarSettings,
    host_of,
)
from tests.controller.fake_arm import TOKEN, FakeArm, FakeCredential, client_ssl
from tests.controller.fake_kube import FakeClock

SUB = "00000000-0000-0000-0000-000000000000"
GATEWAY = AppGatewayRef(SUB, "rg-net", "agw-inference", "speech")
GATEWAY_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/"
    "Microsoft.Network/applicationGateways/agw-inference"
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- file ---


@pytest.mark.asyncio
async def test_the_file_registrar_keeps_a_sorted_backends_document(tmp_path: Path) -> None:
    path = tmp_path / "router" / "backends.json"
    registrar = FileRegistrar(path)
    # No file yet: nothing is routed.
    assert await registrar.current() == set()
    await registrar.register("speech-1", "10.0.0.5:5000")
    await registrar.register("speech-0", "10.0.0.4:5000")
    assert json.loads(path.read_text()) == {
        "backends": [
            {"name": "speech-0", "address": "10.0.0.4:5000"},
            {"name": "speech-1", "address": "10.0.0.5:5000"},
        ]
    }
    assert await registrar.current() == {"speech-0", "speech-1"}
    # Registering a name again moves it; each write is a new file renamed over the old one,
    # so a router reading it sees the old document or the new, never half of one.
    inode = path.stat().st_ino
    await registrar.register("speech-1", "10.0.0.9:5000")
    assert path.stat().st_ino != inode
    await registrar.deregister("speech-0")
    await registrar.deregister("speech-7")  # never registered: nothing happens
    assert json.loads(path.read_text()) == {
        "backends": [{"name": "speech-1", "address": "10.0.0.9:5000"}]
    }
    assert [p.name for p in path.parent.iterdir()] == ["backends.json"]  # no temporary left


@pytest.mark.asyncio
async def test_a_failed_file_write_leaves_the_old_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "backends.json"
    registrar = FileRegistrar(path)
    await registrar.register("speech-0", "10.0.0.4:5000")
    before = path.read_text()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(PermanentError, match=r"backends\.json: cannot write: .*No space left"):
        await registrar.register("speech-1", "10.0.0.5:5000")
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["backends.json"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{", "not JSON", id="not-json"),
        pytest.param('{"backends": [{"name": 1}]}', 'expected {"backends"', id="wrong-shape"),
    ],
)
async def test_a_broken_file_is_a_permanent_error_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "backends.json"
    path.write_text(text)
    with pytest.raises(PermanentError, match=message) as caught:
        await FileRegistrar(path).current()
    assert str(caught.value).startswith(str(path))
    assert "fix or delete it" in str(caught.value)


# --- HTTP ---


class Router:
    """A custom router's registration API, with failures to serve first."""

    def __init__(self) -> None:
        self.backends: dict[str, str] = {}
        self.failures: list[web.Response] = []
        self.seen: list[tuple[str, str, Any]] = []
        self.app = web.Application()
        self.app.router.add_get("/backends", self.list)
        self.app.router.add_post("/backends", self.add)
        self.app.router.add_delete("/backends/{name}", self.remove)

    def fail_first(self, response: web.Response) -> None:
        self.failures.append(response)

    async def list(self, request: web.Request) -> web.Response:
        self.seen.append(("GET", request.path, None))
        if self.failures:
            return self.failures.pop(0)
        backends = [{"name": n, "address": a} for n, a in sorted(self.backends.items())]
        return web.json_response({"backends": backends})

    async def add(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("POST", request.path, body))
        if self.failures:
            return self.failures.pop(0)
        self.backends[body["name"]] = body["address"]
        return web.json_response(body, status=201)

    async def remove(self, request: web.Request) -> web.Response:
        self.seen.append(("DELETE", request.path, None))
        if self.failures:
            return self.failures.pop(0)
        if self.backends.pop(request.match_info["name"], None) is None:
            return web.json_response({"error": "no such backend"}, status=404)
        return web.Response(status=204)


@pytest_asyncio.fixture
async def router() -> AsyncIterator[tuple[Router, str]]:
    served = Router()
    async with TestServer(served.app, host="127.0.0.1") as server:
        yield served, str(server.make_url("/backends"))


@pytest_asyncio.fixture
async def plain_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.asyncio
async def test_the_http_registrar_posts_deletes_and_lists(
    router: tuple[Router, str], plain_session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = router
    registrar = HttpRegistrar(url, session=plain_session, clock=clock)
    await registrar.register("speech-0", "10.0.0.4:5000")
    await registrar.register("speech-1", "10.0.0.5:5000")
    assert await registrar.current() == {"speech-0", "speech-1"}
    await registrar.deregister("speech-0")
    await registrar.deregister("speech-0")  # already gone (404): fine
    assert served.backends == {"speech-1": "10.0.0.5:5000"}
    assert served.seen[:2] == [
        ("POST", "/backends", {"name": "speech-0", "address": "10.0.0.4:5000"}),
        ("POST", "/backends", {"name": "speech-1", "address": "10.0.0.5:5000"}),
    ]
    assert [s[:2] for s in served.seen[3:]] == [
        ("DELETE", "/backends/speech-0"),
        ("DELETE", "/backends/speech-0"),
    ]
    assert clock.sleeps == []


@pytest.mark.asyncio
async def test_the_http_registrar_retries_a_busy_router_and_reports_a_rejection(
    router: tuple[Router, str], plain_session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    served, url = router
    registrar = HttpRegistrar(url, session=plain_session, clock=clock)
    served.fail_first(web.Response(status=503, text="reloading", headers={"Retry-After": "2"}))
    await registrar.register("speech-0", "10.0.0.4:5000")
    assert clock.sleeps == [2.0]
    assert served.backends == {"speech-0": "10.0.0.4:5000"}
    served.fail_first(web.Response(status=400, text="bad address: 10.0.0.999:5000"))
    with pytest.raises(PermanentError) as caught:
        await registrar.register("speech-1", "10.0.0.999:5000")
    assert str(caught.value) == (
        f"router {url}: register speech-1: rejected (400): bad address: 10.0.0.999:5000"
    )


@pytest.mark.asyncio
async def test_the_http_registrar_gives_up_on_a_router_that_is_down(
    plain_session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with TestServer(web.Application(), host="127.0.0.1") as server:
        url = str(server.make_url("/backends"))
    # The server is closed: connections are refused.
    registrar = HttpRegistrar(
        url, session=plain_session, clock=clock, settings=HttpRegistrarSettings()
    )
    with pytest.raises(TemporaryError, match=r"list backends: ClientConnectorError"):
        await registrar.current()
    assert clock.sleeps == [0.5, 1.0, 2.0]


# --- Application Gateway ---


@pytest_asyncio.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeArm]:
    async with FakeArm(now=clock.now) as fake:
        fake.add_gateway(
            "agw-inference",
            pools={"speech": ["10.1.0.9"], "other": ["10.2.0.1"]},
            fqdns={"speech": ["static.example.com"]},
        )
        yield fake


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl())) as session:
        yield session


@pytest.fixture
def gateway(fake: FakeArm, session: aiohttp.ClientSession, clock: FakeClock) -> AppGatewayRegistrar:
    return AppGatewayRegistrar(
        GATEWAY,
        session=session,
        credential=FakeCredential(clock.now),
        clock=clock,
        settings=ArmSettings(base_url=fake.url, poll_interval_s=5),
    )


@pytest.mark.asyncio
async def test_the_gateway_registrar_updates_the_pool_with_get_put_and_the_operation(
    fake: FakeArm, gateway: AppGatewayRegistrar, clock: FakeClock
) -> None:
    etag = fake.gateways["agw-inference"]["etag"]
    await gateway.register("speech-0", "10.0.0.4:5000")
    # GET the gateway, PUT it back with the new address (conditional on the etag read), and
    # poll the operation until Succeeded.
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", GATEWAY_PATH),
        ("PUT", GATEWAY_PATH),
        ("GET", fake.calls("GET", "/operations/")[0].path),
        ("GET", fake.calls("GET", "/operations/")[0].path),
    ]
    assert "/providers/Microsoft.Network/locations/eastus/operations/" in fake.requests[2].path
    put = fake.requests[1]
    assert put.query == {"api-version": "2024-05-01"}
    assert put.headers["If-Match"] == etag
    assert {r.headers["Authorization"] for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert clock.sleeps == [5.0, 5.0]
    # Only the pool's IP list changed: its FQDN entry, the other pool and the rest stay.
    assert fake.pool("agw-inference", "speech") == [
        {"ipAddress": "10.1.0.9"},
        {"fqdn": "static.example.com"},
        {"ipAddress": "10.0.0.4"},
    ]
    assert fake.pool("agw-inference", "other") == [{"ipAddress": "10.2.0.1"}]
    stored = fake.gateways["agw-inference"]
    assert stored["properties"]["provisioningState"] == "Succeeded"
    assert stored["properties"]["backendHttpSettingsCollection"][0]["properties"]["port"] == 8000
    assert await gateway.current() == {"speech-0"}

    # The same address again: nothing to write.
    await gateway.register("speech-0", "10.0.0.4:5000")
    assert len(fake.calls("PUT")) == 1

    await gateway.deregister("speech-0")
    assert fake.pool("agw-inference", "speech") == [
        {"ipAddress": "10.1.0.9"},
        {"fqdn": "static.example.com"},
    ]
    assert await gateway.current() == set()
    # A name it never registered: no call at all.
    calls = len(fake.requests)
    await gateway.deregister("speech-9")
    assert len(fake.requests) == calls


@pytest.mark.asyncio
async def test_a_concurrent_gateway_writer_gets_one_re_read(
    fake: FakeArm, gateway: AppGatewayRegistrar
) -> None:
    # Someone else changes the gateway between our GET and our PUT: 412, re-read, PUT again.
    fake.inject("PUT", "/applicationGateways/", status=412)
    await gateway.register("speech-0", "10.0.0.4:5000")
    assert len(fake.calls("PUT")) == 2
    assert len(fake.calls("GET", "/applicationGateways/")) == 2
    assert {"ipAddress": "10.0.0.4"} in fake.pool("agw-inference", "speech")
    # Twice in a row: a temporary error.
    fake.inject("PUT", "/applicationGateways/", status=412, times=2)
    with pytest.raises(TemporaryError, match=r"register speech-1: changed since it was read"):
        await gateway.register("speech-1", "10.0.0.5:5000")


@pytest.mark.asyncio
async def test_a_gateway_busy_with_another_operation_is_retried(
    fake: FakeArm, gateway: AppGatewayRegistrar, clock: FakeClock
) -> None:
    fake.inject("PUT", "/applicationGateways/", status=409, code="AnotherOperationInProgress")
    await gateway.register("speech-0", "10.0.0.4:5000")
    assert clock.sleeps[0] == 1.0
    assert {"ipAddress": "10.0.0.4"} in fake.pool("agw-inference", "speech")


@pytest.mark.asyncio
async def test_a_missing_backend_pool_names_the_ones_there_are(
    fake: FakeArm, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    registrar = AppGatewayRegistrar(
        AppGatewayRef(SUB, "rg-net", "agw-inference", "whisper"),
        session=session,
        credential=FakeCredential(clock.now),
        clock=clock,
        settings=ArmSettings(base_url=fake.url),
    )
    with pytest.raises(PermanentError) as caught:
        await registrar.register("whisper-0", "10.0.0.4:8000")
    assert str(caught.value) == (
        "application gateway rg-net/agw-inference pool whisper: no backend pool 'whisper' "
        "(pools: speech, other); create it or fix the registrar's backend_pool"
    )
    assert fake.calls("PUT") == []


@pytest.mark.asyncio
async def test_the_aci_actuator_routes_ready_groups_through_the_gateway(
    fake: FakeArm, gateway: AppGatewayRegistrar, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    template = {
        "location": "eastus",
        "properties": {
            "osType": "Linux",
            "containers": [{"name": "speech", "properties": {"image": "speech:1"}}],
            "ipAddress": {"type": "Private", "ports": [{"port": 5000}]},
        },
    }
    actuator = AciActuator(
        AciRef(SUB, "rg-inference", "speech", template),
        session=session,
        credential=FakeCredential(clock.now),
        clock=clock,
        settings=AciSettings(arm=ArmSettings(base_url=fake.url), drain_timeout_s=0),
        registrar=gateway,
    )
    await actuator.scale(2, reason="load")
    state = await actuator.current()
    assert state.ready_replicas == 2
    assert fake.pool("agw-inference", "speech")[-2:] == [
        {"ipAddress": "10.0.0.4"},
        {"ipAddress": "10.0.0.5"},
    ]
    await actuator.scale(1, reason="quiet")
    assert {"ipAddress": "10.0.0.5"} not in fake.pool("agw-inference", "speech")
    assert sorted(fake.groups) == ["speech-0"]


def test_host_of() -> None:
    assert host_of("10.0.0.4:5000") == "10.0.0.4"
    assert host_of("[fd00::4]:5000") == "fd00::4"
    assert host_of("10.0.0.4") == "10.0.0.4"
