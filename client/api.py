"""The REST calls the SDK makes (docs/protocol.md). Thin: JSON in, JSON out, errors as
``ApiError`` with the server's stable code."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, message_fr: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.message_fr = message_fr
        super().__init__(f"{status} {code}: {message}")


class RestApi:
    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/api/v1/", timeout=timeout)
        self.token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self._http.request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.TransportError as failure:
            # One kind of error for "the server cannot be reached", as for the WebSocket.
            raise ConnectionError(f"the server cannot be reached: {failure!r}") from failure
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiError(
                    response.status_code,
                    error["code"],
                    error["message"],
                    str(error.get("message_fr", "")),
                )
            except (ValueError, KeyError):
                raise ApiError(response.status_code, "http", response.text[:200]) from None
        return response.json() if response.content else None

    async def dev_login(self, national_id: str, device_name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "POST", "auth/dev-login", json={"national_id": national_id, "device_name": device_name}
        )
        return result
