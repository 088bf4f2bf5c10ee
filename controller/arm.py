"""Azure Resource Manager over REST: tokens, errors, requests and long-running operations.

In: an aiohttp session, an azure-identity async credential (`TokenCredential`), the injected
`Clock` and `ArmSettings` (retries, Retry-After cap, polls, timeouts). Out: `ArmClient.call`
(one request, retried per settings, ARM's error body in one line), `follow` (an async
operation to its end), `list_all` (nextLink pages), and the error vocabulary ARM answers map
to: `NotFoundError` (404), `PreconditionFailedError` (412, If-Match), `OperationFailedError`,
`TemporaryError` (409, 429, 5xx, timeouts, with Retry-After) and `PermanentError` (the rest).

Its own module because two callers use it and neither owns it: the ACI actuator
(controller/actuators/aci.py, container groups) and the App Gateway registrar
(controller/registrars.py, backend pools), which no longer import each other.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict

from controller.actuators.base import (
    ActuatorError,
    Clock,
    PermanentError,
    TemporaryError,
    retrying,
)
from policies.text import one_line

logger = logging.getLogger(__name__)

ARM_URL = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"


# --- ARM: tokens, errors, requests and long-running operations ---


class TokenCredential(Protocol):
    """azure.identity.aio credentials: `get_token(scope)` -> AccessToken(token, expires_on)."""

    async def get_token(self, *scopes: str) -> Any: ...


def default_credential() -> TokenCredential:
    """azure-identity's async DefaultAzureCredential (workload identity, managed identity, CLI)."""
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 (slow to import)

    return DefaultAzureCredential()


@dataclass(frozen=True, slots=True)
class ArmSettings:
    base_url: str = ARM_URL
    request_timeout_s: float = 30.0
    # One more try per delay after a 409, 429, 5xx or timeout; a Retry-After header wins (capped).
    retry_delays_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    max_retry_after_s: float = 60.0
    # Between polls of a long-running operation when ARM sends no Retry-After.
    poll_interval_s: float = 5.0
    # Give up following one operation (it goes on in Azure; the next read shows how it ended).
    operation_timeout_s: float = 1800.0
    token_refresh_margin_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith("https://"):
            raise ValueError(
                f"base_url: must start with https://, a bearer token never travels in clear "
                f"text (got {self.base_url!r})"
            )


class NotFoundError(PermanentError):
    """404: the resource (or its resource group) does not exist."""


class PreconditionFailedError(ActuatorError):
    """412: the resource changed since it was read (its etag no longer matches If-Match)."""


class OperationFailedError(PermanentError):
    """A long-running operation ended Failed or Canceled."""


@dataclass(frozen=True, slots=True)
class ArmResponse:
    status: int
    headers: CIMultiDict[str]
    body: Any  # parsed JSON, or None when empty or not JSON


def error_detail(body: Any) -> str:
    """ "Code: message" from ARM's error body ({"error": {"code", "message"}}), one line."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "no details"
    code, message = error.get("code"), error.get("message")
    return one_line(": ".join(str(part) for part in (code, message) if part)) or "no details"


def retry_after_s(headers: Mapping[str, str], *, now_s: float) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), or None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now_s)


def arm_error(what: str, response: ArmResponse, *, now_s: float) -> ActuatorError:
    """The actuator vocabulary for an ARM failure of the call `what`, in one line."""
    status, detail = response.status, error_detail(response.body)
    delay_s = retry_after_s(response.headers, now_s=now_s)
    if status == 404:
        return NotFoundError(f"{what}: not found (404): {detail}")
    if status in (401, 403):
        return PermanentError(
            f"{what}: forbidden ({status}): {detail}; grant the controller's identity access "
            "to it (e.g. Contributor on the resource group)"
        )
    if status == 409:  # e.g. another operation on the resource is still in progress
        return TemporaryError(f"{what}: conflict (409): {detail}", delay_s=delay_s)
    if status == 412:
        return PreconditionFailedError(f"{what}: changed since it was read (412): {detail}")
    if status == 429 or status >= 500:
        return TemporaryError(f"{what}: {status}: {detail}", delay_s=delay_s)
    return PermanentError(f"{what}: rejected ({status}): {detail}")


class ArmToken:
    """Bearer tokens for ARM, reused until `refresh_margin_s` before they expire."""

    def __init__(self, credential: TokenCredential, *, clock: Clock, refresh_margin_s: float):
        self.credential = credential
        self._clock = clock
        self._margin_s = refresh_margin_s
        self._token = ""
        self._expires_on_s = float("-inf")
        self._refreshing = asyncio.Lock()

    def _fresh(self) -> bool:
        return bool(self._token) and self._clock.now() < self._expires_on_s - self._margin_s

    async def __call__(self) -> str:
        if self._fresh():
            return self._token
        async with self._refreshing:
            if not self._fresh():
                try:
                    access = await self.credential.get_token(ARM_SCOPE)
                except Exception as error:  # azure-identity raises its own error types
                    raise PermanentError(
                        f"no Entra ID token for {ARM_SCOPE}: {one_line(error)}; give the "
                        "controller an identity (workload or managed identity) or run az login"
                    ) from error
                self._token, self._expires_on_s = str(access.token), float(access.expires_on)
        return self._token


class ArmClient:
    """ARM REST calls with a bearer token, retries per settings and operation following."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        credential: TokenCredential,
        clock: Clock,
        settings: ArmSettings,
    ) -> None:
        self.settings = settings
        self._session = session
        self._clock = clock
        self._token = ArmToken(
            credential, clock=clock, refresh_margin_s=settings.token_refresh_margin_s
        )
        self._origin = urllib.parse.urlsplit(settings.base_url)

    def url(self, path: str, api_version: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}{path}?api-version={api_version}"

    async def call(
        self,
        what: str,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ArmResponse:
        """One request; 409, 429, 5xx and timeouts retried per settings; failures as errors."""
        s = self.settings

        async def attempt() -> ArmResponse:
            return await self._once(what, method, url, body, headers or {})

        return await retrying(
            attempt, delays_s=s.retry_delays_s, clock=self._clock, max_delay_s=s.max_retry_after_s
        )

    async def _once(
        self, what: str, method: str, url: str, body: Any, extra: Mapping[str, str]
    ) -> ArmResponse:
        headers = {"Authorization": f"Bearer {await self._token()}", "Accept": "application/json"}
        headers.update(extra)
        timeout_s = self.settings.request_timeout_s
        try:
            async with self._session.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as answer:
                raw = await answer.read()
                response = ArmResponse(answer.status, CIMultiDict(answer.headers), _json(raw))
        except TimeoutError as error:
            raise TemporaryError(f"{what}: no answer within {timeout_s:g} s") from error
        except aiohttp.ClientError as error:
            raise TemporaryError(f"{what}: {type(error).__name__}: {one_line(error)}") from error
        if response.status >= 400:
            raise arm_error(what, response, now_s=self._clock.now())
        return response

    async def follow(self, what: str, response: ArmResponse) -> Any:
        """Wait until the operation `response` started ends; its last body. ARM's protocol: an
        Azure-AsyncOperation header (on a 200, 201 or 202: poll its status until Succeeded,
        Failed or Canceled), else a Location header on a 201/202 (poll it until not 202)."""
        status_url = response.headers.get("Azure-AsyncOperation")
        location_url = response.headers.get("Location") if response.status in (201, 202) else None
        if not (status_url or location_url):
            return response.body  # done already
        poll_url = self._same_origin(what, status_url or location_url or "")
        deadline_s = self._clock.now() + self.settings.operation_timeout_s
        last = response
        while True:
            wait_s = retry_after_s(last.headers, now_s=self._clock.now())
            wait_s = self.settings.poll_interval_s if wait_s is None else wait_s
            if self._clock.now() + wait_s > deadline_s:
                raise TemporaryError(
                    f"{what}: still in progress after {self.settings.operation_timeout_s:g} s; "
                    "it goes on in Azure and the next read shows how it ended"
                )
            await self._clock.sleep(min(wait_s, self.settings.max_retry_after_s))
            last = await self.call(f"{what}: operation status", "GET", poll_url)
            if status_url is None:
                if last.status != 202:
                    return last.body
                continue
            status = str((last.body or {}).get("status", "")) if isinstance(last.body, dict) else ""
            if status.lower() == "succeeded":
                return last.body
            if status.lower() in ("failed", "canceled"):
                raise OperationFailedError(f"{what}: {status}: {error_detail(last.body)}")

    def _same_origin(self, what: str, url: str) -> str:
        """An operation URL from a response header, if it points at ARM itself."""
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc):
            raise PermanentError(
                f"{what}: the operation URL {url!r} is not on {self.settings.base_url}; "
                "not sending it a token"
            )
        return url

    async def pages(self, what: str, url: str) -> list[dict[str, Any]]:
        """Every item of an ARM list, following nextLink."""
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            page = (await self.call(what, "GET", self._same_origin(what, next_url))).body
            if not isinstance(page, dict):
                raise TemporaryError(f"{what}: the answer is not a JSON object")
            items.extend(item for item in page.get("value") or () if isinstance(item, dict))
            next_url = page.get("nextLink")
        return items


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
