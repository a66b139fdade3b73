"""Response shapes shared by several operations, for the OpenAPI schema.

Views build their answers as plain dicts; these serializers describe them (and the
schema-driven tests check that every answer conforms)."""

from __future__ import annotations

from rest_framework import serializers


class TreeHeadBodyOut(serializers.Serializer[None]):
    v = serializers.IntegerField()
    type = serializers.ChoiceField(choices=["tree_head"])
    log = serializers.CharField(help_text="The log's id: base64url SHA-256 of its public key.")
    size = serializers.IntegerField()
    # DRF's metaclass moves declared fields out of the class, so this does not shadow
    # Field.root; the stubs cannot know.
    root = serializers.CharField(help_text="Merkle root, base64url.")  # type: ignore[assignment]
    timestamp = serializers.IntegerField(help_text="ms since the epoch")


class TreeHeadOut(serializers.Serializer[None]):
    """A signed tree head of the key-transparency log (docs/protocol.md §10.4)."""

    head = TreeHeadBodyOut()
    sig = serializers.CharField(help_text="The log's Ed25519 signature of `head`, base64url.")


class PractitionerOut(serializers.Serializer[None]):
    """A practitioner as the national directory describes them."""

    national_id = serializers.CharField(help_text="8 + RPPS number (or ADELI-based id).")
    civility = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    profession_code = serializers.CharField()
    profession_label = serializers.CharField()
    specialty_code = serializers.CharField()
    specialty_label = serializers.CharField()
    postcode = serializers.CharField()
    town = serializers.CharField()
    mssante_addresses = serializers.ListField(child=serializers.CharField())


class ActivityOut(serializers.Serializer[None]):
    """A place and mode of practice from the directory."""

    profession_code = serializers.CharField()
    specialty_code = serializers.CharField()
    mode_code = serializers.CharField()
    mode_label = serializers.CharField()
    sector_code = serializers.CharField()
    sector_label = serializers.CharField()
    structure_name = serializers.CharField()
    street = serializers.CharField()
    postcode = serializers.CharField()
    town = serializers.CharField()
    phone = serializers.CharField()


class PractitionerDetailOut(PractitionerOut):
    activities = ActivityOut(many=True)


class PscActivityOut(serializers.Serializer[None]):
    """A situation d'exercice given by Pro Santé Connect."""

    profession_code = serializers.CharField()
    specialty_code = serializers.CharField()
    mode_code = serializers.CharField()
    sector_code = serializers.CharField()
    structure_id = serializers.CharField()
    structure_name = serializers.CharField()
    brand = serializers.CharField()
    postcode = serializers.CharField()
    town_code = serializers.CharField()
    finess = serializers.CharField()
    siret = serializers.CharField()
    structure_national_id = serializers.CharField()
    role_code = serializers.CharField()
    activity_kind_code = serializers.CharField()
