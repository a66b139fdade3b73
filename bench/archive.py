"""Archiver benchmark: catch-up, packaging and sending of a busy room.

    RELAIS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/relais_archive_bench \\
        .venv/bin/python -m bench.archive [--messages 1000 --photos 20] [--mail-server]

One real server process (Daphne, production settings, PostgreSQL). Two members (the
nurse and the GP, SDK clients with their own keys) write ``--messages`` messages into a
care-team room that names the organisation's archiver, ``--photos`` of them 12-megapixel
photos (cleaned and resized by the photo pipeline, as the apps send them). Then the
archiver starts in a process of its own, as after a day offline, and:

1. **catch-up**: fetches and decrypts the whole room over REST, keeping every message
   sealed in its outbox (a day of a busy room);
2. **archive**: cuts the room on demand, downloads and decrypts the photos, builds the
   transcript PDF, the CDA, IHE_XDM.zip and the mail, seals and stores it;
3. **send**: to the loopback Postfix of the tests (``--mail-server``: STARTTLS, client
   certificate, as the archive tests run it; it needs root), or to nowhere (the send
   then costs nothing and only packaging is measured).

It prints each time, archives per minute for such a room (60 / (archive + send)), and
the archiver process's peak memory (its maximum resident set). The database named by
RELAIS_DATABASE_URL (its name must contain "bench") is dropped and created at every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.attachments import ROOT, _fresh_database, _prepare_database, twelve_megapixel_jpeg

SENDER = "archiveur@cds-pentes.mssante.fr"
PASSPHRASE = "bench archive passphrase"  # noqa: S105 (a throwaway bench store)
ORGANISATION = "org:1750000123"


def _archiver_token(path: Path) -> None:
    from chat.services.organisations import do_create_archiver

    created = do_create_archiver(
        structure_id="1750000123", name="Centre de santé des Pentes", device_name="bench"
    )
    path.write_text(
        json.dumps(
            {
                "v": 1,
                "national_id": created.organisation.national_id,
                "device": created.device.pk,
                "token": created.token,
            }
        )
    )
    path.chmod(0o600)


async def _fill_room(
    url: str, work: Path, logins: Sequence[Any], messages: int, photos: int
) -> int:
    from tests.e2e.sdk import token_client

    nurse_login, doctor_login = logins
    nurse = await token_client(
        url,
        work,
        national_id=nurse_login[0],
        name="nurse",
        device=nurse_login[1],
        token=nurse_login[2],
    )
    doctor = await token_client(
        url,
        work,
        national_id=doctor_login[0],
        name="doctor",
        device=doctor_login[1],
        token=doctor_login[2],
    )
    room = await nurse.create_room(
        kind="care_team", members=[doctor.national_id], archiver=ORGANISATION
    )
    photo = twelve_megapixel_jpeg()
    every = max(messages // max(photos, 1), 1)
    started = time.perf_counter()
    sent_photos = 0
    for index in range(messages):
        author = nurse if index % 2 == 0 else doctor
        if sent_photos < photos and index % every == every - 1:
            await author.send_photo(room, photo, name=f"plaie-{index}.jpg")
            sent_photos += 1
        else:
            await author.send_text(
                room, f"Message {index} : pansement refait, plaie propre, à revoir."
            )
    print(
        f"room filled: {messages} messages ({sent_photos} photos) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    await nurse.close()
    await doctor.close()
    return room


class NullDelivery:
    def describe(self) -> str:
        return "nowhere"

    def send(self, mail: bytes, *, sender: str, recipients: Sequence[str]) -> Any:
        from archive.ports import Accepted

        return Accepted("250", f"accepted {len(mail)} bytes")

    def receipts(self, *, after_uid: int) -> Any:
        from archive.ports import ReceiptBatch

        return ReceiptBatch(uidvalidity=1, last_uid=after_uid)


async def _archiver(
    url: str, work: Path, token_file: Path, room: int, real_mail: bool
) -> dict[str, float]:
    """The archiver's side, in this (child) process."""
    from archive.outbox import Outbox
    from archive.packaging import Packaging
    from archive.sealing import Sealer, outbox_key
    from archive.service import ArchiveService, ArchivingClient, ServiceSettings
    from client.store import KeyStore

    store = KeyStore.open(work / "archiver.store", PASSPHRASE, n=2**14)
    client = ArchivingClient(server=url, store=store)
    await client.register_from_file(token_file)
    outbox = Outbox(work / "state", Sealer(outbox_key(client.store.data)))
    client.save()
    recipients = (os.environ.get("RELAIS_ARCHIVE_RECIPIENTS", SENDER),)
    delivery: Any = NullDelivery()
    if real_mail:
        from archive.wiring import smtp_delivery

        delivery = smtp_delivery()
    settings = ServiceSettings(
        sender=os.environ.get("RELAIS_ARCHIVE_MAILBOX", SENDER), recipients=recipients
    )
    lines: list[str] = []
    service = ArchiveService(
        client=client,
        outbox=outbox,
        packager=Packaging(client=client, sender=settings.sender, recipients=recipients),
        delivery=delivery,
        settings=settings,
        out=lines.append,
    )
    started = time.perf_counter()
    await client.connect()
    await service.collect()
    caught_up = time.perf_counter() - started
    outbox.request_cut(room)
    started = time.perf_counter()
    await service.cut_rooms()
    packaged = time.perf_counter() - started
    [archive] = outbox.archives()
    size = len(outbox.mail(archive.id))
    started = time.perf_counter()
    await service.send_due()
    sent = time.perf_counter() - started
    state = outbox.archive(archive.id).state.value
    await client.close()
    return {
        "catch_up_s": caught_up,
        "archive_s": packaged,
        "send_s": sent,
        "mail_bytes": size,
        "messages": archive.last_seq - archive.first_seq + 1,
        "state": state,  # type: ignore[dict-item]
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _start_server(work: Path) -> Any:
    """One server process as the end-to-end tests start it (their production settings;
    the key-transparency log serves new entries at once, as with DEBUG)."""
    from tests.e2e.server import ServerProcess, production_env

    os.environ.setdefault("RELAIS_REDIS_PREFIX", "archive-bench")
    env = production_env(
        RELAIS_DEBUG="1",
        RELAIS_ATTACHMENT_ROOT=str(work / "attachments"),
        RELAIS_LOG_LEVEL="WARNING",
        RELAIS_RATE_USER="100000/minute",
    )
    server = ServerProcess(env=env, log_path=work / "server.log")
    server.start()
    return server


async def _register_archiver(url: str, work: Path, token_file: Path) -> None:
    """The archiver certifies its keys first, so the room can name it."""
    from archive.service import ArchivingClient
    from client.store import KeyStore

    client = ArchivingClient(
        server=url, store=KeyStore.open(work / "archiver.store", PASSPHRASE, n=2**14)
    )
    await client.register_from_file(token_file)
    await client.connect()  # publishes its key-agreement key
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--mail-server", action="store_true", help="send to a loopback Postfix")
    parser.add_argument(
        "--child", nargs=4, metavar=("URL", "WORK", "TOKEN", "ROOM"), help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.child:
        url, work, token, room = arguments.child
        result = asyncio.run(
            _archiver(
                url, Path(work), Path(token), int(room), "RELAIS_ARCHIVE_SMTP_HOST" in os.environ
            )
        )
        print(json.dumps(result))
        return
    database = os.environ["RELAIS_DATABASE_URL"]
    _fresh_database(database)
    nurse, doctor, _ = _prepare_database()
    with tempfile.TemporaryDirectory(prefix="relais-archive-bench-") as folder:
        work = Path(folder)
        token_file = work / "archiver.json"
        _archiver_token(token_file)
        server = _start_server(work)
        url = server.http_url
        try:
            asyncio.run(_register_archiver(url, work, token_file))
            room = asyncio.run(
                _fill_room(url, work, (nurse, doctor), arguments.messages, arguments.photos)
            )
            env = dict(os.environ)
            if arguments.mail_server:
                env.update(_mail_server_env(work))
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.archive",
                    "--child",
                    url,
                    str(work),
                    str(token_file),
                    str(room),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                raise SystemExit(child.stderr[-3000:])
            result = json.loads(child.stdout.strip().splitlines()[-1])
        finally:
            server.stop()
            _stop_mail_server()
    per_archive = result["archive_s"] + result["send_s"]
    where = "loopback Postfix, STARTTLS + client certificate"
    print(
        f"catch-up of {result['messages']} messages ({arguments.photos} photos): "
        f"{result['catch_up_s']:.1f} s\n"
        f"archive built (photos decrypted, PDF, CDA, XDM, mail "
        f"{result['mail_bytes'] / 1e6:.1f} MB): {result['archive_s']:.1f} s\n"
        f"send ({where if arguments.mail_server else 'nowhere'}): "
        f"{result['send_s']:.2f} s, state {result['state']}\n"
        f"archives per minute for such a room: {60 / per_archive:.1f}\n"
        f"archiver peak memory (max RSS): {result['peak_rss_mb']:.0f} MB"
    )


_MAIL: list[Any] = []


def _mail_server_env(work: Path) -> dict[str, str]:
    from tests.archive.mailserver import running_mail_server

    context = running_mail_server()
    server = context.__enter__()
    _MAIL.append(context)
    config = server.smtp_config()
    imap = server.imap_config()
    return {
        "RELAIS_ARCHIVE_IMAP_PORT": str(imap.port),
        "RELAIS_ARCHIVE_SMTP_HOST": config.host,
        "RELAIS_ARCHIVE_SMTP_PORT": str(config.port),
        "RELAIS_ARCHIVE_SMTP_CLIENT_CERT": str(config.client_cert),
        "RELAIS_ARCHIVE_SMTP_CLIENT_KEY": str(config.client_key),
        "RELAIS_ARCHIVE_SMTP_CA_BUNDLE": str(config.ca_bundle),
        "RELAIS_ARCHIVE_SMTP_USERNAME": config.username or "",
        "RELAIS_ARCHIVE_SMTP_PASSWORD": config.password or "",
        "RELAIS_ARCHIVE_MAILBOX": server.users["archiver"],
        "RELAIS_ARCHIVE_RECIPIENTS": server.users["records"],
    }


def _stop_mail_server() -> None:
    for context in _MAIL:
        context.__exit__(None, None, None)


if __name__ == "__main__":
    main()
