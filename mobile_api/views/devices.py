"""This practitioner's devices: certify keys, revoke (a lost phone), and the
to-device queue (sender-key shares, notices)."""

from __future__ import annotations

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
from keylog.services import do_certify_device, do_revoke_device_keys, tree_head_json


def _identity(request: Request) -> DeviceIdentity:
    identity = request.auth
    assert isinstance(identity, DeviceIdentity)  # guaranteed by DeviceTokenAuthentication
    return identity


class DeviceKeysView(APIView):
    """``POST {"sign_key", "kex_key", "signature"}``: certify this device's keys (once).

    ``signature`` is the device's Ed25519 signature of its registration
    (docs/protocol.md, "Key transparency"). Answers the log entry with its index, the new
    signed tree head and the inclusion proof."""

    class Input(serializers.Serializer[None]):
        sign_key = serializers.CharField(max_length=43)
        kex_key = serializers.CharField(max_length=43)
        signature = serializers.CharField(max_length=86)

    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            keys = PublicDeviceKeys.from_json(data.validated_data)
            signature = unb64u(data.validated_data["signature"], length=64, field="signature")
        except CryptoError:
            raise RelaisError(ErrorCode.BAD_KEYS) from None
        appended = do_certify_device(identity=_identity(request), keys=keys, signature=signature)
        from keylog.services import inclusion_proofs

        proof = inclusion_proofs(indexes=[appended.index], size=appended.head.size)[appended.index]
        return Response(
            {
                "index": appended.index,
                "entry": appended.leaf.decode("utf-8"),
                "proof": proof,
                "tree_head": tree_head_json(appended.head),
            },
            status=status.HTTP_201_CREATED,
        )


class DeviceListView(APIView):
    """``GET``: this practitioner's devices (to spot one they do not know)."""

    def get(self, request: Request) -> Response:
        identity = _identity(request)
        devices = Device.objects.filter(practitioner_id=identity.practitioner_id).order_by("pk")
        return Response(
            {
                "devices": [
                    {
                        "device": d.pk,
                        "name": d.name,
                        "current": d.pk == identity.device_id,
                        "revoked": d.revoked_at is not None,
                        "keys": d.public_keys or None,
                    }
                    for d in devices
                ]
            }
        )


class DeviceRevokeView(APIView):
    """``DELETE``: revoke one of my devices (lost phone): token and keys."""

    class Input(serializers.Serializer[None]):
        reason = serializers.ChoiceField(
            choices=["lost", "logout", "replaced", "administrative"], default="lost"
        )

    def delete(self, request: Request, device_id: int) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        do_revoke_device_keys(
            identity=_identity(request), device_id=device_id, reason=data.validated_data["reason"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ToDeviceView(APIView):
    """``POST {"messages": [{"device", "body"}]}``: queue sealed key shares.
    ``GET ?after=<id>``: my queued messages, oldest first."""

    class Message(serializers.Serializer[None]):
        device = serializers.IntegerField(min_value=1)
        body = serializers.CharField(max_length=8192)

    class Input(serializers.Serializer[None]):
        messages = serializers.ListField(child=serializers.DictField(), max_length=MAX_BATCH)

    class Query(serializers.Serializer[None]):
        after = serializers.IntegerField(required=False, min_value=0, default=0)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=200)

    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        outgoing = []
        for raw in data.validated_data["messages"]:
            item = self.Message(data=raw)
            item.is_valid(raise_exception=True)
            outgoing.append(
                Outgoing(
                    device_id=item.validated_data["device"],
                    body=decode_body(item.validated_data["body"]),
                )
            )
        ids = do_send_to_devices(identity=_identity(request), messages=outgoing)
        return Response({"ids": ids}, status=status.HTTP_201_CREATED)

    def get(self, request: Request) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages = pending_messages(
            identity=_identity(request),
            after_id=query.validated_data["after"],
            limit=query.validated_data["limit"],
        )
        return Response({"messages": [to_device_frame(m) for m in messages]})


class ToDeviceAckView(APIView):
    """``POST {"up_to": id}``: forget my messages up to this id (they are processed)."""

    class Input(serializers.Serializer[None]):
        up_to = serializers.IntegerField(min_value=0)

    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        deleted = do_acknowledge(identity=_identity(request), up_to_id=data.validated_data["up_to"])
        return Response({"deleted": deleted})
