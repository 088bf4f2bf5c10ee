"""A fake Azure Resource Manager for the ACI actuator's and registrars' tests: real HTTPS on
127.0.0.1, ARM's paths, bodies, status codes and headers.

- Microsoft.ContainerInstance/containerGroups (api-version 2023-05-01): PUT creates (201 +
  Azure-AsyncOperation; 200 for an existing group), GET (with instanceView), list by resource
  group (without instanceView, as ARM's list; paged with nextLink when `page_size` is set),
  DELETE (202 + Location, then the group is gone: GET 404; 204 when there was nothing).
  A create's operation answers InProgress for `lro_polls` polls, then Succeeded (or Failed
  when `fail_create` is set). A provisioned group's instanceView.state is Pending until
  `start_delay_s` later on the test's clock, then Running; it stays Pending while
  `hold_pending` is set. IPs are 10.0.0.4, 10.0.0.5, ... in creation order.
- Microsoft.Network/applicationGateways (2024-05-01): GET with an etag; PUT honours If-Match
  (412 when stale) and answers 200 + Azure-AsyncOperation (provisioningState Updating, then
  Succeeded after `lro_polls` polls).
- Every request needs `Authorization: Bearer <token>` (401 AuthenticationFailed otherwise)
  and the right api-version (400 otherwise); all are recorded in `requests`.
- Faults (`inject`), for requests matching a method and a path regex, `times` times: a status
  with ARM's error body (404, 409, 429 with Retry-After, 500, ...), a slow answer (real
  milliseconds), or a hang until the test lets go (to cut a scale mid-way, as a crash would).
- `journal` (a list the test passes) gets "PUT name" / "DELETE name" as writes arrive, so a
  test can interleave them with its registrar's and probe's events.

TLS: a self-signed certificate for 127.0.0.1 made once per session with `cryptography`;
`client_ssl()` is a context that trusts it, for the test's aiohttp connector.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import functools
import ipaddress
import itertools
import re
import ssl
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACI_VERSION = "2023-05-01"
NETWORK_VERSION = "2024-05-01"
TOKEN = "fake-arm-token"

_SUB_RG = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers"
GROUPS = re.compile(rf"^{_SUB_RG}/Microsoft\.ContainerInstance/containerGroups$", re.I)
GROUP = re.compile(
    rf"^{_SUB_RG}/Microsoft\.ContainerInstance/containerGroups/(?P<name>[^/]+)$", re.I
)
GATEWAY = re.compile(rf"^{_SUB_RG}/Microsoft\.Network/applicationGateways/(?P<name>[^/]+)$", re.I)
OPERATION = re.compile(
    r"^/subscriptions/[^/]+/providers/(?P<provider>Microsoft\.\w+)/locations/[^/]+"
    r"/(?P<kind>operations|operationResults)/(?P<id>[^/]+)$",
    re.I,
)

ERROR_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "ContainerGroupTransitioning",
    412: "PreconditionFailed",
    429: "SubscriptionRequestsThrottled",
}


# --- TLS ---


@functools.cache
def certificate() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM), self-signed for 127.0.0.1 and valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "replicast fake ARM")])
    now = dt.datetime.now(dt.UTC)  # OpenSSL checks validity against the real time
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_ssl() -> ssl.SSLContext:
    cert_pem, key_pem = certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


def client_ssl() -> ssl.SSLContext:
    """Verifies the fake's certificate (hostname 127.0.0.1 included), trusting only it."""
    return ssl.create_default_context(cadata=certificate()[0].decode())


# --- a credential ---


class FakeCredential:
    """azure.identity.aio's shape: `get_token(*scopes)` -> AccessToken; counts its calls."""

    def __init__(self, now: Callable[[], float], token: str = TOKEN, lifetime_s: float = 3600):
        self.now, self.token, self.lifetime_s = now, token, lifetime_s
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(self.now() + self.lifetime_s))


# --- the server ---


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int | None = None
    times: int = 1
    retry_after_s: float | None = None
    delay_s: float = 0.0
    code: str | None = None
    hang: bool = False
    hit: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, request: web.Request) -> bool:
        return (
            self.times > 0
            and request.method == self.method
            and bool(self.path.search(request.path))
        )


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Operation:
    provider: str
    polls_left: int
    finish: Callable[[], None]
    error: dict[str, str] | None = None
    status: str = "InProgress"


def arm_error(status: int, message: str, code: str | None = None, **headers: str) -> web.Response:
    """ARM's error body: {"error": {"code", "message"}}."""
    code = code or ERROR_CODES.get(status, "InternalServerError")
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers or None)


class FakeArm:
    def __init__(
        self,
        *,
        now: Callable[[], float],
        resource_groups: tuple[str, ...] = ("rg-inference",),
        lro_polls: int = 2,
        lro_retry_after_s: float | None = None,
        start_delay_s: float = 0.0,
        page_size: int | None = None,
        journal: list[str] | None = None,
    ) -> None:
        self.now = now
        self.resource_groups = {rg.lower() for rg in resource_groups}
        self.lro_polls = lro_polls
        self.lro_retry_after_s = lro_retry_after_s
        self.start_delay_s = start_delay_s
        self.page_size = page_size
        self.journal = journal if journal is not None else []
        self.hold_pending = False
        self.fail_create: dict[str, str] | None = None  # the error of a Failed create
        self.operation_base: str | None = None  # where operation URLs point (default: here)
        self.groups: dict[str, dict[str, Any]] = {}  # name -> stored group
        self.gateways: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, Operation] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.url = ""
        self._ips = (f"10.0.0.{i}" for i in itertools.count(4))
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    async def __aenter__(self) -> FakeArm:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl())
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # lets hung requests go
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test-side helpers ---

    def inject(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after_s: float | None = None,
        delay_s: float = 0.0,
        code: str | None = None,
        hang: bool = False,
    ) -> Fault:
        fault = Fault(method, re.compile(path), status, times, retry_after_s, delay_s, code, hang)
        self.faults.append(fault)
        return fault

    def calls(self, method: str, path: str = "") -> list[Recorded]:
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def add_group(
        self,
        name: str,
        *,
        rg: str = "rg-inference",
        state: str = "Running",
        provisioning: str = "Succeeded",
        tags: dict[str, str] | None = None,
        port: int = 8000,
    ) -> None:
        """A group made outside the test's actuator (by hand, or by an earlier process)."""
        self.groups[name] = {
            "id": self._group_id("00000000-0000-0000-0000-000000000000", rg, name),
            "name": name,
            "type": "Microsoft.ContainerInstance/containerGroups",
            "location": "eastus",
            "tags": dict(tags or {}),
            "properties": {
                "provisioningState": provisioning,
                "osType": "Linux",
                "containers": [{"name": "app", "properties": {"image": "example.com/app:1"}}],
                "ipAddress": {"type": "Private", "ports": [{"port": port, "protocol": "TCP"}]},
            },
            "_ip": next(self._ips),
            "_running_at_s": self.now() if state == "Running" else None,
            "_state": state,
        }

    def add_gateway(
        self, name: str, *, pools: dict[str, list[str]], fqdns: dict[str, list[str]] | None = None
    ) -> None:
        self.gateways[name] = {
            "name": name,
            "id": f"/subscriptions/sub/resourceGroups/rg-net/providers/"
            f"Microsoft.Network/applicationGateways/{name}",
            "type": "Microsoft.Network/applicationGateways",
            "location": "eastus",
            "etag": f'W/"{uuid.uuid4()}"',
            "properties": {
                "provisioningState": "Succeeded",
                "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 2},
                "backendAddressPools": [
                    {
                        "name": pool,
                        "properties": {
                            "backendAddresses": [{"ipAddress": ip} for ip in ips]
                            + [{"fqdn": f} for f in (fqdns or {}).get(pool, [])]
                        },
                    }
                    for pool, ips in pools.items()
                ],
                "backendHttpSettingsCollection": [
                    {"name": "http-8000", "properties": {"port": 8000, "protocol": "Http"}}
                ],
            },
        }

    def pool(self, gateway: str, pool: str) -> list[dict[str, str]]:
        for entry in self.gateways[gateway]["properties"]["backendAddressPools"]:
            if entry["name"] == pool:
                addresses: list[dict[str, str]] = entry["properties"]["backendAddresses"]
                return addresses
        raise KeyError(pool)

    def touch_gateway(self, name: str) -> None:
        """A concurrent writer: the gateway's etag moves on."""
        self.gateways[name]["etag"] = f'W/"{uuid.uuid4()}"'

    def finish_operations(self) -> None:
        """Azure finishes every operation in progress in its own time (nobody polled them)."""
        for operation in self.operations.values():
            if operation.status == "InProgress":
                operation.finish()
                operation.status = "Failed" if operation.error else "Succeeded"

    def state_of(self, name: str) -> str:
        group = self.groups[name]
        if group["properties"]["provisioningState"] != "Succeeded":
            return "Pending"
        if group["_state"] != "Running":
            return str(group["_state"])
        running_at_s = group["_running_at_s"]
        return "Running" if running_at_s is not None and self.now() >= running_at_s else "Pending"

    # --- serving ---

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        fault = next((f for f in self.faults if f.matches(request)), None)
        if fault is not None:
            fault.times -= 1
            fault.hit.set()
            if fault.hang:
                await self._closing.wait()
                return arm_error(503, "the server went away")
            await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                headers = {}
                if fault.retry_after_s is not None:
                    headers["Retry-After"] = f"{fault.retry_after_s:g}"
                return arm_error(fault.status, f"injected {fault.status}", fault.code, **headers)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return arm_error(401, "Authentication failed. The 'Authorization' header is invalid.")
        for pattern, handler in (
            (GROUPS, self._list_groups),
            (GROUP, self._group),
            (GATEWAY, self._gateway),
            (OPERATION, self._operation),
        ):
            match = pattern.match(request.path)
            if match:
                return await handler(request, match, body)
        return arm_error(404, f"no route for {request.method} {request.path}", "NoRouteFound")

    def _check(self, request: web.Request, version: str, rg: str | None) -> web.Response | None:
        given = request.query.get("api-version")
        if given != version:
            message = f"the api-version '{given}' is not supported; use '{version}'"
            return arm_error(400, message, "InvalidApiVersionParameter")
        if rg is not None and rg.lower() not in self.resource_groups:
            return arm_error(
                404, f"Resource group '{rg}' could not be found.", "ResourceGroupNotFound"
            )
        return None

    def _base(self) -> str:
        return self.operation_base or self.url

    def _group_id(self, sub: str, rg: str, name: str) -> str:
        return (
            f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
            f"Microsoft.ContainerInstance/containerGroups/{name}"
        )

    def _render(self, group: dict[str, Any], *, view: bool) -> dict[str, Any]:
        shown = copy.deepcopy({k: v for k, v in group.items() if not k.startswith("_")})
        props = shown["properties"]
        if props["provisioningState"] in ("Succeeded", "Deleting") and "ipAddress" in props:
            props["ipAddress"]["ip"] = group["_ip"]
        if view:
            state = self.state_of(group["name"])
            events = [{"name": "Pulling", "message": 'pulling image "example.com/app:1"'}]
            if state == "Running":
                events.append({"name": "Started", "message": "Started container"})
            props["instanceView"] = {"state": state, "events": events}
        return shown

    def _start(self, provider: str, finish: Callable[[], None], error: Any = None) -> str:
        operation_id = str(uuid.uuid4())
        self.operations[operation_id] = Operation(provider, self.lro_polls, finish, error)
        return operation_id

    def _lro_headers(self, sub: str, provider: str, operation_id: str, kind: str) -> dict[str, str]:
        version = ACI_VERSION if provider == "Microsoft.ContainerInstance" else NETWORK_VERSION
        url = (
            f"{self._base()}/subscriptions/{sub}/providers/{provider}/locations/eastus/"
            f"{kind}/{operation_id}?api-version={version}"
        )
        header = "Azure-AsyncOperation" if kind == "operations" else "Location"
        headers = {header: url}
        if self.lro_retry_after_s is not None:
            headers["Retry-After"] = f"{self.lro_retry_after_s:g}"
        return headers

    async def _list_groups(
        self, request: web.Request, match: re.Match[str], body: Any
    ) -> web.Response:
        if (problem := self._check(request, ACI_VERSION, match["rg"])) is not None:
            return problem
        everything = [self._render(g, view=False) for _, g in sorted(self.groups.items())]
        start = int(request.query.get("$skipToken", "0"))
        end = len(everything) if self.page_size is None else start + self.page_size
        page: dict[str, Any] = {"value": everything[start:end]}
        if end < len(everything):
            page["nextLink"] = (
                f"{self.url}{request.path}?api-version={ACI_VERSION}&$skipToken={end}"
            )
        return web.json_response(page)

    async def _group(self, request: web.Request, match: re.Match[str], body: Any) -> web.Response:
        if (problem := self._check(request, ACI_VERSION, match["rg"])) is not None:
            return problem
        name, sub = match["name"], match["sub"]
        group = self.groups.get(name)
        if request.method == "GET":
            if group is None:
                return arm_error(404, f"The Resource '{name}' was not found.")
            return web.json_response(self._render(group, view=True))
        if request.method == "PUT":
            return self._put_group(request, sub, match["rg"], name, body)
        if request.method == "DELETE":
            self.journal.append(f"DELETE {name}")
            if group is None:
                return web.Response(status=204)
            group["properties"]["provisioningState"] = "Deleting"

            def gone() -> None:
                self.groups.pop(name, None)

            operation_id = self._start("Microsoft.ContainerInstance", gone)
            headers = self._lro_headers(
                sub, "Microsoft.ContainerInstance", operation_id, "operationResults"
            )
            return web.json_response(self._render(group, view=False), status=202, headers=headers)
        return arm_error(405, f"{request.method} is not supported here", "MethodNotAllowed")

    def _put_group(
        self, request: web.Request, sub: str, rg: str, name: str, body: Any
    ) -> web.Response:
        self.journal.append(f"PUT {name}")
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict) or not props.get("containers") or not props.get("osType"):
            message = "properties.containers and properties.osType are required"
            return arm_error(400, message, "InvalidRequestContent")
        if not body.get("location"):
            return arm_error(400, "The location property is required.", "LocationRequired")
        existing = self.groups.get(name)
        group = copy.deepcopy(body)
        group.update(id=self._group_id(sub, rg, name), name=name)
        group["type"] = "Microsoft.ContainerInstance/containerGroups"
        group["properties"]["provisioningState"] = "Creating"
        group["_ip"] = existing["_ip"] if existing else next(self._ips)
        group["_running_at_s"] = None
        group["_state"] = "Running"
        self.groups[name] = group
        error = self.fail_create

        def finish() -> None:
            if error is not None:
                group["properties"]["provisioningState"] = "Failed"
                return
            group["properties"]["provisioningState"] = "Succeeded"
            group["_running_at_s"] = (
                float("inf") if self.hold_pending else (self.now() + self.start_delay_s)
            )

        operation_id = self._start("Microsoft.ContainerInstance", finish, error)
        headers = self._lro_headers(sub, "Microsoft.ContainerInstance", operation_id, "operations")
        status = 200 if existing else 201
        return web.json_response(self._render(group, view=False), status=status, headers=headers)

    async def _gateway(self, request: web.Request, match: re.Match[str], body: Any) -> web.Response:
        if (problem := self._check(request, NETWORK_VERSION, None)) is not None:
            return problem
        name = match["name"]
        gateway = self.gateways.get(name)
        if gateway is None:
            return arm_error(404, f"The Resource '{name}' was not found.")
        if request.method == "GET":
            return web.json_response(gateway)
        if request.method != "PUT":
            return arm_error(405, f"{request.method} is not supported here", "MethodNotAllowed")
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != gateway["etag"]:
            return arm_error(412, f"The etag {if_match} does not match {gateway['etag']}.")
        stored = copy.deepcopy(body)
        stored["etag"] = f'W/"{uuid.uuid4()}"'
        stored["properties"]["provisioningState"] = "Updating"
        self.gateways[name] = stored

        def finish() -> None:
            stored["properties"]["provisioningState"] = "Succeeded"

        operation_id = self._start("Microsoft.Network", finish)
        headers = self._lro_headers(match["sub"], "Microsoft.Network", operation_id, "operations")
        return web.json_response(stored, status=200, headers=headers)

    async def _operation(
        self, request: web.Request, match: re.Match[str], body: Any
    ) -> web.Response:
        provider = match["provider"]
        aci = provider.lower() == "microsoft.containerinstance"
        version = ACI_VERSION if aci else NETWORK_VERSION
        if (problem := self._check(request, version, None)) is not None:
            return problem
        operation = self.operations.get(match["id"])
        if operation is None:
            return arm_error(404, f"operation {match['id']} not found")
        if operation.status == "InProgress":
            operation.polls_left -= 1
            if operation.polls_left <= 0:
                operation.finish()
                operation.status = "Failed" if operation.error else "Succeeded"
        headers = {}
        if operation.status == "InProgress" and self.lro_retry_after_s is not None:
            headers["Retry-After"] = f"{self.lro_retry_after_s:g}"
        if match["kind"].lower() == "operationresults":
            done = operation.status != "InProgress"
            return web.Response(status=204 if done else 202, headers=headers)
        answer: dict[str, Any] = {"id": request.path, "name": match["id"]}
        answer["status"] = operation.status
        if operation.error is not None and operation.status == "Failed":
            answer["error"] = operation.error
        return web.json_response(answer, headers=headers)
