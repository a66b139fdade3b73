from __future__ import annotations

from pathlib import Path

import pytest

from directory.extracts.columns import MSSANTE_COLUMNS, PERSONNE_ACTIVITE_COLUMNS
from directory.extracts.synthetic import write_sample_extracts


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, Path]:
    """A synthetic extract of 60 people (about 72 activity rows) and its MSSanté file."""
    return write_sample_extracts(tmp_path / "extract", people=60, seed=7)


def person_line(**values: str) -> str:
    """One PS_LibreAcces_Personne_activite line; unnamed columns are empty."""
    return "|".join(values.get(column, "") for column in PERSONNE_ACTIVITE_COLUMNS) + "|\n"


def mailbox_line(**values: str) -> str:
    return "|".join(values.get(column, "") for column in MSSANTE_COLUMNS) + "|\n"


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)
