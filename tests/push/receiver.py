"""A real push service on localhost, for tests and the push benchmark.

It speaks HTTP like a push service (RFC 8030): ``POST /push/<token>`` answers 201. It
checks what Google's, Mozilla's or Apple's service would check, and decrypts like the
browser would:

* the VAPID ``Authorization: vapid t=<JWT>, k=<key>`` header (RFC 8292): the key is
  the one the subscription was made with, the JWT's ES256 signature verifies against
  it, ``aud`` is this endpoint's origin, ``exp`` lies within the next 24 hours, ``sub``
  is present;
* ``TTL`` is present, ``Content-Encoding`` is ``aes128gcm``, the body is at most 4096
  bytes;
* the body decrypts (RFC 8291) with the subscription's private key and auth secret,
  which only the "browser" side (``BrowserSubscription``) holds.

A request failing a check is answered 400/401/403 and recorded in ``rejections``.
Tests script answers per subscription (404, 410, 429 with ``Retry-After``, 5xx, or a
request that never gets an answer) with ``respond``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import http_ece
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

MAX_PAYLOAD = 4096


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass
class BrowserSubscription:
    """What a browser keeps for one ``PushManager.subscribe()``: the private half."""

    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    def to_json(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives the web application."""
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth_secret)},
        }


@dataclass
class ReceivedPush:
    token: str
    plaintext: bytes
    claims: dict[str, Any]
    headers: dict[str, str]
    body_size: int

    def json(self) -> Any:
        return json.loads(self.plaintext)


@dataclass
class Scripted:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (the client's timeout must fire)


class VapidError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify_vapid(
    authorization: str, *, expected_key: str, audience: str, now: float
) -> dict[str, Any]:
    """Check an RFC 8292 ``Authorization`` value; returns the JWT claims."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise VapidError(401, f"scheme {scheme!r} is not vapid")
    values: dict[str, str] = {}
    for part in params.split(","):
        name, _, value = part.strip().partition("=")
        values[name.strip()] = value.strip()
    if "t" not in values or "k" not in values:
        raise VapidError(401, "t or k missing")
    if values["k"].rstrip("=") != expected_key:
        raise VapidError(403, "k is not the key the subscription was made with")
    try:
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(values["k"])
        )
        header_b64, claims_b64, signature_b64 = values["t"].split(".")
        header = json.loads(unb64url(header_b64))
        claims = json.loads(unb64url(claims_b64))
        signature = unb64url(signature_b64)
    except ValueError as error:
        raise VapidError(401, f"malformed token: {error}") from None
    if header.get("alg") != "ES256":
        raise VapidError(401, f"alg {header.get('alg')!r} is not ES256")
    if len(signature) != 64:
        raise VapidError(401, "an ES256 signature is 64 bytes")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidError(401, "the signature does not verify") from None
    if claims.get("aud") != audience:
        raise VapidError(401, f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or not now < exp <= now + 24 * 3600:
        raise VapidError(401, f"exp {exp!r} is not within 24 hours of now ({int(now)})")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise VapidError(401, "sub missing")
    return dict(claims)


class PushReceiver:
    """Runs inside the current event loop; ``start`` it, then ``subscribe``."""

    def __init__(
        self,
        *,
        vapid_public_key: str,
        clock: Any = None,
        tls_dir: Path | None = None,
        decrypt: bool = True,
    ) -> None:
        self.vapid_public_key = vapid_public_key.rstrip("=")
        self.clock = clock or WallClock()
        self.tls_dir = tls_dir
        self.decrypt = decrypt
        self.subscriptions: dict[str, BrowserSubscription] = {}
        self.received: list[ReceivedPush] = []
        self.rejections: list[str] = []
        self.requests: dict[str, int] = defaultdict(int)
        self.count = 0
        self._scripts: dict[str, deque[Scripted]] = defaultdict(deque)
        self._arrivals: asyncio.Queue[ReceivedPush] = asyncio.Queue()
        self._request_seen = asyncio.Event()
        self._hanging = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.cert_path: Path | None = None

    @property
    def origin(self) -> str:
        scheme = "https" if self.tls_dir else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/push/{token}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context())
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._hanging.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def subscribe(self) -> BrowserSubscription:
        token = b64url(os.urandom(18))
        subscription = BrowserSubscription(token=token, endpoint=f"{self.origin}/push/{token}")
        self.subscriptions[token] = subscription
        return subscription

    def respond(self, subscription: BrowserSubscription, *answers: Scripted) -> None:
        """The next requests for ``subscription`` get these answers, then 201 again."""
        self._scripts[subscription.token].extend(answers)

    async def next_push(self, wait_seconds: float = 10) -> ReceivedPush:
        try:
            return await asyncio.wait_for(self._arrivals.get(), wait_seconds)
        except TimeoutError:
            raise AssertionError(f"no push arrived; rejections: {self.rejections}") from None

    def pushes_for(self, subscription: BrowserSubscription) -> list[ReceivedPush]:
        return [push for push in self.received if push.token == subscription.token]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        self.requests[token] += 1
        subscription = self.subscriptions.get(token)
        if subscription is None:
            return web.Response(status=404)
        body = await request.read()
        try:
            push = self._check(request, subscription, body)
        except VapidError as error:
            self.rejections.append(error.reason)
            return web.Response(status=error.status, text=error.reason)
        script = self._scripts[token]
        if script:
            answer = script.popleft()
            if answer.hang:
                await self._hanging.wait()
            return web.Response(status=answer.status, headers=answer.headers)
        self.count += 1
        if push is not None:
            self.received.append(push)
            self._arrivals.put_nowait(push)
        return web.Response(status=201, headers={"Location": f"{self.origin}/message/{self.count}"})

    def _check(
        self, request: web.Request, subscription: BrowserSubscription, body: bytes
    ) -> ReceivedPush | None:
        claims = verify_vapid(
            request.headers.get("Authorization", ""),
            expected_key=self.vapid_public_key,
            audience=self.origin,
            now=self.clock.now_ms() / 1000,
        )
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            raise VapidError(400, "TTL header missing")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            raise VapidError(415, "Content-Encoding is not aes128gcm")
        if len(body) > MAX_PAYLOAD:
            raise VapidError(413, "payload too large")
        if not self.decrypt:
            return None
        try:
            plaintext = http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth_secret,
                version="aes128gcm",
            )
        except Exception as error:
            raise VapidError(400, f"payload does not decrypt: {error!r}") from None
        return ReceivedPush(
            token=subscription.token,
            plaintext=plaintext,
            claims=claims,
            headers={
                name: request.headers[name]
                for name in ("TTL", "Urgency", "Topic")
                if name in request.headers
            },
            body_size=len(body),
        )

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_dir is None:
            return None
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert_path = self.tls_dir / "push-service.pem"
        key_path = self.tls_dir / "push-service.key"
        self.cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, key_path)
        return context
