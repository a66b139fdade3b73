"""``manage.py update_directory``: download the Annuaire Santé extracts and import them.

Run daily by ``relais-directory-import.timer`` (docs/deployment.md). Each extract is
downloaded from its configured URL, its text file unpacked, and imported with
``import_directory`` unless it is the very file imported last time (same name, so the
same generation time). The archives of the last download stay in
``RELAIS_DIRECTORY_DOWNLOAD_DIR``; a failed download or import changes nothing in the
directory and exits non-zero with one line saying why, in English and French.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory.extracts.download import (
    MSSANTE_MEMBER,
    PERSONNE_MEMBER,
    DownloadError,
    Extract,
    download,
    extract_member,
)

STATE_FILE = "last-import.json"


class Command(BaseCommand):
    help = "Download the Annuaire Santé extracts (RELAIS_DIRECTORY_*_URL) and import them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="import even a file imported already"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config: dict[str, Any] = settings.RELAIS_DIRECTORY
        folder = Path(config["DOWNLOAD_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        state_path = folder / STATE_FILE
        state: dict[str, str] = (
            json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
        )
        extracts = {
            "personne_activite": Extract(config["PERSONNE_URL"], PERSONNE_MEMBER, "people"),
            "mssante": Extract(config["MSSANTE_URL"], MSSANTE_MEMBER, "MSSanté mailboxes"),
        }
        if not any(extract.url for extract in extracts.values()):
            raise CommandError(
                "Set RELAIS_DIRECTORY_PERSONNE_URL and/or RELAIS_DIRECTORY_MSSANTE_URL. / "
                "Renseignez RELAIS_DIRECTORY_PERSONNE_URL ou RELAIS_DIRECTORY_MSSANTE_URL."
            )
        files: dict[str, Path] = {}
        for key, extract in extracts.items():
            if not extract.url:
                continue
            try:
                self.stdout.write(f"downloading the {extract.label} extract from {extract.url}")
                archive = download(
                    extract.url,
                    folder / f"{key}.zip",
                    ca_file=config["CA_FILE"],
                    timeout=config["HTTP_TIMEOUT_SECONDS"],
                )
                text = extract_member(archive, extract.member, folder)
            except DownloadError as error:
                raise CommandError(
                    f"Directory not updated: {error} / Annuaire non mis à jour : {error}"
                ) from None
            if state.get(key) == text.name and not options["force"]:
                self.stdout.write(f"{text.name}: imported already, skipped")
                continue
            files[key] = text
        if not files:
            self.stdout.write("the directory is up to date")
            return
        arguments = ["--no-progress"]
        for key, path in files.items():
            arguments += [f"--{key.replace('_', '-')}", str(path)]
        call_command("import_directory", *arguments, stdout=self.stdout, stderr=self.stderr)
        state.update({key: path.name for key, path in files.items()})
        state_path.write_text(json.dumps(state), encoding="utf-8")
        for path in files.values():
            path.unlink()  # the archive stays; the unpacked text is large
