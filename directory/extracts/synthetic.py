"""Synthetic Annuaire Santé extracts: fictitious people in the exact file format.

For the demo, the tests and the benchmark. Everything is made up (names drawn from
common French names, RPPS numbers in the ``1999...`` range with a valid Luhn check digit,
real profession, specialty and sector codes, real towns and postcodes), so the files
can be shared freely. Same seed, same files.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from directory.extracts.columns import MSSANTE_COLUMNS, PERSONNE_ACTIVITE_COLUMNS

LAST_NAMES = [
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefèvre",
    "Leroy",
    "Roux",
    "David",
    "Bertrand",
    "Morel",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Müller",
    "Lefebvre",
    "Faure",
    "André",
    "Mercier",
    "Blanc",
    "Guérin",
    "Boyer",
    "Garnier",
    "Chevalier",
    "François",
    "Legrand",
    "Gauthier",
    "Garcia",
    "Perrin",
    "Robin",
    "Clément",
    "Morin",
    "Nicolas",
    "Henry",
    "Roussel",
    "Mathieu",
    "Gautier",
    "Masson",
    "Marchand",
    "Duval",
    "Denis",
    "Dumont",
    "Marie",
    "Lemaire",
    "Noël",
    "Meyer",
    "Dufour",
    "Meunier",
    "Brun",
    "Blanchard",
    "Giraud",
    "Joly",
    "Rivière",
    "Lucas",
    "Brunet",
    "Gaillard",
    "Barbier",
    "Arnaud",
    "Martínez",
    "Gérard",
    "Roche",
    "Renard",
    "Schmitt",
    "Roy",
    "Leroux",
    "Colin",
    "Vidal",
    "Caron",
    "Picard",
    "Roger",
    "Fabre",
    "Aubert",
    "Lemoine",
    "Renaud",
    "Dumas",
    "Lacroix",
    "Olivier",
    "Philippe",
    "Bourgeois",
    "Pierre",
    "Benoît",
    "Rey",
    "Leclerc",
    "Payet",
    "Rolland",
    "Le",
    "Gall",
    "Benali",
    "Nguyen",
    "N'Diaye",
    "Da",
    "Silva",
    "Hoarau",
    "Kervella",
    "Saint-Martin",
    "D'Almeida",
]
FIRST_NAMES = [
    "Marie",
    "Jean",
    "Pierre",
    "Michel",
    "André",
    "Philippe",
    "Nathalie",
    "Isabelle",
    "Sylvie",
    "Catherine",
    "Françoise",
    "Stéphane",
    "Christophe",
    "Frédéric",
    "Sébastien",
    "Céline",
    "Émilie",
    "Élodie",
    "Camille",
    "Léa",
    "Chloé",
    "Manon",
    "Inès",
    "Zoé",
    "Hélène",
    "Jérôme",
    "Benoît",
    "Loïc",
    "Gaëlle",
    "Anaïs",
    "Noémie",
    "Thérèse",
    "Agnès",
    "Joël",
    "Raphaël",
    "Maël",
    "Léo",
    "Lucas",
    "Hugo",
    "Louis",
    "Arthur",
    "Jules",
    "Nicolas",
    "Julien",
    "Thomas",
    "Claire",
    "Sophie",
    "Aurélie",
    "Karim",
    "Yasmine",
    "Mathilde",
    "Clémence",
    "Cécile",
    "Josiane",
]

# (code, label, weight, specialties as (code, label), MSSanté domain)
PROFESSIONS: tuple[tuple[str, str, int, tuple[tuple[str, str], ...], str], ...] = (
    (
        "10",
        "Médecin",
        30,
        (
            ("SM26", "Qualifié en Médecine Générale"),
            ("SM53", "Spécialiste en Médecine Générale"),
            ("SM54", "Médecine Générale"),
            ("SM04", "Cardiologie et maladies vasculaires"),
            ("SM03", "Biologie médicale"),
            ("SM49", "Santé publique et médecine sociale"),
        ),
        "medecin",
    ),
    ("60", "Infirmier", 35, (), "infirmier"),
    ("21", "Pharmacien", 10, (), "pharmacien"),
    ("70", "Masseur-Kinésithérapeute", 10, (), "masseur-kinesitherapeute"),
    (
        "40",
        "Chirurgien-Dentiste",
        5,
        (("SCD01", "Orthopédie dento-faciale"),),
        "chirurgien-dentiste",
    ),
    ("50", "Sage-Femme", 3, (), "sage-femme"),
    ("91", "Orthophoniste", 3, (), "orthophoniste"),
    ("80", "Pédicure-Podologue", 2, (), "pedicure-podologue"),
    ("92", "Orthoptiste", 1, (), "orthoptiste"),
    ("95", "Diététicien", 1, (), "dieteticien"),
)
# (postcode, INSEE commune code, town, département code, département)
TOWNS = (
    ("75009", "75109", "Paris 9e Arrondissement", "75", "Paris"),
    ("75015", "75115", "Paris 15e Arrondissement", "75", "Paris"),
    ("69003", "69383", "Lyon 3e Arrondissement", "69", "Rhône"),
    ("69100", "69266", "Villeurbanne", "69", "Rhône"),
    ("13005", "13205", "Marseille 5e Arrondissement", "13", "Bouches-du-Rhône"),
    ("31000", "31555", "Toulouse", "31", "Haute-Garonne"),
    ("06000", "06088", "Nice", "06", "Alpes-Maritimes"),
    ("44000", "44109", "Nantes", "44", "Loire-Atlantique"),
    ("67000", "67482", "Strasbourg", "67", "Bas-Rhin"),
    ("34000", "34172", "Montpellier", "34", "Hérault"),
    ("33000", "33063", "Bordeaux", "33", "Gironde"),
    ("59000", "59350", "Lille", "59", "Nord"),
    ("35000", "35238", "Rennes", "35", "Ille-et-Vilaine"),
    ("51100", "51454", "Reims", "51", "Marne"),
    ("42000", "42218", "Saint-Étienne", "42", "Loire"),
    ("83000", "83137", "Toulon", "83", "Var"),
    ("38000", "38185", "Grenoble", "38", "Isère"),
    ("21000", "21231", "Dijon", "21", "Côte-d'Or"),
    ("49000", "49007", "Angers", "49", "Maine-et-Loire"),
    ("97400", "97411", "Saint-Denis", "974", "La Réunion"),
    ("20000", "2A004", "Ajaccio", "2A", "Corse-du-Sud"),
    ("29200", "29019", "Brest", "29", "Finistère"),
    ("63000", "63113", "Clermont-Ferrand", "63", "Puy-de-Dôme"),
    ("87000", "87085", "Limoges", "87", "Haute-Vienne"),
    ("64200", "64122", "Biarritz", "64", "Pyrénées-Atlantiques"),
    ("74000", "74010", "Annecy", "74", "Haute-Savoie"),
    ("26000", "26362", "Valence", "26", "Drôme"),
    ("46000", "46042", "Cahors", "46", "Lot"),
    ("05000", "05061", "Gap", "05", "Hautes-Alpes"),
    ("48000", "48095", "Mende", "48", "Lozère"),
)
# Smaller communes, made up but shaped like real ones: real département codes, postcodes
# in the département's range, names built from common toponyms. With the big towns above
# they spread activities over about 3,000 postcodes, as real ones spread over ~6,000.
_DEPARTMENTS = [f"{n:02d}" for n in range(1, 96) if n != 20] + ["2A", "2B"]
_PREFIXES = ("Saint-", "Sainte-", "", "", "Le ", "La ", "Les ", "Villers-", "Mont-")
_STEMS = [
    "Martin",
    "Pierre",
    "Vallon",
    "Bois",
    "Roche",
    "Fontaine",
    "Marais",
    "Chêne",
    "Pont",
    "Bourg",
    "Clair",
    "Genêt",
    "Étang",
    "Moulin",
    "Laurent",
    "Aubin",
    "Hilaire",
    "Germain",
    "Forge",
    "Prés",
    "Champs",
    "Côte",
    "Lande",
    "Vigne",
]
_SUFFIXES = ("", "", "-sur-Loire", "-en-Bresse", "-les-Bains", "-le-Vieux", "-la-Forêt",
             "-sur-Mer", "-d'Auvergne")  # fmt: skip


def _communes() -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(42)  # noqa: S311 (made-up data, not security)
    communes = []
    for dept in _DEPARTMENTS:
        number = "20" if dept in {"2A", "2B"} else dept
        for index in range(30):
            postcode = f"{number}{100 + index * 30:03d}"
            name = rng.choice(_PREFIXES) + rng.choice(_STEMS) + rng.choice(_SUFFIXES)
            communes.append((postcode, f"{dept}{index:03d}", name, dept, f"Département {dept}"))
    return communes


COMMUNES = _communes()


def _place(rng: random.Random) -> tuple[str, str, str, str, str]:
    """Three activities in ten in a big town, the others in smaller communes."""
    return rng.choice(TOWNS) if rng.random() < 0.3 else rng.choice(COMMUNES)


SECTORS = (
    ("SA07", "Cabinet individuel", "L", "Libéral"),
    ("SA08", "Cabinet de groupe", "L", "Libéral"),
    ("SA01", "Etablissement public de santé", "S", "Salarié"),
    ("SA33", "Officine de pharmacie", "L", "Libéral"),
    ("SA05", "Centre de santé", "S", "Salarié"),
)
STREETS = (
    ("R", "Rue", "de la République"),
    ("AV", "Avenue", "Jean Jaurès"),
    ("BD", "Boulevard", "Victor Hugo"),
    ("PL", "Place", "de la Mairie"),
    ("R", "Rue", "Pasteur"),
    ("CHE", "Chemin", "des Écoles"),
)


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:  # doubled once the check digit is appended
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def synthetic_rpps(index: int) -> str:
    """A fictitious 11-digit RPPS number with a valid check digit (``1999...``)."""
    body = f"1999{index:06d}"
    return body + luhn_check_digit(body)


def synthetic_adeli(index: int) -> str:
    """A fictitious 9-digit ADELI number with a valid check digit (département 99)."""
    body = f"99{index % 100:02d}{index // 100 % 10000:04d}"
    return body + luhn_check_digit(body)


@dataclass(frozen=True)
class Person:
    national_id: str
    id_type: str
    number: str
    civility: str
    title: str
    first_name: str
    last_name: str
    profession: tuple[str, str, int, tuple[tuple[str, str], ...], str]
    specialty: tuple[str, str] | None


def _people(count: int, rng: random.Random) -> Iterator[Person]:
    weights = [profession[2] for profession in PROFESSIONS]
    for index in range(count):
        profession = rng.choices(PROFESSIONS, weights)[0]
        # Some paramedical professions were long registered in ADELI only.
        adeli = profession[0] in {"91", "92", "95"} and rng.random() < 0.5
        number = synthetic_adeli(index) if adeli else synthetic_rpps(index)
        id_type = "0" if adeli else "8"
        woman = rng.random() < 0.6
        title = "DR" if profession[0] in {"10", "40"} else ("MME" if woman else "M")
        yield Person(
            national_id=id_type + number,
            id_type=id_type,
            number=number,
            civility="MME" if woman else "M",
            title=title,
            first_name=rng.choice(FIRST_NAMES),
            last_name=rng.choice(LAST_NAMES),
            profession=profession,
            specialty=rng.choice(profession[3]) if profession[3] else None,
        )


def _activity_fields(person: Person, rng: random.Random, seq: int) -> list[str]:
    postcode, commune, town, dept_code, dept = _place(rng)
    sector_code, sector_label, mode_code, mode_label = rng.choice(SECTORS)
    street_code, street_type, street_name = rng.choice(STREETS)
    structure = f"R{seq:08d}"
    siret = f"{seq % 10**14:014d}"
    values = {
        "Type d'identifiant PP": person.id_type,
        "Identifiant PP": person.number,
        "Identification nationale PP": person.national_id,
        "Code civilité d'exercice": person.title,
        "Libellé civilité d'exercice": {"DR": "Docteur", "MME": "Madame", "M": "Monsieur"}[
            person.title
        ],
        "Code civilité": person.civility,
        "Libellé civilité": "Madame" if person.civility == "MME" else "Monsieur",
        "Nom d'exercice": person.last_name.upper(),
        "Prénom d'exercice": person.first_name,
        "Code profession": person.profession[0],
        "Libellé profession": person.profession[1],
        "Code catégorie professionnelle": "C",
        "Libellé catégorie professionnelle": "Civil",
        "Code type savoir-faire": "S" if person.specialty else "",
        "Libellé type savoir-faire": "Spécialité ordinale" if person.specialty else "",
        "Code savoir-faire": person.specialty[0] if person.specialty else "",
        "Libellé savoir-faire": person.specialty[1] if person.specialty else "",
        "Code mode exercice": mode_code,
        "Libellé mode exercice": mode_label,
        "Numéro SIRET site": siret,
        "Numéro SIREN site": siret[:9],
        "Identifiant technique de la structure": structure,
        "Raison sociale site": f"CABINET {person.last_name.upper()}"
        if mode_code == "L"
        else f"CENTRE DE SANTE DE {town.upper()}",
        "Numéro Voie (coord. structure)": str(rng.randint(1, 120)),
        "Code type de voie (coord. structure)": street_code,
        "Libellé type de voie (coord. structure)": street_type,
        "Libellé Voie (coord. structure)": street_name,
        "Bureau cedex (coord. structure)": f"{postcode} {town.upper()}",
        "Code postal (coord. structure)": postcode,
        "Code commune (coord. structure)": commune,
        "Libellé commune (coord. structure)": town,
        "Code pays (coord. structure)": "99000",
        "Libellé pays (coord. structure)": "France",
        "Téléphone (coord. structure)": f"0{rng.randint(100000000, 599999999)}",
        "Code Département (structure)": dept_code,
        "Libellé Département (structure)": dept,
        "Ancien identifiant de la structure": f"4{person.number}{seq % 1000:03d}",
        "Autorité d'enregistrement": "CNOM/CNOM/CNOM"
        if person.profession[0] == "10"
        else "ARS/CPAM/CPAM",
        "Code secteur d'activité": sector_code,
        "Libellé secteur d'activité": sector_label,
        "Code genre d'activité": "GENR01",
        "Libellé genre d'activité": "Activité standard de soin ou de pharmacien",
    }
    return [values.get(column, "") for column in PERSONNE_ACTIVITE_COLUMNS]


def _line(fields: list[str]) -> str:
    return "|".join(fields) + "|\n"


def write_personne_activite(
    out: TextIO, *, people: int | None = None, rows: int | None = None, seed: int = 1
) -> list[Person]:
    """Write a PS_LibreAcces_Personne_activite file; about one person in five has two
    activities. Stops after ``people`` people or ``rows`` rows. Returns nothing heavy:
    only the first 1000 people (for the MSSanté file and the tests)."""
    if (people is None) == (rows is None):
        raise ValueError("give exactly one of people= or rows=")
    rng = random.Random(seed)  # noqa: S311 (made-up data, not security)
    out.write(_line(list(PERSONNE_ACTIVITE_COLUMNS)))
    written = 0
    kept: list[Person] = []
    for person in _people(people if people is not None else rows or 0, rng):
        activities = 2 if rng.random() < 0.2 else 1
        for _ in range(activities):
            if rows is not None and written >= rows:
                return kept
            out.write(_line(_activity_fields(person, rng, written)))
            written += 1
        if len(kept) < 1000:
            kept.append(person)
    return kept


def mailbox_address(person: Person) -> str:
    from directory.normalise import search_key

    local = f"{search_key(person.first_name)}.{search_key(person.last_name)}".replace(" ", "-")
    return f"{local}.{person.number[-4:]}@{person.profession[4]}.mssante.fr"


def write_mssante(out: TextIO, people: list[Person], *, seed: int = 1) -> None:
    """Write an Extraction_Correspondance_MSSante file: a personal mailbox for about two
    people in three, and a few organisation mailboxes."""
    rng = random.Random(seed)  # noqa: S311 (made-up data, not security)
    out.write(_line(list(MSSANTE_COLUMNS)))
    for person in people:
        if rng.random() >= 0.66:
            continue
        values = {
            "Type de BAL": "PER",
            "Adresse BAL": mailbox_address(person),
            "Type Identifiant PP": person.id_type,
            "Identifiant PP": person.number,
            "Identification nationale PP": person.national_id,
            "Civilité d'exercice": person.title,
            "Nom d'exercice": person.last_name.upper(),
            "Prénom d'exercice": person.first_name,
            "Catégorie profession": "C",
            "Libellé de catégorie profession": "Civil",
            "Code Profession": person.profession[0],
            "Libellé Profession": person.profession[1],
            "Code savoir-faire": person.specialty[0] if person.specialty else "",
            "Libellé savoir-faire": person.specialty[1] if person.specialty else "",
            "Dématérialisation": "O",
            "Pays": "France",
        }
        out.write(_line([values.get(column, "") for column in MSSANTE_COLUMNS]))
    for index, (postcode, _commune, town, dept_code, _dept) in enumerate(TOWNS[:5]):
        values = {
            "Type de BAL": "ORG",
            "Adresse BAL": f"secretariat{index}@ch-{postcode}.mssante.fr",
            "Type identifiant structure": "1",
            "Identification Structure": f"1{postcode}0001",
            "Raison Sociale structure BAL": f"CENTRE HOSPITALIER DE {town.upper()}",
            "Code postal": postcode,
            "Département": dept_code,
            "Pays": "France",
        }
        out.write(_line([values.get(column, "") for column in MSSANTE_COLUMNS]))


def write_sample_extracts(
    folder: Path, *, people: int | None = None, rows: int | None = None, seed: int = 1
) -> tuple[Path, Path]:
    """Write both files into ``folder`` with the official names; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = "202601050000"
    personne = folder / f"PS_LibreAcces_Personne_activite_{stamp}.txt"
    mssante = folder / f"Extraction_Correspondance_MSSante_{stamp}.txt"
    with personne.open("w", encoding="utf-8", newline="") as out:
        kept = write_personne_activite(out, people=people, rows=rows, seed=seed)
    with mssante.open("w", encoding="utf-8", newline="") as out:
        write_mssante(out, kept, seed=seed)
    return personne, mssante
