"""Query parameters, read strictly.

DRF reads a ``QueryDict`` as an HTML form: an empty value counts as absent and a
repeated parameter silently keeps its last value, so ``?after=`` or ``?after=1&after=x``
would be answered as if they were valid. The API refuses both instead, so a client's
mistake is never half-understood.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


def query_data(request: Request) -> dict[str, str]:
    """The query parameters as a plain dict, each given once (BAD_REQUEST otherwise)."""
    params = request.query_params
    repeated = sorted(name for name in params if len(params.getlist(name)) > 1)
    if repeated:
        raise ValidationError({name: ["Give this parameter once."] for name in repeated})
    return {name: params[name] for name in params}
