"""``manage.py generate_vapid_keys``: make the server's VAPID key pair, once, at set-up.

Prints the environment lines to add to the production environment file, or appends
them to it with ``--env-file``. Changing the key later orphans every browser
subscription (browsers bind a subscription to the public key), so an existing key is
never replaced without ``--force``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from push.vapid import generate_key

VARIABLE = "RELAIS_VAPID_PRIVATE_KEY"


class Command(BaseCommand):
    help = "Generate the VAPID key pair for Web Push (RELAIS_VAPID_PRIVATE_KEY)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--env-file",
            type=Path,
            help="append the key to this environment file (created with mode 0600)",
        )
        parser.add_argument(
            "--subject",
            default="",
            help="also write RELAIS_VAPID_SUBJECT (a mailto: address or an https:// origin)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="add a new key even if the file has one (every subscription is then lost)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key = generate_key()
        lines = [f"{VARIABLE}={key.private_key_text}"]
        if options["subject"]:
            lines.append(f"RELAIS_VAPID_SUBJECT={options['subject']}")
        env_file: Path | None = options["env_file"]
        if env_file is None:
            self.stdout.write("\n".join(lines))
        else:
            self._append(env_file, lines, force=options["force"])
            self.stdout.write(f"VAPID private key written to {env_file}")
        self.stderr.write(
            f"Public key (the browsers' applicationServerKey, also served at "
            f"/api/v1/push/vapid-key): {key.public_key}"
        )

    def _append(self, env_file: Path, lines: list[str], *, force: bool) -> None:
        existing = env_file.read_text() if env_file.exists() else ""
        has_key = any(line.startswith(f"{VARIABLE}=") for line in existing.splitlines())
        if has_key and not force:
            raise CommandError(
                f"{env_file} already has {VARIABLE}; a new key orphans every push "
                "subscription. Use --force to add one anyway."
            )
        if has_key:
            kept = [
                line
                for line in existing.splitlines()
                if not line.startswith((f"{VARIABLE}=", "RELAIS_VAPID_SUBJECT="))
            ]
            existing = "\n".join(kept) + ("\n" if kept else "")
        elif existing and not existing.endswith("\n"):
            existing += "\n"
        descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(existing + "\n".join(lines) + "\n")
        env_file.chmod(0o600)
