"""The REST API's JSON parser: DRF's, with a bound on nesting.

Python's ``json`` module recurses once per level of nesting: a 4 KB body nested a few
thousand levels deep raised ``RecursionError``, answered as a 500. No body of the API
nests more than a handful of levels, so anything deeper than ``MAX_DEPTH`` is refused
(``bad_request``, 400) before it is decoded, with the check the WebSocket uses
(``chat.frames.json_depth_exceeds``, docs/api.md "Conventions").
"""

from __future__ import annotations

import io
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from chat.errors import ErrorCode, RelaisError
from chat.frames import json_depth_exceeds

MAX_DEPTH = 32


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ParseError("The body is not UTF-8.") from error
        if json_depth_exceeds(text, MAX_DEPTH):
            raise RelaisError(
                ErrorCode.BAD_REQUEST, f"The body nests more than {MAX_DEPTH} levels."
            )
        return super().parse(io.BytesIO(raw), media_type, parser_context)
