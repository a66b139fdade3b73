"""The key-transparency log over REST (docs/protocol.md, "Key transparency API").

Entries travel as the exact canonical JSON string that is hashed into the tree, so a
client recomputes the leaf hash from what it received.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from e2ee.encoding import b64u
from e2ee.transparency import log_key_id
from keylog.models import LogEntry
from keylog.services import (
    consistency,
    entries_page,
    inclusion_proofs,
    practitioner_entries,
    tree_head,
    tree_head_json,
)
from keylog.signing import log_public
from mobile_api.openapi import errors
from mobile_api.queries import query_data
from mobile_api.serializers import TreeHeadOut
from mobile_api.strict import QuerySerializer

MAX_SIZE = 2**63 - 1


class EntryOut(serializers.Serializer[None]):
    index = serializers.IntegerField()
    entry = serializers.CharField(help_text="The log entry, canonical JSON as a string.")


class ProvenEntryOut(EntryOut):
    proof = serializers.ListField(
        child=serializers.CharField(), help_text="Inclusion proof in `tree_head`, base64url."
    )


class LogInfoOut(serializers.Serializer[None]):
    log_key = serializers.CharField(help_text="The log's Ed25519 public key, base64url.")
    log_id = serializers.CharField()
    tree_head = TreeHeadOut()


class TreeHeadAnswerOut(serializers.Serializer[None]):
    tree_head = TreeHeadOut()


class ConsistencyOut(serializers.Serializer[None]):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    proof = serializers.ListField(child=serializers.CharField())


class EntriesOut(serializers.Serializer[None]):
    entries = EntryOut(many=True)


class PractitionerKeysOut(serializers.Serializer[None]):
    national_id = serializers.CharField()
    tree_head = TreeHeadOut()
    entries = ProvenEntryOut(many=True)


class TreeHeadQuery(QuerySerializer):
    size = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)


class ConsistencyQuery(QuerySerializer):
    first = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)
    second = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)


class EntriesQuery(QuerySerializer):
    start = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)
    end = serializers.IntegerField(min_value=0, max_value=MAX_SIZE)


def _entry_out(entry: LogEntry, proof: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": entry.index, "entry": bytes(entry.leaf).decode("utf-8")}
    if proof is not None:
        out["proof"] = proof
    return out


class LogInfoView(APIView):
    """The log's public key and its current signed tree head."""

    @extend_schema(summary="The log's key and current signed tree head", responses=LogInfoOut)
    def get(self, request: Request) -> Response:
        public = log_public()
        return Response(
            {
                "log_key": b64u(public),
                "log_id": log_key_id(public),
                "tree_head": tree_head_json(tree_head()),
            }
        )


class TreeHeadView(APIView):
    """``GET ?size=n``: the signed head the log had at size ``n``."""

    @extend_schema(
        summary="The signed tree head the log had at a size",
        parameters=[TreeHeadQuery],
        responses={200: TreeHeadAnswerOut, **errors(404)},
    )
    def get(self, request: Request) -> Response:
        query = TreeHeadQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        return Response({"tree_head": tree_head_json(tree_head(size=query.validated_data["size"]))})


class ConsistencyView(APIView):
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
        return Response(
            {"first": first, "second": second, "proof": consistency(first=first, second=second)}
        )


class EntriesView(APIView):
    """``GET ?start=&end=``: entries ``start <= index < end`` (at most 1,000), for
    monitors that audit the whole log."""

    @extend_schema(
        summary="Log entries start <= index < end (at most 1,000)",
        parameters=[EntriesQuery],
        responses={200: EntriesOut},
    )
    def get(self, request: Request) -> Response:
        query = EntriesQuery(data=query_data(request))
        query.is_valid(raise_exception=True)
        entries = entries_page(start=query.validated_data["start"], end=query.validated_data["end"])
        return Response({"entries": [_entry_out(e) for e in entries]})


class PractitionerKeysView(APIView):
    """Every certificate and revocation of a practitioner, each with its inclusion proof
    in the current signed tree head."""

    @extend_schema(
        summary="A practitioner's certificates and revocations, with proofs",
        responses={200: PractitionerKeysOut},
    )
    def get(self, request: Request, national_id: str) -> Response:
        head = tree_head()
        entries = practitioner_entries(national_id=national_id, size=head.size)
        proofs = inclusion_proofs(indexes=[e.index for e in entries], size=head.size)
        return Response(
            {
                "national_id": national_id,
                "tree_head": tree_head_json(head),
                "entries": [_entry_out(e, proofs[e.index]) for e in entries],
            }
        )
