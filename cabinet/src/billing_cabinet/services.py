"""The four services as the cabinet sees them: HTTP APIs answering JSON, or a problem document
(``code``, ``message``, ``errors``, and ``until`` on a 429) when they refuse."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Refused(Exception):
    """A service's refusal: ``message`` is written for the person reading it."""

    status: int
    code: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    until: str | None = None

    def field_messages(self) -> dict[str, str]:
        return {str(error.get("field")): str(error.get("message")) for error in self.errors}


class Services:
    """One HTTP client for the four services; every call names the service its path starts with
    (``/ledger/accounts/...``), as docs/cabinet-api.md writes them."""

    def __init__(self, urls: dict[str, str], timeout: float, transport: httpx.AsyncBaseTransport | None = None,
                 catalog_seconds: float = 60.0):
        self._urls = urls
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._catalog_seconds = catalog_seconds
        self._catalog: dict[str, tuple[float, Any]] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, token: str | None = None, *, json: Any = None,
                      params: dict[str, str] | None = None, accept: str = "application/json",
                      client: str | None = None) -> httpx.Response:
        """``client``: the browser's address, forwarded (X-Forwarded-For) so identity counts failed
        logins and password requests per person's address, not the cabinet's (where identity
        trusts the header: BILLING_IDENTITY_CLIENT_ADDRESS_HEADER)."""
        service = path.strip("/").split("/")[0]
        headers = {"Accept": accept}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if client is not None:
            headers["X-Forwarded-For"] = client
        answer = await self._http.request(method, self._urls[service] + path, headers=headers, json=json,
                                          params=params)
        if answer.status_code >= 400:
            raise refusal(answer)
        return answer

    async def json(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        answer = await self.request(method, path, token, **kwargs)
        return answer.json() if answer.content else None

    async def catalog(self, path: str) -> Any:
        """A public page of the tariff's catalog (the same for every subscriber), kept for
        ``catalog_seconds``: a page that shows plan names needs no call of its own for them, and
        a new catalog version shows within that time."""
        kept = self._catalog.get(path)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        answer = await self.json("GET", path)
        self._catalog[path] = (time.monotonic() + self._catalog_seconds, answer)
        return answer


def refusal(answer: httpx.Response) -> Refused:
    try:
        problem = answer.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    return Refused(status=answer.status_code, code=str(problem.get("code", "unavailable")),
                   message=str(problem.get("message", answer.reason_phrase)),
                   errors=list(problem.get("errors") or []), until=problem.get("until"))
