"""``python -m witness``: watch a Relais log and cosign its heads (docs/witness.md).

    python -m witness --log-url https://relais.example --log-key=<base64url> \\
        --key-file /var/lib/relais-witness/witness.key \\
        --state-file /var/lib/relais-witness/state.json --interval 60

``--init`` creates the key file (mode 0600) if it does not exist and prints the public
key to give the log's operator (``RELAIS_KEYLOG_WITNESSES``) and the apps.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.errors import CryptoError
from e2ee.keys import raw_public
from witness.core import RefusedError, Witness

logger = logging.getLogger("witness")


class HttpLog:
    """The log's public REST API (no token)."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1/", timeout=timeout)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise OSError(f"the log answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def latest_head(self) -> Any:
        return self._json(self.http.get("keys/log"))["latest"]["tree_head"]

    def consistency(self, first: int, second: int) -> list[str]:
        answer = self._json(
            self.http.get("keys/log/consistency", params={"first": first, "second": second})
        )
        proof: list[str] = answer["proof"]
        return proof

    def post_cosignature(self, body: JsonObject) -> None:
        self._json(self.http.post("keys/log/cosignatures", json=body))


def load_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    seed = path.read_bytes()
    if len(seed) != 32:
        raise ValueError(f"{path} must hold a 32-byte key")
    return Ed25519PrivateKey.from_private_bytes(seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m witness", description=__doc__)
    parser.add_argument("--log-url", required=True, help="the Relais server, e.g. https://…")
    parser.add_argument(
        "--log-key",
        required=True,
        help="the log's public key (base64url; write --log-key=KEY, as a key may begin with -)",
    )
    parser.add_argument("--key-file", required=True, type=Path, help="this witness's key")
    parser.add_argument("--state-file", required=True, type=Path, help="last head cosigned")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    parser.add_argument("--max-skew", type=float, default=300.0, help="seconds of clock skew")
    parser.add_argument("--init", action="store_true", help="create the key file if missing")
    parser.add_argument("--once", action="store_true", help="one poll, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        log_public = unb64u(args.log_key, length=32, field="--log-key")
        key = load_key(args.key_file, create=args.init)
    except (CryptoError, OSError, ValueError) as error:
        print(f"witness: {error}", file=sys.stderr)
        return 2
    logger.info("witness key %s", b64u(raw_public(key)))
    witness = Witness(
        log=HttpLog(args.log_url),
        log_public=log_public,
        key=key,
        state_path=args.state_file,
        max_skew_ms=int(args.max_skew * 1000),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    refused = False
    while not stop.is_set():
        try:
            head = witness.step(time.time_ns() // 1_000_000)
            logger.info("cosigned size %d at %d", head.size, head.timestamp)
        except RefusedError as error:
            refused = True
            logger.error("refusing to cosign: %s", error)
        except (OSError, httpx.HTTPError, KeyError, ValueError) as error:
            logger.warning("log unreachable or malformed: %s", error)
        if args.once:
            break
        stop.wait(args.interval)
    return 1 if refused and args.once else 0


if __name__ == "__main__":
    sys.exit(main())
