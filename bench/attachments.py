"""Attachment benchmarks: the photo pipeline, and transfers against a real server.

    RELAIS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/relais_attachments_bench \\
        .venv/bin/python -m bench.attachments

1. A 12-megapixel phone JPEG (4032 x 3024, EXIF orientation and GPS, sensor-like grain)
   through the whole client pipeline: open, orient, strip, resize to 2048 px, re-encode,
   thumbnail (fitted to the message), pad and encrypt. Target: < 400 ms. Then the same
   for a 12 MP picture whose detail survives at thumbnail size, the worst case for
   fitting the thumbnail (encoded several times, smaller and smaller).
2. A 20 MB file encrypted, uploaded in parts to a real Daphne process over loopback,
   downloaded with streaming decryption and hash check, against a plain file copy.
3. The same 12 MP photo sent by the SDK (``RelaisClient.send_photo``: pipeline, upload
   of the photo, end-to-end encrypted message carrying the thumbnail, until the server's ack),
   and how long until the receiving SDK client has it saved (message, download, check,
   decrypt).

The database named by RELAIS_DATABASE_URL (its name must contain "bench") is dropped,
created and migrated at every run; never point it at a real one.
The machine is shared: run it more than once and read the spread. CPU times (the
client's own work, ``time.process_time``) vary much less with other load than wall
times.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import ExifTags, Image

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
SECRET_KEY = "bench-" + "b" * 60


def twelve_megapixel_jpeg() -> bytes:
    width, height = 4032, 3024
    image = Image.new("RGB", (width, height), (180, 120, 110))
    image.paste((150, 40, 50), (width // 3, height // 3, 2 * width // 3, 2 * height // 3))
    image = Image.blend(image, Image.effect_noise((width, height), 40).convert("RGB"), 0.2)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "BenchCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (48.0, 51.0, 24.0)})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def twelve_megapixel_detail_jpeg() -> bytes:
    """Random 12-pixel squares: detail that survives down to thumbnail size, the worst
    case for fitting the thumbnail into the message (it is encoded several times)."""
    width, height = 4032, 3024
    coarse = Image.frombytes("RGB", (width // 12, height // 12), os.urandom(width * height // 48))
    buffer = io.BytesIO()
    coarse.resize((width, height), Image.Resampling.NEAREST).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def bench_pipeline(rounds: int) -> None:
    _bench_pipeline(rounds, twelve_megapixel_jpeg(), "12 MP JPEG")
    _bench_pipeline(rounds, twelve_megapixel_detail_jpeg(), "12 MP JPEG, detail at 320 px")


def _bench_pipeline(rounds: int, photo: bytes, label: str) -> None:
    from client.attachments.sending import prepare_photo

    prepare_photo(photo, declared_mime="image/jpeg")  # warm-up: plugin registration, caches
    timings, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        prepared = prepare_photo(photo, declared_mime="image/jpeg")
        timings.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        prepared.main.file.close()
    image = prepared.image
    print(
        f"photo pipeline, {label} ({len(photo) / MB:.1f} MB) -> "
        f"{image.width}x{image.height} ({len(image.data) / MB:.2f} MB, blob "
        f"{prepared.main.ciphertext_size / MB:.3f} MB) + {image.thumbnail_width}x"
        f"{image.thumbnail_height} thumbnail ({len(image.thumbnail or b'')} B), encrypted: "
        f"median {statistics.median(timings):.0f} ms, "
        f"min {min(timings):.0f} ms, max {max(timings):.0f} ms over {rounds} runs "
        f"(target < 400 ms); CPU time median {statistics.median(cpu):.0f} ms"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


Login = tuple[str, int, str]  # national id, device, token


def _prepare_database() -> tuple[Login, Login, int]:
    """Migrate, then a nurse device, a doctor device and a room between them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
    os.environ.setdefault("RELAIS_DEBUG", "1")  # this process only prepares rows
    os.environ["RELAIS_SECRET_KEY"] = SECRET_KEY
    import django

    django.setup()
    from django.core.management import call_command

    from chat.services.devices import do_issue_device_token
    from directory.demo import ensure_demo_practitioners
    from tests.signed_rooms import create_room as do_create_room

    call_command("migrate", verbosity=0)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Django's logging set it to INFO
    nurse, doctor, *_ = ensure_demo_practitioners()
    nurse_device, nurse_token = do_issue_device_token(practitioner=nurse, device_name="bench")
    doctor_device, doctor_token = do_issue_device_token(practitioner=doctor, device_name="bench")
    room = do_create_room(creator=nurse, kind="direct", member_ids=[doctor.national_id])
    return (
        (nurse.national_id, nurse_device.pk, nurse_token),
        (doctor.national_id, doctor_device.pk, doctor_token),
        room.pk,
    )


def _start_server(store: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    from keylog.keys import key_file

    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAIS_")}
    env.update(
        {
            "RELAIS_DEBUG": "0",
            "RELAIS_SECRET_KEY": SECRET_KEY,
            # The log key this process certified the bench devices with.
            "RELAIS_KEYLOG_KEY_FILE": str(key_file()),
            "RELAIS_ALLOWED_HOSTS": "127.0.0.1",
            "RELAIS_DATABASE_URL": os.environ["RELAIS_DATABASE_URL"],
            "RELAIS_SECURE_SSL_REDIRECT": "0",
            "RELAIS_ATTACHMENT_ROOT": str(store),
            "RELAIS_LOG_LEVEL": "WARNING",
            "RELAIS_RATE_USER": "100000/minute",
        }
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "server.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 - loopback
                return process, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)  # polling for the port to open
    process.kill()
    raise RuntimeError(log.read_text()[-2000:])


async def _transfer(url: str, tokens: tuple[str, str], room: int, work: Path, size: int) -> None:
    from client.attachments.descriptor import build_descriptor
    from client.attachments.receiving import receive_attachment
    from client.attachments.sending import prepare_document
    from client.attachments.transfer import AttachmentApi

    source = work / "source.bin"
    source.write_bytes(os.urandom(size))

    start = time.perf_counter()
    shutil.copyfile(source, work / "copy.bin")
    copy_seconds = time.perf_counter() - start

    start, start_cpu = time.perf_counter(), time.process_time()
    blob = prepare_document(source, declared_mime="application/octet-stream")
    encrypt_seconds = time.perf_counter() - start
    encrypt_cpu_ms = (time.process_time() - start_cpu) * 1000
    async with AttachmentApi(base_url=url, token=tokens[0]) as api:
        start = time.perf_counter()
        attachment = await api.upload_blob(
            blob.file, size=blob.ciphertext_size, sha256=blob.sha256, room=room, message_id="bench"
        )
        upload_seconds = time.perf_counter() - start
        blob.file.close()
        descriptor = build_descriptor(
            blob=attachment,
            key=blob.key,
            sha256=blob.sha256,
            size=blob.plaintext_size,
            mime="application/octet-stream",
        )
        start = time.perf_counter()
        await receive_attachment(api, descriptor, work / "received.bin")
        download_seconds = time.perf_counter() - start
    if (work / "received.bin").read_bytes() != source.read_bytes():
        raise RuntimeError("the received file differs")

    def rate(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms, {size / MB / seconds:.0f} MB/s"

    print(
        f"{size / MB:.0f} MB file (blob {descriptor.ciphertext_size / MB:.2f} MB), loopback, "
        "one Daphne process:"
    )
    print(f"  plain file copy              {rate(copy_seconds)}")
    print(f"  encrypt (client)             {rate(encrypt_seconds)}, CPU {encrypt_cpu_ms:.0f} ms")
    print(f"  upload in 4 MiB parts        {rate(upload_seconds)}")
    print(f"  download + decrypt + verify  {rate(download_seconds)}")
    total = encrypt_seconds + upload_seconds + download_seconds
    print(f"  whole round trip             {rate(total)} ({total / copy_seconds:.0f}x the copy)")


async def _sdk_photo(url: str, logins: tuple[Login, Login], work: Path, rounds: int) -> None:
    from client.session import RelaisClient
    from client.store import KeyStore

    clients = []
    for name, (national_id, device, token) in zip(("nurse", "doctor"), logins, strict=True):
        store = KeyStore.open(work / f"{name}.store", "bench passphrase", n=2**10)
        client = RelaisClient(server=url, store=store)
        await client.register_with_token(token=token, device=device, national_id=national_id)
        await client.connect()
        clients.append(client)
    nurse, doctor = clients
    room = await nurse.create_room(kind="direct", members=[doctor.national_id])
    async with asyncio.timeout(20):
        await doctor.wait_for_room(lambda r: r.room_id == room)
    photo = twelve_megapixel_jpeg()

    async def one_photo() -> tuple[float, float]:
        start = time.perf_counter()
        await nurse.send_photo(room, photo, name="plaie.jpg")
        acknowledged = time.perf_counter()
        message = await asyncio.wait_for(doctor.messages.get(), 20)
        if message.attachment is None:
            raise RuntimeError("the message carries no attachment")
        await doctor.save_attachment(message.attachment, work / "inbox")
        return (acknowledged - start) * 1000, (time.perf_counter() - start) * 1000

    await one_photo()  # warm-up: sender-key share, connections, plugin registration
    timings = [await one_photo() for _ in range(rounds)]
    for client in clients:
        await client.close()
    sends, saves = [send for send, _ in timings], [save for _, save in timings]
    print(f"SDK, 12 MP photo ({len(photo) / MB:.1f} MB), one Daphne process, {rounds} runs:")
    print(
        f"  send_photo until the ack (pipeline, upload, encrypted message): "
        f"median {statistics.median(sends):.0f} ms, min {min(sends):.0f}, max {max(sends):.0f}"
    )
    print(
        f"  until the receiver has it saved (+ message, download, verify, decrypt): "
        f"median {statistics.median(saves):.0f} ms, min {min(saves):.0f}, max {max(saves):.0f}"
    )


def bench_transfer(size: int, sdk_rounds: int) -> None:
    if "RELAIS_DATABASE_URL" not in os.environ:
        raise SystemExit("set RELAIS_DATABASE_URL to a PostgreSQL database for the bench")
    _fresh_database(os.environ["RELAIS_DATABASE_URL"])
    nurse, doctor, room = _prepare_database()
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as directory:
        work = Path(directory)
        process, url = _start_server(work / "store", work / "server.log")
        try:
            asyncio.run(_transfer(url, (nurse[2], doctor[2]), room, work, size))
            if sdk_rounds:
                asyncio.run(_sdk_photo(url, (nurse, doctor), work, sdk_rounds))
        finally:
            process.terminate()
            process.wait(timeout=10)


def _fresh_database(url: str) -> None:
    """Drop and create the bench database (PostgreSQL only), so that every run starts
    from the same state and its key-transparency log is signed by the bench's key. Only
    a database whose name contains "bench" is touched."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    if "bench" not in name:
        raise SystemExit(f"refusing to recreate {name!r}: a bench database name contains 'bench'")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')  # the operator's own bench name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="pipeline runs (default 7)")
    parser.add_argument("--size-mb", type=int, default=20, help="transfer size in MB")
    parser.add_argument("--sdk-rounds", type=int, default=5, help="SDK photos (0: skip)")
    parser.add_argument("--skip-transfer", action="store_true")
    arguments = parser.parse_args()
    bench_pipeline(arguments.rounds)
    if not arguments.skip_transfer:
        bench_transfer(arguments.size_mb * MB, arguments.sdk_rounds)


if __name__ == "__main__":
    main()
