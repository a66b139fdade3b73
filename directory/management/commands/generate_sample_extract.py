"""``manage.py generate_sample_extract``: fictitious extracts in the official format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory.extracts.synthetic import write_sample_extracts


class Command(BaseCommand):
    help = (
        "Write a synthetic PS_LibreAcces_Personne_activite file and its "
        "Extraction_Correspondance_MSSante companion (fictitious people, exact headers)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="where to write the two files")
        size = parser.add_mutually_exclusive_group()
        size.add_argument("--people", type=int, help="number of people (default 500)")
        size.add_argument("--rows", type=int, help="number of activity rows instead")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        people, rows = options["people"], options["rows"]
        if people is None and rows is None:
            people = 500
        for value in (people, rows):
            if value is not None and not 1 <= value <= 1_000_000:
                raise CommandError("The size must be between 1 and 1,000,000.")
        personne, mssante = write_sample_extracts(
            options["folder"], people=people, rows=rows, seed=options["seed"]
        )
        self.stdout.write(f"{personne}\n{mssante}")
