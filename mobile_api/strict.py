"""Input serializers that take values of the declared JSON type only.

DRF converts what it can: ``0`` becomes the string ``"0"``, ``"5"`` and ``5.0`` become
the integer 5, ``"yes"`` becomes ``True``. The API promises its schema instead: a field
declared as a string takes a string, an integer an integer, so what a client sends is
either what it meant or refused with a clear error, never reinterpreted (as the
WebSocket protocol does with msgspec, docs/protocol.md §2).

``BodySerializer`` checks JSON bodies; ``QuerySerializer`` query parameters, which are
always text: there an integer must be written as one (``7``, not ``7.0``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

_INTEGER_TEXT = re.compile(r"^-?[0-9]{1,19}$")

_STRING_FIELDS = (serializers.CharField, serializers.ChoiceField, serializers.DateTimeField)


def _json_type_error(field: serializers.Field[Any, Any, Any, Any], value: Any) -> str | None:
    """Why ``value`` is not of ``field``'s JSON type, or None when it is."""
    if value is None:
        return None if field.allow_null else "May not be null."
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "Must be an integer."
    if isinstance(field, _STRING_FIELDS):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.ListField | serializers.ListSerializer):
        return None if isinstance(value, list) else "Must be a list."
    if isinstance(field, serializers.DictField | serializers.Serializer):
        return None if isinstance(value, Mapping) else "Must be an object."
    return None


class BodySerializer(serializers.Serializer[None]):
    """A JSON body whose fields have the declared types."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {
                name: [reason]
                for name, field in self.fields.items()
                if name in data and (reason := _json_type_error(field, data[name])) is not None
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class QuerySerializer(serializers.Serializer[None]):
    """Query parameters (``mobile_api.queries.query_data``): integers written as such."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {
                name: ["Must be an integer."]
                for name, field in self.fields.items()
                if isinstance(field, serializers.IntegerField)
                and name in data
                and not _INTEGER_TEXT.match(str(data[name]))
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class WholeRegexField(serializers.RegexField):
    """A ``RegexField`` whose ``^…$`` pattern must match the whole value.

    Python's ``$`` also matches just before a final newline, so ``"abc\n"`` passed
    ``^[a-z]+$``; JSON Schema (and JavaScript) read ``$`` as the very end, as the
    schema promises. A value ending with a newline is refused here to match.
    """

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if isinstance(value, str) and value.endswith("\n"):
            self.fail("invalid")
        return value
