"""The key-transparency log over REST (docs/protocol.md, "Key transparency API").

Entries travel as the exact canonical JSON string that is hashed into the tree, so a
client recomputes the leaf hash from what it received.
"""

from __future__ import annotations

from typing import Any

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


def _entry_out(entry: LogEntry, proof: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": entry.index, "entry": bytes(entry.leaf).decode("utf-8")}
    if proof is not None:
        out["proof"] = proof
    return out


class LogInfoView(APIView):
    """The log's public key and its current signed tree head."""

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

    class Query(serializers.Serializer[None]):
        size = serializers.IntegerField(min_value=0)

    def get(self, request: Request) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response({"tree_head": tree_head_json(tree_head(size=query.validated_data["size"]))})


class ConsistencyView(APIView):
    """``GET ?first=m&second=n``: the RFC 9162 consistency proof between two sizes."""

    class Query(serializers.Serializer[None]):
        first = serializers.IntegerField(min_value=0)
        second = serializers.IntegerField(min_value=0)

    def get(self, request: Request) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        first, second = query.validated_data["first"], query.validated_data["second"]
        return Response(
            {"first": first, "second": second, "proof": consistency(first=first, second=second)}
        )


class EntriesView(APIView):
    """``GET ?start=&end=``: entries ``start <= index < end`` (at most 1,000), for
    monitors that audit the whole log."""

    class Query(serializers.Serializer[None]):
        start = serializers.IntegerField(min_value=0)
        end = serializers.IntegerField(min_value=0)

    def get(self, request: Request) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        entries = entries_page(start=query.validated_data["start"], end=query.validated_data["end"])
        return Response({"entries": [_entry_out(e) for e in entries]})


class PractitionerKeysView(APIView):
    """Every certificate and revocation of a practitioner, each with its inclusion proof
    in the current signed tree head."""

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
