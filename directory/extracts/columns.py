"""Column names of the Annuaire Santé open-data extracts (docs/identity.md).

Both files are UTF-8, pipe-separated, with a header line, and every line ends with a
trailing ``|``. Column labels vary slightly in case between releases ("coord.
Structure", "Code département"), so headers are matched case-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence

# PS_LibreAcces_Personne_activite, in file order (the four last columns are in newer files).
PERSONNE_ACTIVITE_COLUMNS: tuple[str, ...] = (
    "Type d'identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Code civilité d'exercice",
    "Libellé civilité d'exercice",
    "Code civilité",
    "Libellé civilité",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code profession",
    "Libellé profession",
    "Code catégorie professionnelle",
    "Libellé catégorie professionnelle",
    "Code type savoir-faire",
    "Libellé type savoir-faire",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Code mode exercice",
    "Libellé mode exercice",
    "Numéro SIRET site",
    "Numéro SIREN site",
    "Numéro FINESS site",
    "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure",
    "Raison sociale site",
    "Enseigne commerciale site",
    "Complément destinataire (coord. structure)",
    "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)",
    "Indice répétition voie (coord. structure)",
    "Code type de voie (coord. structure)",
    "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)",
    "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)",
    "Code postal (coord. structure)",
    "Code commune (coord. structure)",
    "Libellé commune (coord. structure)",
    "Code pays (coord. structure)",
    "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)",
    "Téléphone 2 (coord. structure)",
    "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)",
    "Code Département (structure)",
    "Libellé Département (structure)",
    "Ancien identifiant de la structure",
    "Autorité d'enregistrement",
    "Code secteur d'activité",
    "Libellé secteur d'activité",
    "Code section tableau pharmaciens",
    "Libellé section tableau pharmaciens",
    "Code fonction",
    "Libellé fonction",
    "Code genre d'activité",
    "Libellé genre d'activité",
)

# Extraction_Correspondance_MSSante: 31 columns, in file order.
MSSANTE_COLUMNS: tuple[str, ...] = (
    "Type de BAL",
    "Adresse BAL",
    "Type Identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Type identifiant structure",
    "Identification Structure",
    "Service de rattachement",
    "Civilité d'exercice",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Catégorie profession",
    "Libellé de catégorie profession",
    "Code Profession",
    "Libellé Profession",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Dématérialisation",
    "Raison Sociale structure BAL",
    "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION",
    "L3COMPLEMENTDISTRIBUTION",
    "L4NUMEROVOIE",
    "L4COMPLEMENTNUMEROVOIE",
    "NL4TYPEVOIE",
    "L4LIBELLEVOIE",
    "L5LIEUDITMENTION",
    "L6LIGNEACHEMINEMENT",
    "Code postal",
    "Département",
    "Pays",
)


class HeaderError(ValueError):
    """The header line lacks a column the importer needs."""


def header_key(label: str) -> str:
    """How two labels are compared: case-insensitive, spaces collapsed."""
    return " ".join(label.split()).casefold()


def split_line(line: str) -> list[str]:
    """The fields of one line, without the trailing ``|`` every line ends with."""
    fields = line.rstrip("\r\n").split("|")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def column_positions(header: Sequence[str], wanted: Sequence[str]) -> dict[str, int]:
    """Position of each ``wanted`` column in ``header``; HeaderError names the missing ones."""
    positions = {header_key(label): index for index, label in enumerate(header)}
    missing = [label for label in wanted if header_key(label) not in positions]
    if missing:
        raise HeaderError("missing column(s): " + ", ".join(missing))
    return {label: positions[header_key(label)] for label in wanted}
