"""This practitioner's devices: certify keys, list, revoke (a lost phone, or every other
device), and the to-device queue (sender-key shares, notices)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.errors import ErrorCode, RelaisError
from chat.frames import decode_body
from chat.models import Device
from chat.services.devices import DeviceIdentity
from chat.services.to_device import (
    MAX_BATCH,
    Outgoing,
    do_acknowledge,
    do_send_to_devices,
    pending_messages,
    to_device_frame,
)
from e2ee.encoding import unb64u
from e2ee.errors import CryptoError
from e2ee.keys import PublicDeviceKeys
from keylog.keys import log_public
from keylog.services import (
    AppendedEntry,
    do_certify_device,
    do_create_identity,
    do_revoke_device_keys,
    do_revoke_other_devices,
)
from keylog.tree import inclusion_proof
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.serializers import TreeHeadOut
from mobile_api.strict import BodySerializer, QuerySerializer, WholeRegexField
from mobile_api.throttling import SEND
from mobile_api.views.keys import CosignatureOut
from mobile_api.views.messages import BASE64URL_PATTERN

REVOCATION_REASONS = ["lost", "logout", "replaced", "administrative"]  # identity_reset: server


def _key_field(help_text: str) -> serializers.RegexField:
    return serializers.RegexField(
        BASE64URL_PATTERN, max_length=43, min_length=43, help_text=help_text
    )


def _signature_field(help_text: str) -> serializers.RegexField:
    return serializers.RegexField(
        BASE64URL_PATTERN, max_length=86, min_length=86, help_text=help_text
    )


class IdentityIn(BodySerializer):
    identity_key = _key_field("Ed25519 identity key, base64url.")
    binding = _signature_field("The identity key's signature binding it to your national id.")
    reset = serializers.BooleanField(
        default=False,
        help_text="Replace the identity key in the log (every device lost); only from a "
        "device that logged in a few minutes ago. Your other devices are revoked.",
    )


class DeviceKeysIn(BodySerializer):
    sign_key = _key_field("Ed25519 public key, base64url.")
    kex_key = _key_field("X25519 public key, base64url.")
    signature = _signature_field(
        "The device's signature of its registration (`self_sig`), base64url."
    )
    cross_signature = _signature_field(
        "The identity key's signature of the device certificate (`cross_sig`)."
    )
    kex_signature = _signature_field(
        "The device's signature of its key-agreement key (not in the log)."
    )


class CertifiedOut(serializers.Serializer[None]):
    index = serializers.IntegerField(help_text="The entry's index in the log.")
    entry = serializers.CharField(help_text="The log entry, canonical JSON as a string.")
    proof = serializers.ListField(
        child=serializers.CharField(), help_text="Inclusion proof (RFC 9162), base64url."
    )
    tree_head = TreeHeadOut()
    cosignatures = CosignatureOut(many=True, help_text="None yet: witnesses cosign later.")


def appended_out(appended: AppendedEntry) -> dict[str, Any]:
    return {
        "index": appended.index,
        "entry": appended.leaf.decode("utf-8"),
        "proof": inclusion_proof(index=appended.index, size=appended.head.size),
        "tree_head": appended.head.to_json(log_public=log_public()),
        "cosignatures": [],
    }


class IdentityView(APIView):
    """``POST {"identity_key", "binding", "reset"?}``: publish my identity key."""

    @extend_schema(
        summary="Publish my identity key in the key-transparency log",
        description="On a practitioner's first device (docs/protocol.md §10.4). "
        "`conflict` if one exists (link the new device from an existing one), unless "
        "`reset` from a freshly logged-in device.",
        request=IdentityIn,
        responses={201: CertifiedOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        data = IdentityIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            key = unb64u(data.validated_data["identity_key"], length=32, field="identity_key")
            binding = unb64u(data.validated_data["binding"], length=64, field="binding")
        except CryptoError:
            raise RelaisError(ErrorCode.BAD_KEYS) from None
        appended = do_create_identity(
            identity=identity_of(request),
            identity_key=key,
            binding=binding,
            reset=data.validated_data["reset"],
        )
        return Response(appended_out(appended), status=status.HTTP_201_CREATED)


class DeviceKeysView(APIView):
    """``POST {"sign_key", "kex_key", "signature", "cross_signature", "kex_signature"}``:
    certify this device's keys under my identity key."""

    @extend_schema(
        summary="Certify this device's keys in the key-transparency log",
        description="Once per device and identity key. `cross_signature` is the identity "
        "key's signature of the device certificate (docs/protocol.md §10.4), made on a "
        "device that holds the identity key. Answers the log entry with its index, the "
        "new signed tree head and the inclusion proof. Your other devices are told (a "
        "`device_certified` notice).",
        request=DeviceKeysIn,
        responses={201: CertifiedOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        data = DeviceKeysIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            keys = PublicDeviceKeys.from_json(values)
            signature = unb64u(values["signature"], length=64, field="signature")
            cross = unb64u(values["cross_signature"], length=64, field="cross_signature")
            kex_signature = unb64u(values["kex_signature"], length=64, field="kex_signature")
        except CryptoError:
            raise RelaisError(ErrorCode.BAD_KEYS) from None
        appended = do_certify_device(
            identity=identity_of(request),
            keys=keys,
            signature=signature,
            cross_signature=cross,
            kex_signature=kex_signature,
        )
        return Response(appended_out(appended), status=status.HTTP_201_CREATED)


class DeviceKeysOut(serializers.Serializer[None]):
    sign_key = serializers.CharField()
    kex_key = serializers.CharField()
    kex_signature = serializers.CharField()
    identity_key = serializers.CharField(help_text="The identity key that certified it.")
    log_index = serializers.IntegerField()


class DeviceOut(serializers.Serializer[None]):
    device = serializers.IntegerField()
    name = serializers.CharField()
    current = serializers.BooleanField(help_text="The device making this request.")
    revoked = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    keys = DeviceKeysOut(allow_null=True, help_text="Certified keys; null before certifying.")


class DeviceListOut(serializers.Serializer[None]):
    devices = DeviceOut(many=True)


def devices_out(identity: DeviceIdentity) -> list[dict[str, Any]]:
    devices = Device.objects.filter(practitioner_id=identity.practitioner_id).order_by("pk")
    return [
        {
            "device": d.pk,
            "name": d.name,
            "current": d.pk == identity.device_id,
            "revoked": d.revoked_at is not None,
            "created_at": d.created_at.isoformat(),
            "keys": d.public_keys or None,
        }
        for d in devices
    ]


class DeviceListView(APIView):
    """``GET``: this practitioner's devices (to spot one they do not know)."""

    @extend_schema(summary="My devices", responses={200: DeviceListOut})
    def get(self, request: Request) -> Response:
        return Response({"devices": devices_out(identity_of(request))})


class RevocationIn(BodySerializer):
    reason = serializers.ChoiceField(
        choices=REVOCATION_REASONS, default="lost", help_text="Recorded in the log."
    )


class DeviceRevokeView(APIView):
    """``DELETE``: revoke one of my devices (lost phone): token and keys."""

    @extend_schema(
        summary="Revoke one of my devices",
        description="Its token stops working, its connections close, and a revocation of "
        "its keys enters the key-transparency log, so nobody shares keys with it again.",
        request=RevocationIn,
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, device_id: int) -> Response:
        data = RevocationIn(data=request.data)
        data.is_valid(raise_exception=True)
        do_revoke_device_keys(
            identity=identity_of(request),
            device_id=device_id,
            reason=data.validated_data["reason"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevokeOthersIn(BodySerializer):
    reason = serializers.ChoiceField(choices=REVOCATION_REASONS, default="logout")


class RevokedOut(serializers.Serializer[None]):
    revoked = serializers.ListField(child=serializers.IntegerField())


class RevokeOthersView(APIView):
    """``POST /devices/revoke-others``: log out every device of mine but this one."""

    @extend_schema(
        summary="Revoke every other device of mine",
        description="Tokens and keys of all your devices but the calling one, at once "
        "(all or nothing).",
        request=RevokeOthersIn,
        responses={200: RevokedOut},
    )
    def post(self, request: Request) -> Response:
        data = RevokeOthersIn(data=request.data)
        data.is_valid(raise_exception=True)
        revoked = do_revoke_other_devices(
            identity=identity_of(request), reason=data.validated_data["reason"]
        )
        return Response({"revoked": revoked})


class ToDeviceMessageIn(BodySerializer):
    device = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    body = WholeRegexField(
        BASE64URL_PATTERN, max_length=8192, help_text="HPKE-sealed share, base64url."
    )


class ToDeviceIn(BodySerializer):
    messages = serializers.ListField(child=ToDeviceMessageIn(), min_length=1, max_length=MAX_BATCH)


class ToDeviceIdsOut(serializers.Serializer[None]):
    ids = serializers.ListField(child=serializers.IntegerField())


class ToDeviceQuery(QuerySerializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=200)


class ToDeviceSenderOut(serializers.Serializer[None]):
    device = serializers.IntegerField()
    practitioner = serializers.CharField()


class ToDeviceMessageOut(serializers.Serializer[None]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["key_share", "notice"])
    sender = ToDeviceSenderOut(allow_null=True, help_text="null for server notices.")
    body = serializers.CharField(help_text="base64url")
    ts = serializers.IntegerField()


class ToDeviceListOut(serializers.Serializer[None]):
    messages = ToDeviceMessageOut(many=True)


class ToDeviceView(APIView):
    """``POST {"messages": [{"device", "body"}]}``: queue sealed key shares.
    ``GET ?after=<id>``: my queued messages, oldest first."""

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [throttle() for throttle in SEND]
        return super().get_throttles()

    @extend_schema(
        summary="Queue sealed key shares for devices",
        description="All or nothing. Recipients: unrevoked devices of yours or of people "
        "who share a room with you (`not_found` otherwise).",
        request=ToDeviceIn,
        responses={201: ToDeviceIdsOut, **errors(404, 413)},
    )
    def post(self, request: Request) -> Response:
        data = ToDeviceIn(data=request.data)
        data.is_valid(raise_exception=True)
        outgoing = [
            Outgoing(device_id=item["device"], body=decode_body(item["body"]))
            for item in data.validated_data["messages"]
        ]
        ids = do_send_to_devices(identity=identity_of(request), messages=outgoing)
        return Response({"ids": ids}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="My queued to-device messages",
        description="Oldest first, after the id `after`; they stay until acknowledged.",
        parameters=[ToDeviceQuery],
        responses={200: ToDeviceListOut},
    )
    def get(self, request: Request) -> Response:
        query = ToDeviceQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        messages = pending_messages(
            identity=identity_of(request),
            after_id=query.validated_data["after"],
            limit=query.validated_data["limit"],
        )
        return Response({"messages": [to_device_frame(m) for m in messages]})


class AcknowledgeIn(BodySerializer):
    up_to = serializers.IntegerField(min_value=0, max_value=2**63 - 1)


class DeletedOut(serializers.Serializer[None]):
    deleted = serializers.IntegerField()


class ToDeviceAckView(APIView):
    """``POST {"up_to": id}``: forget my messages up to this id (they are processed)."""

    @extend_schema(
        summary="Acknowledge my to-device messages up to an id",
        request=AcknowledgeIn,
        responses={200: DeletedOut},
    )
    def post(self, request: Request) -> Response:
        data = AcknowledgeIn(data=request.data)
        data.is_valid(raise_exception=True)
        deleted = do_acknowledge(
            identity=identity_of(request), up_to_id=data.validated_data["up_to"]
        )
        return Response({"deleted": deleted})
