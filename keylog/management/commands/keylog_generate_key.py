"""``manage.py keylog_generate_key PATH``: create the log's seed file (mode 0600) and
print the public keys to ship with the apps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from e2ee.encoding import b64u
from e2ee.transparency import log_key_id
from keylog.keys import derive_keys, read_seed_file, write_seed_file


class Command(BaseCommand):
    help = "Create the key-transparency log's seed file (RELAIS_KEYLOG_KEY_FILE)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="where to write the seed (must not exist)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            write_seed_file(path)
        except FileExistsError:
            raise CommandError(
                f"{path} exists already; the log keeps its key / le fichier existe déjà"
            ) from None
        keys = derive_keys(read_seed_file(path))
        self.stdout.write(f"log key (RELAIS_LOG_PUBLIC_KEY): {b64u(keys.log_public)}\n")
        self.stdout.write(f"VRF key: {b64u(keys.vrf_public)}\n")
        self.stdout.write(f"log id: {log_key_id(keys.log_public)}\n")
