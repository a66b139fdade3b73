"""``manage.py create_archiver``: an organisation's archiver device, for the operator.

    manage.py create_archiver --structure-id 1750000123 \\
        --name "Centre de santé des Pentes" --token-file /etc/relais/archiver.json

Creates the organisation (or finds it, and updates its name) and a new archiver device,
then writes what the archiver needs to certify its keys to ``--token-file``: a JSON
object ``{"v", "national_id", "device", "token"}``. The file is created with mode 0600
and must not exist yet; the token appears nowhere else (not on the terminal, not in
the logs). The archiver then certifies its own keys with that token
(``POST /api/v1/devices/keys``; the SDK's ``ArchiverClient.register_from_file``) and
the log issues an ``archiver`` certificate (docs/e2ee.md, "The archiver").
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from chat.errors import RelaisError
from chat.services.organisations import do_create_archiver, structure_id_of


class Command(BaseCommand):
    help = "Create an organisation's archiver device and write its token to a 0600 file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--structure-id",
            required=True,
            help="national structure id (IdNat_Struct): 1+FINESS, 2+SIREN, 3+SIRET...",
        )
        parser.add_argument(
            "--name", required=True, help="the organisation's name, shown to room members"
        )
        parser.add_argument(
            "--token-file",
            required=True,
            type=Path,
            help="where to write the device token (created with mode 0600; must not exist)",
        )
        parser.add_argument("--device-name", default="archiver", help="a label for the device")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["token_file"]
        # Created first, exclusively and private: an existing file (perhaps another
        # archiver's token) is never overwritten, and the token never sits in a file
        # others can read.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(f"{path} exists; choose a new file for the token.") from None
        except OSError as error:
            raise CommandError(f"cannot create {path}: {error.strerror}") from None
        try:
            os.fchmod(descriptor, 0o600)  # whatever the umask
            with transaction.atomic():
                created = do_create_archiver(
                    structure_id=options["structure_id"],
                    name=options["name"],
                    device_name=options["device_name"],
                )
                secret = {
                    "v": 1,
                    "national_id": created.organisation.national_id,
                    "device": created.device.pk,
                    "token": created.token,
                }
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    descriptor = -1
                    file.write(json.dumps(secret) + "\n")
                    file.flush()
                    os.fsync(file.fileno())
        except BaseException as error:
            if descriptor >= 0:
                os.close(descriptor)
            with contextlib.suppress(OSError):
                path.unlink()  # nothing partial: no token file for a device that is not there
            if isinstance(error, RelaisError):
                raise CommandError(error.message) from None
            raise
        organisation = created.organisation
        verb = "created" if created.created_organisation else "found"
        self.stdout.write(
            f"Organisation {organisation.national_id} ({organisation.last_name}) {verb}; "
            f"structure id {structure_id_of(organisation)}."
        )
        self.stdout.write(
            f"Archiver device {created.device.pk} created; its token is in {path} (mode 0600)."
        )
        self.stdout.write(
            "Give that file to the archiver only: it certifies its keys with it, and the log "
            "then lists the device as this organisation's archiver."
        )
