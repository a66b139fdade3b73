"""The key-transparency log over REST (docs/protocol.md §10.4).

Heads, cosignatures, consistency proofs and entry pages are public (no token; limited
per address): anyone can audit that the log only grows, and entries show labels, never
national ids. A lookup by national id needs a device token. Entries travel as the
exact canonical JSON string that is hashed into the tree, so a client recomputes the
leaf hash from what it received.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from e2ee.encoding import b64u
from e2ee.transparency import log_key_id
from e2ee.tree_heads import sign_vrf_key
from keylog import tree
from keylog.keys import log_keys
from keylog.services import entries_page, lookup
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.serializers import TreeHeadOut
from mobile_api.strict import BodySerializer, QuerySerializer
from mobile_api.throttling import DEFAULTS, DeviceScopedThrottle, IpThrottle
from mobile_api.views.messages import BASE64URL_PATTERN

MAX_SIZE = 2**48 - 1


class KeylogIpThrottle(IpThrottle):
    """The public read of the log, by client address (``RELAIS_RATE_KEYLOG_IP``)."""

    scope = "keylog_ip"


class KeylogLookupThrottle(DeviceScopedThrottle):
    """Lookups by national id, by device (``RELAIS_RATE_KEYLOG_LOOKUP_DEVICE``)."""

    scope = "keylog_lookup_device"


PUBLIC: list[type[BaseThrottle]] = [KeylogIpThrottle]
LOOKUP: list[type[BaseThrottle]] = [*DEFAULTS, KeylogLookupThrottle]


class PublicLogView(APIView):
    """No token needed; limited per address."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = PUBLIC


class CosignatureOut(serializers.Serializer[None]):
    witness = serializers.CharField(help_text="The witness's id: b64u(SHA-256(its key)).")
    sig = serializers.CharField(help_text="Its Ed25519 signature of the cosignature body.")


class HeadOut(serializers.Serializer[None]):
    tree_head = TreeHeadOut()
    cosignatures = CosignatureOut(many=True)


class LogInfoOut(HeadOut):
    log_key = serializers.CharField(help_text="The log's Ed25519 public key, base64url.")
    vrf_key = serializers.CharField(help_text="The log's ECVRF public key, base64url.")
    vrf_key_sig = serializers.CharField(help_text="The log key's signature of `vrf_key`.")
    log_id = serializers.CharField()
    witnesses = serializers.ListField(
        child=serializers.CharField(), help_text="Witness keys whose cosignatures it accepts."
    )
    latest = HeadOut(help_text="The newest signed head, which witnesses cosign.")


class EntryOut(serializers.Serializer[None]):
    index = serializers.IntegerField()
    entry = serializers.CharField(help_text="The log entry, canonical JSON as a string.")


class ProvenEntryOut(EntryOut):
    proof = serializers.ListField(
        child=serializers.CharField(), help_text="Inclusion proof in `tree_head`, base64url."
    )


class ConsistencyOut(serializers.Serializer[None]):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    proof = serializers.ListField(child=serializers.CharField())


class EntriesOut(serializers.Serializer[None]):
    entries = EntryOut(many=True)


class KexKeyOut(serializers.Serializer[None]):
    device = serializers.IntegerField()
    kex_key = serializers.CharField()
    signature = serializers.CharField(help_text="The device's signature of its kex key.")


class LookupOut(HeadOut):
    national_id = serializers.CharField()
    label = serializers.CharField(  # type: ignore[assignment]  # (DRF moves declared fields)
        help_text="The VRF label of the national id."
    )
    vrf_proof = serializers.CharField(help_text="ECVRF proof (RFC 9381) of the label.")
    entries = ProvenEntryOut(many=True)
    kex_keys = KexKeyOut(many=True)


class TreeHeadQuery(QuerySerializer):
    size = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)


class ConsistencyQuery(QuerySerializer):
    first = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)
    second = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)


class EntriesQuery(QuerySerializer):
    start = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)
    end = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)


class CosignatureIn(BodySerializer):
    size = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)
    timestamp = serializers.IntegerField(min_value=0, max_value=2**53 - 1)
    witness = serializers.RegexField(BASE64URL_PATTERN, max_length=43)
    sig = serializers.RegexField(BASE64URL_PATTERN, max_length=86)


class LogInfoView(PublicLogView):
    """The log's keys, its witnesses and the head clients are served."""

    @extend_schema(summary="The log's keys and current signed tree head", responses=LogInfoOut)
    def get(self, request: Request) -> Response:
        keys = log_keys()
        return Response(
            {
                "log_key": b64u(keys.log_public),
                "vrf_key": b64u(keys.vrf_public),
                "vrf_key_sig": b64u(sign_vrf_key(log_key=keys.signing, vrf_public=keys.vrf_public)),
                "log_id": log_key_id(keys.log_public),
                "witnesses": [b64u(key) for key in tree.configured_witnesses().values()],
                **tree.served_head().to_json(),
                "latest": tree.latest_head().to_json(),
            }
        )


class TreeHeadView(PublicLogView):
    """``GET ?size=n``: the newest head the log signed at size ``n``."""

    @extend_schema(
        summary="The signed tree head the log had at a size",
        parameters=[TreeHeadQuery],
        responses={200: HeadOut, **errors(404)},
    )
    def get(self, request: Request) -> Response:
        query = TreeHeadQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        return Response(tree.head_of_size(query.validated_data["size"]).to_json())


class ConsistencyView(PublicLogView):
    """``GET ?first=m&second=n``: the RFC 9162 consistency proof between two sizes."""

    @extend_schema(
        summary="Consistency proof between two sizes of the log (RFC 9162)",
        parameters=[ConsistencyQuery],
        responses={200: ConsistencyOut, **errors(404)},
    )
    def get(self, request: Request) -> Response:
        query = ConsistencyQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        first, second = query.validated_data["first"], query.validated_data["second"]
        proof = tree.consistency(first=first, second=second)
        return Response({"first": first, "second": second, "proof": proof})


class EntriesView(PublicLogView):
    """``GET ?start=&end=``: entries ``start <= index < end`` (at most 1,000), for
    monitors and auditors."""

    @extend_schema(
        summary="Log entries start <= index < end (at most 1,000)",
        parameters=[EntriesQuery],
        responses={200: EntriesOut},
    )
    def get(self, request: Request) -> Response:
        query = EntriesQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        entries = entries_page(start=query.validated_data["start"], end=query.validated_data["end"])
        return Response(
            {"entries": [{"index": e.index, "entry": bytes(e.leaf).decode()} for e in entries]}
        )


class CosignatureView(PublicLogView):
    """``POST {"size","timestamp","witness","sig"}``: a witness's cosignature of a head."""

    @extend_schema(
        summary="Submit a witness cosignature of a tree head",
        description="Accepted only from a witness the server is configured with "
        "(`RELAIS_KEYLOG_WITNESSES`) and only if it verifies.",
        request=CosignatureIn,
        responses={201: None, **errors(404)},
    )
    def post(self, request: Request) -> Response:
        data = CosignatureIn(data=request.data)
        data.is_valid(raise_exception=True)
        tree.do_add_cosignature(
            size=data.validated_data["size"],
            timestamp=data.validated_data["timestamp"],
            witness=data.validated_data["witness"],
            signature=data.validated_data["sig"],
        )
        return Response(status=status.HTTP_201_CREATED)


class PractitionerKeysView(APIView):
    """A person's label, its VRF proof, and every entry under it with an inclusion
    proof in the served head (device token needed)."""

    throttle_classes = LOOKUP

    @extend_schema(
        summary="Look up a practitioner's or organisation's keys, with proofs",
        responses={200: LookupOut},
    )
    def get(self, request: Request, national_id: str) -> Response:
        if len(national_id) > 32:
            return Response(status=status.HTTP_404_NOT_FOUND)
        return Response(lookup(national_id))
