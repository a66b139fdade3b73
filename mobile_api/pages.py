"""The few HTML pages Relais shows a browser itself (the Pro Santé Connect login), in
French and English.

Only text Relais wrote goes into a page: an error is shown by its stable code's own
messages (``chat.errors.MESSAGES``), never by text taken from the URL, so nobody can
make Relais' page say what they want ("call this number to finish your login"). Every
page forbids scripts, styles from elsewhere, framing and referrers.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chat.errors import MESSAGES, ErrorCode


def wants_html(request: HttpRequest) -> bool:
    """A browser navigating (``Accept: text/html``), as opposed to an API client."""
    return "text/html" in request.headers.get("Accept", "")


def page(body: SafeString, *, status: int = 200) -> HttpResponse:
    document = format_html(
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Relais</title></head><body>{}</body></html>",
        body,
    )
    response = HttpResponse(document, status=status, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def error_page(code: ErrorCode, *, status: int, english: str | None = None) -> HttpResponse:
    """A login that cannot go on, said in French and English, with its code.
    ``english``: the message with Relais' own detail, when there is one."""
    default_english, french = MESSAGES[code]
    english = english or default_english
    return page(
        format_html(
            "<h1>Connexion impossible (login failed)</h1>"
            '<p lang="fr">{}</p><p lang="en">{}</p>'
            "<p>Code : <code>{}</code></p>"
            "<p>Revenez à l'application et recommencez. "
            "(Go back to the application and start again.)</p>",
            french,
            english,
            code.value,
        ),
        status=status,
    )
