"""``python -m client archive``: the organisation's archiver (docs/archive.md).

    python -m client archive run --server URL --store PATH --state-dir DIR \\
        [--token-file FILE]                 # first run: the file manage.py create_archiver wrote
    python -m client archive status --state-dir DIR [--json]
    python -m client archive cut --room N --state-dir DIR
    python -m client archive retry --archive N --state-dir DIR

``run`` keeps going until SIGTERM or Ctrl-C. The key store's passphrase comes from
``RELAIS_PASSPHRASE``, or from the file ``--passphrase-file`` (or
``RELAIS_ARCHIVE_PASSPHRASE_FILE``) names; ``status``, ``cut`` and ``retry`` need none:
they read and write only the outbox's metadata. Every setting has a ``RELAIS_ARCHIVE_*``
variable (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from archive.cuts import CutPolicy
from archive.outbox import Backoff, Outbox
from archive.sealing import Sealer, outbox_key
from archive.service import ArchiveService, ArchivingClient, ServiceSettings
from archive.status import room_statuses, status_lines
from client.cli_errors import EXIT_FAILURE, CliError, explain
from client.logview import LogConfig
from client.store import KeyStore, StoreError

Output = Callable[[str], None]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = os.environ
    archive = commands.add_parser("archive", help="the organisation's archiver (MSSanté)")
    actions = archive.add_subparsers(dest="archive_command", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=text)
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=env.get("RELAIS_ARCHIVE_STATE_DIR"),
            required="RELAIS_ARCHIVE_STATE_DIR" not in env,
            help="the archiver's state directory (its outbox)",
        )
        return sub

    run = action("run", "run the archiver until stopped")
    run.add_argument("--server", default=env.get("RELAIS_SERVER", "http://127.0.0.1:8000"))
    run.add_argument(
        "--store",
        type=Path,
        default=env.get("RELAIS_ARCHIVE_STORE"),
        required="RELAIS_ARCHIVE_STORE" not in env,
        help="the archiver's encrypted key store",
    )
    run.add_argument(
        "--token-file",
        type=Path,
        default=env.get("RELAIS_ARCHIVE_TOKEN_FILE"),
        help="first run: the token file of manage.py create_archiver",
    )
    run.add_argument(
        "--passphrase-file", type=Path, default=env.get("RELAIS_ARCHIVE_PASSPHRASE_FILE")
    )
    status = action("status", "per room: archived up to, pending, failed and why")
    status.add_argument("--json", action="store_true", help="as JSON")
    cut = action("cut", "archive a room now (the running archiver cuts it)")
    cut.add_argument("--room", type=int, required=True)
    retry = action("retry", "send a failed archive again (after fixing its cause)")
    retry.add_argument("--archive", type=int, required=True)


def service_settings(env: Mapping[str, str]) -> ServiceSettings:
    """``RELAIS_ARCHIVE_*``: the cut policy, the mailbox and the rhythm."""

    def number(name: str, default: int, low: int, high: int) -> int:
        text = env.get(name, "").strip()
        try:
            value = int(text) if text else default
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise CliError(
                f"{name} : un nombre de {low} à {high}", f"{name}: a number from {low} to {high}"
            )
        return value

    sender = env.get("RELAIS_ARCHIVE_MAILBOX", "").strip()
    if not sender:
        raise CliError(
            "RELAIS_ARCHIVE_MAILBOX : la boîte MSSanté de l'organisation est requise",
            "RELAIS_ARCHIVE_MAILBOX: the organisation's MSSanté mailbox is required",
        )
    recipients = tuple(
        address.strip()
        for address in env.get("RELAIS_ARCHIVE_RECIPIENTS", "").split(",")
        if address.strip()
    )
    daily = env.get("RELAIS_ARCHIVE_DAILY_HOUR", "20").strip()
    return ServiceSettings(
        sender=sender,
        recipients=recipients or (sender,),
        policy=CutPolicy(
            idle=timedelta(minutes=number("RELAIS_ARCHIVE_IDLE_MINUTES", 120, 1, 10080)),
            daily_hour=None
            if daily.lower() in ("", "none", "off")
            else number("RELAIS_ARCHIVE_DAILY_HOUR", 20, 0, 23),
        ),
        sync_every=timedelta(seconds=number("RELAIS_ARCHIVE_SYNC_SECONDS", 10, 1, 3600)),
        receipts_every=timedelta(seconds=number("RELAIS_ARCHIVE_RECEIPTS_SECONDS", 60, 1, 86400)),
        retry_base=timedelta(seconds=number("RELAIS_ARCHIVE_RETRY_SECONDS", 5, 1, 3600)),
    )


def _passphrase(args: argparse.Namespace) -> str:
    if os.environ.get("RELAIS_PASSPHRASE"):
        return os.environ["RELAIS_PASSPHRASE"]
    if args.passphrase_file is not None:
        try:
            return Path(args.passphrase_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise CliError(
                f"fichier de phrase de passe illisible : {error.strerror}",
                f"cannot read the passphrase file: {error.strerror}",
            ) from None
    raise CliError(
        "phrase de passe du coffre : RELAIS_PASSPHRASE ou --passphrase-file",
        "key store passphrase: RELAIS_PASSPHRASE or --passphrase-file",
    )


def main(args: argparse.Namespace, out: Output) -> int:
    try:
        if args.archive_command == "run":
            return asyncio.run(run(args, out))
        outbox = Outbox(Path(args.state_dir), None)
        try:
            return _operator(args, outbox, out)
        finally:
            outbox.close()
    except KeyboardInterrupt:
        return 0
    except CliError as error:
        out(f"!! {error}")
        return EXIT_FAILURE
    except Exception as error:  # the last line of defence: one line, never a traceback
        out(f"!! {explain(error, server=getattr(args, 'server', ''), store=str(args.state_dir))}")
        return EXIT_FAILURE


def _operator(args: argparse.Namespace, outbox: Outbox, out: Output) -> int:
    if args.archive_command == "status":
        statuses = room_statuses(outbox)
        if args.json:
            out(json.dumps([status.to_json() for status in statuses], indent=1))
        else:
            for line in status_lines(statuses):
                out(line)
        return 0
    if args.archive_command == "cut":
        if not outbox.request_cut(args.room):
            raise CliError(
                f"le salon {args.room} n'est pas archivé ici",
                f"room {args.room} is not archived here",
            )
        out(
            f"coupe demandée pour le salon {args.room} : l'archiveur la fait à son prochain "
            f"tour / cut requested for room {args.room}: the archiver makes it on its next turn"
        )
        return 0
    if not outbox.retry_failed(args.archive):
        raise CliError(
            f"l'archive {args.archive} n'est pas en échec",
            f"archive {args.archive} has not failed",
        )
    out(f"archive {args.archive} : nouvel envoi au prochain tour / sent again on the next turn")
    return 0


async def run(args: argparse.Namespace, out: Output) -> int:
    settings = service_settings(os.environ)
    try:
        store = KeyStore.open(Path(args.store), _passphrase(args))
    except StoreError as error:
        raise CliError(f"coffre de clés : {error}", f"key store: {error}") from None
    client = ArchivingClient(
        server=args.server.rstrip("/"), store=store, log_config=LogConfig.from_environment()
    )
    try:
        if not client.registered:
            if args.token_file is None:
                raise CliError(
                    "premier démarrage : --token-file (le fichier de manage.py create_archiver)",
                    "first run: --token-file (the file manage.py create_archiver wrote)",
                )
            await client.register_from_file(Path(args.token_file))
            out(f"archiveur / archiver {client.national_id} device {client.device_id}: registered")
        outbox = Outbox(
            Path(args.state_dir),
            Sealer(outbox_key(client.store.data)),
            author=f"{client.national_id}/{client.device_id}",
            backoff=Backoff(base=settings.retry_base),
        )
        client.save()
        from archive.wiring import real_ports  # the packaging and the mail transport

        packager, delivery = real_ports(client, settings)
        service = ArchiveService(
            client=client,
            outbox=outbox,
            packager=packager,
            delivery=delivery,
            settings=settings,
            out=out,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        out("archiveur démarré / archiver started")
        await service.run(stop)
        out("archiveur arrêté / archiver stopped")
        outbox.close()
        return 0
    finally:
        await client.close()
