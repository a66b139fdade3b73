"""Moving blobs to and from the server: chunked, resumable upload; streamed download.

Speaks the REST API of docs/protocol.md ("Attachments") with a device token. Network
failures are retried with back-off; an upload resumes from the parts the server already
holds (``GET /attachments/uploads/{id}``) and a download from the byte it had reached
(``Range``). Blobs are ciphertext: nothing here ever sees plaintext except through the
decryptor of ``download_blob``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, TypeVar

import httpx

from client.attachments.errors import AttachmentError, AttachmentServerError, ClientCode

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) as a transfer moves."""

T = TypeVar("T")
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


class PlaintextSink(Protocol):
    def update(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where an upload stands on the server."""

    attachment: str
    size: int
    part_size: int
    parts: int
    received: frozenset[int]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> UploadState:
        return cls(
            attachment=body["attachment"],
            size=body["size"],
            part_size=body["part_size"],
            parts=body["parts"],
            received=frozenset(body.get("received", [])),
        )


@dataclass
class DownloadResult:
    sha256: str
    size: int


@dataclass
class AttachmentApi:
    """The attachment endpoints of one server, for one device.

    ``retry_delays`` are the pauses between attempts after a network failure (tests
    pass zeros); their count is the number of retries.
    """

    base_url: str
    token: str
    client: httpx.AsyncClient | None = None
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS
    timeout: float = 60.0
    _owned: bool = field(default=False, init=False)

    async def __aenter__(self) -> AttachmentApi:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=self.timeout)
            self._owned = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owned and self.client is not None:
            await self.client.aclose()
            self.client = None

    # -- plumbing ---------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self.client is None:
            raise RuntimeError("use AttachmentApi as an async context manager, or pass client")
        return self.client

    def _url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/api/v1/attachments/{path}"

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            error = response.json()["error"]
            raise AttachmentServerError(
                code=error["code"],
                message=error["message"],
                message_fr=error["message_fr"],
                status=response.status_code,
            )
        except (ValueError, KeyError, TypeError):
            raise AttachmentServerError(
                code="internal",
                message=f"HTTP {response.status_code}",
                message_fr=f"HTTP {response.status_code}",
                status=response.status_code,
            ) from None

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt``, again after network failures and 502/503/504 answers."""
        delays = list(self.retry_delays)
        while True:
            try:
                return await attempt()
            except (httpx.TransportError, _RetryableError):
                if not delays:
                    raise AttachmentError(ClientCode.TRANSFER_FAILED) from None
                await asyncio.sleep(delays.pop(0))

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async def attempt() -> Any:
            response = await self._http().request(
                method, self._url(path), json=body, headers=self._headers()
            )
            _check_retryable(response)
            self._raise_for(response)
            return response.json() if response.content else None

        return await self._retrying(attempt)

    # -- upload -----------------------------------------------------------------------

    async def start_upload(self, *, room: int, message_id: str, size: int) -> UploadState:
        body = await self._json(
            "POST", "uploads", {"room": room, "message_id": message_id, "size": size}
        )
        return UploadState.from_json(body)

    async def upload_state(self, attachment: str) -> UploadState:
        return UploadState.from_json(await self._json("GET", f"uploads/{attachment}"))

    async def put_part(self, attachment: str, index: int, data: bytes) -> None:
        async def attempt() -> None:
            response = await self._http().put(
                self._url(f"uploads/{attachment}/parts/{index}"),
                content=data,
                headers=self._headers(**{"Content-Type": "application/octet-stream"}),
            )
            _check_retryable(response)
            self._raise_for(response)

        await self._retrying(attempt)

    async def complete_upload(self, attachment: str, *, sha256: str) -> None:
        await self._json("POST", f"uploads/{attachment}/complete", {"sha256": sha256})

    async def abort_upload(self, attachment: str) -> None:
        await self._json("DELETE", f"uploads/{attachment}")

    async def upload_blob(
        self,
        blob: BinaryIO,
        *,
        size: int,
        sha256: str,
        room: int | None = None,
        message_id: str | None = None,
        resume: str | None = None,
        progress: Progress | None = None,
        abort_on_error: bool | None = None,
    ) -> str:
        """Upload a blob (a seekable file of ``size`` bytes) and return its attachment id.

        Either ``room`` and ``message_id`` start a new upload, or ``resume`` names an
        upload begun earlier (by this device): only the parts the server lacks are sent.
        Network failures are retried (the server may even restart meanwhile). If the
        upload still fails, it is abandoned on the server unless ``abort_on_error`` is
        False (the default when resuming: the caller keeps the id to try again later).
        Memory holds one part at a time.
        """
        if resume is not None:
            state = await self.upload_state(resume)
        elif room is not None and message_id is not None:
            state = await self.start_upload(room=room, message_id=message_id, size=size)
        else:
            raise ValueError("give room and message_id, or resume")
        try:
            return await self._send_parts(state, blob, size=size, sha256=sha256, progress=progress)
        except BaseException:
            if abort_on_error if abort_on_error is not None else resume is None:
                await self.abort_quietly(state.attachment)
            raise

    async def abort_quietly(self, attachment: str) -> None:
        """Best-effort abandon (the server also purges idle uploads after a while)."""
        with contextlib.suppress(AttachmentError, httpx.HTTPError):
            await self.abort_upload(attachment)

    async def _send_parts(
        self,
        state: UploadState,
        blob: BinaryIO,
        *,
        size: int,
        sha256: str,
        progress: Progress | None,
    ) -> str:
        if state.size != size:
            raise ValueError("the upload was started for another size")
        done = sum(_part_length(state, index) for index in state.received)
        if progress:
            progress(done, size)
        for index in range(state.parts):
            if index in state.received:
                continue
            length = _part_length(state, index)
            blob.seek(index * state.part_size)
            data = blob.read(length)
            if len(data) != length:
                raise ValueError("the blob is shorter than its size")
            await self.put_part(state.attachment, index, data)
            done += length
            if progress:
                progress(done, size)
        await self.complete_upload(state.attachment, sha256=sha256)
        return state.attachment

    # -- download ---------------------------------------------------------------------

    async def download_blob(
        self,
        attachment: str,
        *,
        size: int,
        sink: PlaintextSink | None = None,
        write: Callable[[bytes], object] | None = None,
        progress: Progress | None = None,
    ) -> DownloadResult:
        """Stream a blob of ``size`` bytes through ``sink`` (a decryptor) into ``write``,
        hashing the ciphertext as it arrives; resumes with ``Range`` after a network
        failure. The caller checks the hash and finalises the decryptor."""
        digest = hashlib.sha256()
        received = 0

        async def attempt() -> None:
            nonlocal received
            headers = self._headers()
            if received:
                headers["Range"] = f"bytes={received}-"
            async with self._http().stream(
                "GET", self._url(attachment), headers=headers
            ) as response:
                _check_retryable(response)
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response)
                if received and response.status_code != 206:
                    raise AttachmentError(ClientCode.TRANSFER_FAILED, "Resume was refused.")
                async for piece in response.aiter_raw():
                    if received + len(piece) > size:
                        raise AttachmentError(ClientCode.SIZE_MISMATCH)
                    digest.update(piece)
                    received += len(piece)
                    plain = sink.update(piece) if sink is not None else piece
                    if write is not None and plain:
                        write(plain)
                    if progress:
                        progress(received, size)

        await self._retrying(attempt)
        if received != size:
            raise AttachmentError(ClientCode.SIZE_MISMATCH)
        return DownloadResult(sha256=digest.hexdigest(), size=received)


class _RetryableError(Exception):
    """A gateway or an overloaded server answered; the same request may succeed later."""


def _check_retryable(response: httpx.Response) -> None:
    if response.status_code in {502, 503, 504}:
        raise _RetryableError


def _part_length(state: UploadState, index: int) -> int:
    if index < state.parts - 1:
        return state.part_size
    return state.size - state.part_size * (state.parts - 1)
