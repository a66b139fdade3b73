"""Demo practitioners for the embedded first run and the tests.

Fictitious people with real-format RPPS numbers (11 digits, valid Luhn check digit),
real profession and specialty codes (TRE_G15, TRE_R38) and MSSanté-style addresses.
"""

from __future__ import annotations

from directory.models import Activity, Practitioner

DEMO_PRACTITIONERS: list[dict[str, object]] = [
    {
        "national_id": "810003456786",
        "civility": "MME",
        "first_name": "Claire",
        "last_name": "Martin",
        "profession_code": "60",
        "profession_label": "Infirmier",
        "postcode": "69003",
        "town": "Lyon",
        "mssante_addresses": ["claire.martin@infirmier.mssante.fr"],
    },
    {
        "national_id": "810001987659",
        "civility": "DR",
        "first_name": "Paul",
        "last_name": "Durand",
        "profession_code": "10",
        "profession_label": "Médecin",
        "specialty_code": "SM26",
        "specialty_label": "Qualifié en Médecine Générale",
        "postcode": "69003",
        "town": "Lyon",
        "mssante_addresses": ["paul.durand@medecin.mssante.fr"],
    },
    {
        "national_id": "810002765435",
        "civility": "M",
        "first_name": "Karim",
        "last_name": "Benali",
        "profession_code": "21",
        "profession_label": "Pharmacien",
        "postcode": "69007",
        "town": "Lyon",
        "mssante_addresses": ["karim.benali@pharmacien.mssante.fr"],
    },
    {
        "national_id": "810004123450",
        "civility": "MME",
        "first_name": "Élodie",
        "last_name": "Lefèvre",
        "profession_code": "70",
        "profession_label": "Masseur-Kinésithérapeute",
        "postcode": "69100",
        "town": "Villeurbanne",
        "mssante_addresses": [],
    },
]


def ensure_demo_practitioners() -> list[Practitioner]:
    """Create or refresh the demo practitioners (idempotent)."""
    return ensure_practitioners(DEMO_PRACTITIONERS)


def ensure_practitioners(entries: list[dict[str, object]]) -> list[Practitioner]:
    """Create or refresh these directory entries and their place of practice."""
    practitioners = []
    for data in entries:
        fields = {key: value for key, value in data.items() if key != "national_id"}
        practitioner, _created = Practitioner.objects.update_or_create(
            national_id=str(data["national_id"]), defaults=fields
        )
        # Their place of practice, so that a search by postcode or town finds them.
        Activity.objects.update_or_create(
            practitioner=practitioner,
            activity_hash="demo",
            defaults={
                "profession_code": practitioner.profession_code,
                "specialty_code": practitioner.specialty_code,
                "mode_code": "L",
                "mode_label": "Libéral",
                "postcode": practitioner.postcode,
                "town": practitioner.town,
            },
        )
        practitioners.append(practitioner)
    return practitioners
