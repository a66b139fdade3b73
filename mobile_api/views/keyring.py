"""Key-agreement keys, device linking and recovery backups over REST
(docs/protocol.md §10.4, §10.9). The server passes opaque, signed or sealed documents
between a practitioner's devices and their contacts; it checks only what it can."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.frames import decode_body, encode_body
from keyring.services.backups import (
    MAX_BATCH,
    do_store_history_keys,
    do_store_identity_backup,
    history_keys,
    identity_backup,
)
from keyring.services.kex import MAX_LOOKUP, do_publish_kex, kex_keys
from keyring.services.linking import (
    do_approve_link,
    do_open_link_request,
    link_request_view,
)
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.requests import identity_of
from mobile_api.strict import BodySerializer, QuerySerializer
from mobile_api.throttling import SEND
from mobile_api.views.messages import BASE64URL_PATTERN

CANONICAL_HELP = "Canonical JSON as a string (the exact signed bytes)."


class KexIn(BodySerializer):
    kex = serializers.CharField(max_length=1024, help_text=CANONICAL_HELP)


class KexOut(serializers.Serializer[None]):
    device = serializers.IntegerField()
    kex = serializers.CharField(help_text=CANONICAL_HELP)


class KexListOut(serializers.Serializer[None]):
    keys = KexOut(many=True)


class KexQuery(QuerySerializer):
    devices = serializers.RegexField(
        rf"^[0-9]{{1,19}}(,[0-9]{{1,19}}){{0,{MAX_LOOKUP - 1}}}$",
        max_length=MAX_LOOKUP * 20,
        help_text=f"Device numbers, comma-separated (at most {MAX_LOOKUP}).",
    )


class KexView(APIView):
    """``PUT {"kex"}``: publish this device's new key-agreement key.
    ``GET ?devices=1,2``: the current keys of devices you may share keys with."""

    @extend_schema(
        summary="Publish this device's current key-agreement key",
        description="A document signed by this device's certified signing key "
        "(docs/protocol.md §10.4, key-agreement keys); its serial must go up.",
        request=KexIn,
        responses={200: KexOut, **errors(409)},
    )
    def put(self, request: Request) -> Response:
        data = KexIn(data=request.data)
        data.is_valid(raise_exception=True)
        identity = identity_of(request)
        published = do_publish_kex(
            identity=identity, document=data.validated_data["kex"].encode("utf-8")
        )
        return Response(
            {"device": identity.device_id, "kex": bytes(published.document).decode("utf-8")}
        )

    @extend_schema(
        summary="Current key-agreement keys of devices",
        description="Devices of yours, of people who share a room with you, and archivers "
        "of your rooms; others and devices that never published a key are left out. "
        "Verify each document with the device's signing key before sealing to it.",
        parameters=[KexQuery],
        responses={200: KexListOut},
    )
    def get(self, request: Request) -> Response:
        query = KexQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        ids = sorted({int(d) for d in query.validated_data["devices"].split(",")})
        found = kex_keys(identity=identity_of(request), device_ids=ids)
        return Response(
            {
                "keys": [
                    {"device": device, "kex": document.decode("utf-8")}
                    for device, document in sorted(found.items())
                ]
            }
        )


class LinkRequestIn(BodySerializer):
    request = serializers.CharField(max_length=2048, help_text=CANONICAL_HELP)


class LinkOpenedOut(serializers.Serializer[None]):
    link_id = serializers.CharField()
    expires_at = serializers.IntegerField(help_text="ms since the Unix epoch")


class LinkRequestOut(serializers.Serializer[None]):
    link_id = serializers.CharField()
    device = serializers.IntegerField(help_text="The new device asking to be linked.")
    device_name = serializers.CharField()
    request = serializers.CharField(help_text=CANONICAL_HELP)
    approved = serializers.BooleanField()
    bundle = serializers.CharField(
        allow_null=True,
        help_text="The sealed answer (base64url), only for the device that asked.",
    )
    expires_at = serializers.IntegerField()


class LinkRequestsView(APIView):
    """``POST {"request"}``: a new device asks to be linked (its link code commits to
    the request)."""

    def get_throttles(self) -> list[Any]:
        return [throttle() for throttle in SEND]

    @extend_schema(
        summary="Ask to link this new device",
        description="The request names this device, its signing and key-agreement keys "
        "and a nonce (docs/protocol.md §10.4, linking). Valid ten minutes.",
        request=LinkRequestIn,
        responses={201: LinkOpenedOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        data = LinkRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        opened = do_open_link_request(
            identity=identity_of(request), request=data.validated_data["request"].encode("utf-8")
        )
        return Response(
            {"link_id": opened.link_id, "expires_at": opened.expires_at_ms},
            status=status.HTTP_201_CREATED,
        )


class LinkRequestView(APIView):
    """``GET``: a link request of one of my devices."""

    @extend_schema(
        summary="A link request of one of my devices",
        responses={200: LinkRequestOut, **errors(404)},
    )
    def get(self, request: Request, link_id: str) -> Response:
        found = link_request_view(identity=identity_of(request), link_id=link_id)
        return Response(
            {
                "link_id": found.link_id,
                "device": found.device,
                "device_name": found.device_name,
                "request": found.request.decode("utf-8"),
                "approved": found.approved,
                "bundle": encode_body(found.bundle) if found.bundle is not None else None,
                "expires_at": found.expires_at_ms,
            }
        )


class LinkApprovalIn(BodySerializer):
    bundle = serializers.RegexField(BASE64URL_PATTERN, max_length=90_000)


class LinkApproveView(APIView):
    """``POST {"bundle"}``: answer a new device's request with the sealed bundle."""

    def get_throttles(self) -> list[Any]:
        return [throttle() for throttle in SEND]

    @extend_schema(
        summary="Approve a new device of mine",
        description="From a certified device of the same practitioner; the bundle is "
        "sealed to the new device (docs/protocol.md §10.4, linking).",
        request=LinkApprovalIn,
        responses={204: None, **errors(404, 409, 413)},
    )
    def post(self, request: Request, link_id: str) -> Response:
        data = LinkApprovalIn(data=request.data)
        data.is_valid(raise_exception=True)
        do_approve_link(
            identity=identity_of(request),
            link_id=link_id,
            bundle=decode_body(data.validated_data["bundle"]),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class SealedIn(BodySerializer):
    sealed = serializers.RegexField(BASE64URL_PATTERN, max_length=11_000)


class SealedOut(serializers.Serializer[None]):
    sealed = serializers.CharField(help_text="base64url")


class IdentityBackupView(APIView):
    """``PUT {"sealed"}`` / ``GET``: the identity backup sealed to the recovery code."""

    @extend_schema(
        summary="Store my identity backup",
        description="Sealed to the recovery code on the device (docs/protocol.md §10.9).",
        request=SealedIn,
        responses={204: None, **errors(409, 413)},
    )
    def put(self, request: Request) -> Response:
        data = SealedIn(data=request.data)
        data.is_valid(raise_exception=True)
        do_store_identity_backup(
            identity=identity_of(request), sealed=decode_body(data.validated_data["sealed"])
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="My identity backup", responses={200: SealedOut, **errors(404)})
    def get(self, request: Request) -> Response:
        return Response({"sealed": encode_body(identity_backup(identity=identity_of(request)))})


class HistoryKeyIn(BodySerializer):
    id = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="A hash chosen by the client.")
    sealed = serializers.RegexField(BASE64URL_PATTERN, max_length=11_000)


class HistoryKeysIn(BodySerializer):
    keys = serializers.ListField(child=HistoryKeyIn(), min_length=1, max_length=MAX_BATCH)


class HistoryKeyOut(serializers.Serializer[None]):
    n = serializers.IntegerField(help_text="Position, for `after`.")
    id = serializers.CharField()
    sealed = serializers.CharField()


class HistoryKeysOut(serializers.Serializer[None]):
    keys = HistoryKeyOut(many=True)


class HistoryQuery(QuerySerializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=200)


class HistoryKeysView(APIView):
    """``POST {"keys"}`` / ``GET ?after=n``: history keys sealed to the recovery code."""

    @extend_schema(
        summary="Back up history keys",
        description="Idempotent on `id`.",
        request=HistoryKeysIn,
        responses={204: None, **errors(409, 413, 507)},
    )
    def post(self, request: Request) -> Response:
        data = HistoryKeysIn(data=request.data)
        data.is_valid(raise_exception=True)
        do_store_history_keys(
            identity=identity_of(request),
            keys=[(k["id"], decode_body(k["sealed"])) for k in data.validated_data["keys"]],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="My backed-up history keys",
        parameters=[HistoryQuery],
        responses={200: HistoryKeysOut},
    )
    def get(self, request: Request) -> Response:
        query = HistoryQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        rows = history_keys(
            identity=identity_of(request),
            after=query.validated_data["after"],
            limit=query.validated_data["limit"],
        )
        return Response(
            {
                "keys": [
                    {"n": row.pk, "id": row.key_id, "sealed": encode_body(bytes(row.sealed))}
                    for row in rows
                ]
            }
        )
