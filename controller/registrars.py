"""Endpoint registrars: tell whatever routes traffic which container groups take it.

In: from the ACI and local actuators (controller/actuators/aci.py, local.py),
`register(name, address)` for each READY group ("10.0.0.4:8000"; registering a name again
replaces its address),
`deregister(name)` before a group is drained and deleted (an unknown name is a no-op), and
`current()`, the names routed to now. Out: a router that follows. Three kinds:

- `AppGatewayRegistrar`: one backend pool of an Azure Application Gateway, through ARM (GET the
  gateway, change `backendAddressPools[].properties.backendAddresses`, PUT it back with
  If-Match, follow the operation). A pool holds IP addresses only (the port is the backend
  HTTP settings'), so the name -> IP map lives in this process: after a restart the actuator
  registers every ready group again, which re-learns it (the IPs are already in the pool, so
  no PUT); an address it never learned (a person's, or a group deleted while the controller
  was down) is left alone.
- `HttpRegistrar`: a custom router's small JSON API: `GET {url}` -> {"backends": [{"name",
  "address"}]}, `POST {url}` {"name", "address"}, `DELETE {url}/{name}`.
- `FileRegistrar`: the same {"backends": [...]} document in a file, replaced atomically, for a
  router that watches a file (the sandbox's router).

The gateway is read and written with Microsoft.Network api-version 2024-05-01, a GA version
(the reference lists newer ones, e.g. 2025-05-01; `api_version` moves it).
Failures use the actuator vocabulary (`TemporaryError`, `PermanentError`), in one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from controller.actuators.base import (
    Clock,
    PermanentError,
    SystemClock,
    TemporaryError,
    retrying,
)
from controller.arm import (
    ArmClient,
    ArmSettings,
    PreconditionFailedError,
    TokenCredential,
    default_credential,
    retry_after_s,
)
from policies.text import one_line

logger = logging.getLogger(__name__)

NETWORK_API_VERSION = "2024-05-01"


class Registrar(Protocol):
    """Who routes traffic to the groups; the actuator keeps it in step with the ready ones."""

    async def register(self, name: str, address: str) -> None: ...

    async def deregister(self, name: str) -> None: ...

    async def current(self) -> set[str]: ...


def backends_document(backends: Mapping[str, str]) -> dict[str, Any]:
    """{"backends": [{"name", "address"}, ...]}, sorted by name: what the file and HTTP
    registrars exchange with a router."""
    return {"backends": [{"name": n, "address": a} for n, a in sorted(backends.items())]}


def parse_backends(document: Any, source: str) -> dict[str, str]:
    """name -> address from a backends document; PermanentError naming `source` otherwise."""
    entries = document.get("backends") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("address"), str)
        for e in entries
    ):
        raise PermanentError(
            f'{source}: expected {{"backends": [{{"name": ..., "address": ...}}]}}; '
            "fix or delete it"
        )
    return {e["name"]: e["address"] for e in entries}


# --- a file ---


class FileRegistrar:
    """The routed groups as a JSON file, replaced atomically (a reader sees old or new)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def current(self) -> set[str]:
        return set(self._read())

    async def register(self, name: str, address: str) -> None:
        async with self._lock:
            backends = self._read()
            if backends.get(name) != address:
                self._write({**backends, name: address})

    async def deregister(self, name: str) -> None:
        async with self._lock:
            backends = self._read()
            if name in backends:
                del backends[name]
                self._write(backends)

    def _read(self) -> dict[str, str]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise PermanentError(f"{self.path}: cannot read: {one_line(error)}") from error
        try:
            document = json.loads(text)
        except ValueError as error:
            raise PermanentError(
                f"{self.path}: not JSON ({one_line(error)}); fix or delete it"
            ) from error
        return parse_backends(document, str(self.path))

    def _write(self, backends: Mapping[str, str]) -> None:
        """Write a temporary file next to it, flush it to disk, and rename it over the old."""
        text = json.dumps(backends_document(backends), indent=2) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise PermanentError(f"{self.path}: cannot write: {one_line(error)}") from error


# --- a custom router's HTTP API ---


@dataclass(frozen=True, slots=True)
class HttpRegistrarSettings:
    timeout_s: float = 5.0
    # One more try per delay after a 429, 5xx, timeout or refused connection.
    retry_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    max_retry_after_s: float = 30.0


class HttpRegistrar:
    """POST/DELETE/GET on a custom router's URL, with JSON bodies."""

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession,
        clock: Clock | None = None,
        settings: HttpRegistrarSettings | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.settings = settings if settings is not None else HttpRegistrarSettings()
        self.clock = clock if clock is not None else SystemClock()
        self._session = session
        self._headers = dict(headers or {})

    async def current(self) -> set[str]:
        _, body = await self._call("list backends", "GET", self.url)
        return set(parse_backends(body, f"GET {self.url}"))

    async def register(self, name: str, address: str) -> None:
        body = {"name": name, "address": address}
        await self._call(f"register {name}", "POST", self.url, body=body)

    async def deregister(self, name: str) -> None:
        url = f"{self.url}/{urllib.parse.quote(name, safe='')}"
        await self._call(f"deregister {name}", "DELETE", url, gone_ok=True)

    async def _call(
        self, what: str, method: str, url: str, *, body: Any = None, gone_ok: bool = False
    ) -> tuple[int, Any]:
        s = self.settings
        what = f"router {self.url}: {what}"

        async def attempt() -> tuple[int, Any]:
            try:
                async with self._session.request(
                    method,
                    url,
                    json=body,
                    headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=s.timeout_s),
                ) as response:
                    raw = await response.read()
                    status, headers = response.status, response.headers
            except TimeoutError as error:
                raise TemporaryError(f"{what}: no answer within {s.timeout_s:g} s") from error
            except aiohttp.ClientError as error:
                message = f"{what}: {type(error).__name__}: {one_line(error)}"
                raise TemporaryError(message) from error
            text = one_line(raw[:200].decode(errors="replace")) or "no details"
            if status == 404 and gone_ok:
                return status, None
            if status == 429 or status >= 500:
                delay_s = retry_after_s(headers, now_s=self.clock.now())
                raise TemporaryError(f"{what}: {status}: {text}", delay_s=delay_s)
            if status >= 400:
                raise PermanentError(f"{what}: rejected ({status}): {text}")
            try:
                return status, json.loads(raw) if raw else None
            except ValueError:
                return status, None

        return await retrying(
            attempt, delays_s=s.retry_delays_s, clock=self.clock, max_delay_s=s.max_retry_after_s
        )


# --- an Azure Application Gateway backend pool ---


@dataclass(frozen=True, slots=True)
class AppGatewayRef:
    """Which pool: `backend_pool` of Application Gateway `name` in `resource_group`."""

    subscription_id: str
    resource_group: str
    name: str
    backend_pool: str

    def __str__(self) -> str:
        return f"application gateway {self.resource_group}/{self.name} pool {self.backend_pool}"

    @property
    def path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/applicationGateways/{self.name}"
        )


def host_of(address: str) -> str:
    """The IP of "10.0.0.4:8000" or "[fd00::4]:8000" (a pool entry has no port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        host = address
    return host.removeprefix("[").removesuffix("]")


class AppGatewayRegistrar:
    """Keeps the IPs of the ready groups in one backend pool of an Application Gateway.

    Permissions: Microsoft.Network/applicationGateways read and write on the gateway, and
    Microsoft.Network/virtualNetworks/subnets/join/action on its subnet (ARM checks it on PUT).
    """

    def __init__(
        self,
        gateway: AppGatewayRef,
        *,
        session: aiohttp.ClientSession,
        credential: TokenCredential | None = None,
        clock: Clock | None = None,
        settings: ArmSettings | None = None,
        api_version: str = NETWORK_API_VERSION,
    ) -> None:
        self.gateway = gateway
        self.api_version = api_version
        self._own_credential = credential is None
        self.credential = credential if credential is not None else default_credential()
        self._arm = ArmClient(
            session=session,
            credential=self.credential,
            clock=clock if clock is not None else SystemClock(),
            settings=settings if settings is not None else ArmSettings(),
        )
        self._ips: dict[str, str] = {}  # name -> IP, learned from register()
        self._lock = asyncio.Lock()  # one read-modify-write of the gateway at a time

    async def current(self) -> set[str]:
        pooled = {a.get("ipAddress") for a in _addresses(await self._get_pool())}
        return {name for name, ip in self._ips.items() if ip in pooled}

    async def register(self, name: str, address: str) -> None:
        ip = host_of(address)
        self._ips[name] = ip
        await self._update(f"register {name}", lambda ips: ips if ip in ips else [*ips, ip])

    async def deregister(self, name: str) -> None:
        ip = self._ips.pop(name, None)
        if ip is None:
            logger.info("%s: %s was never registered here; nothing to remove", self.gateway, name)
            return
        if ip in self._ips.values():
            return  # another group has it now
        await self._update(f"deregister {name}", lambda ips: [i for i in ips if i != ip])

    async def aclose(self) -> None:
        close = getattr(self.credential, "close", None)
        if self._own_credential and close is not None:
            await close()

    # --- ARM ---

    def _url(self) -> str:
        return self._arm.url(self.gateway.path, self.api_version)

    async def _get(self) -> dict[str, Any]:
        response = await self._arm.call(f"{self.gateway}: get", "GET", self._url())
        if not isinstance(response.body, dict):
            raise TemporaryError(f"{self.gateway}: get: the answer is not a JSON object")
        return response.body

    async def _get_pool(self) -> dict[str, Any]:
        return _pool(await self._get(), self.gateway)

    async def _update(self, what: str, change: Callable[[list[str]], list[str]]) -> None:
        """GET, change the pool's IPs, PUT with If-Match; a concurrent writer (412) gets one
        re-read."""
        what = f"{self.gateway}: {what}"
        async with self._lock:
            for attempt in (1, 2):
                gateway = await self._get()
                pool = _pool(gateway, self.gateway)
                addresses = _addresses(pool)
                before = [str(a["ipAddress"]) for a in addresses if a.get("ipAddress")]
                after = change(before)
                if after == before:
                    return
                # Entries keep their order; FQDN entries (no ipAddress) are never touched.
                kept = [a for a in addresses if not a.get("ipAddress") or a["ipAddress"] in after]
                added = [{"ipAddress": ip} for ip in after if ip not in before]
                pool.setdefault("properties", {})["backendAddresses"] = kept + added
                etag = gateway.get("etag")
                headers = {"If-Match": str(etag)} if etag else {}
                try:
                    response = await self._arm.call(
                        what, "PUT", self._url(), body=gateway, headers=headers
                    )
                except PreconditionFailedError as error:
                    if attempt == 2:
                        raise TemporaryError(
                            f"{error}; it changed again after a re-read"
                        ) from error
                    logger.info("%s; re-reading and trying once more", error)
                    continue
                await self._arm.follow(what, response)
                logger.info("%s: pool now %s", what, ", ".join(after) or "empty")
                return


def _pool(gateway: Mapping[str, Any], ref: AppGatewayRef) -> dict[str, Any]:
    pools = (gateway.get("properties") or {}).get("backendAddressPools") or []
    for pool in pools:
        if isinstance(pool, dict) and pool.get("name") == ref.backend_pool:
            return pool
    names = ", ".join(str(p.get("name")) for p in pools) or "none"
    raise PermanentError(
        f"{ref}: no backend pool {ref.backend_pool!r} (pools: {names}); create it or fix "
        "the registrar's backend_pool"
    )


def _addresses(pool: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((pool.get("properties") or {}).get("backendAddresses") or [])
