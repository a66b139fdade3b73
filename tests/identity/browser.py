"""A scripted browser for the login tests: Relais through Django's test client, the
PSC provider through real HTTP. It follows redirects one hop at a time, so a test can
stop, read or tamper with any URL on the way (as an attacker in the browser could)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from django.test import Client

RELAIS = "http://testserver"


@dataclass
class Page:
    url: str
    status: int
    location: str
    text: str

    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.location or self.url).query).items()}


# What a browser sends when it follows a link or a redirect.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class Browser:
    def __init__(self, *, relais: Client | None = None, relais_origin: str = RELAIS) -> None:
        self.relais = relais or Client()
        self.relais_origin = relais_origin
        self.web = requests.Session()
        self.web.headers["Accept"] = BROWSER_ACCEPT

    def get(self, url: str) -> Page:
        if url.startswith(self.relais_origin) and self.relais_origin == RELAIS:
            parts = urlsplit(url)
            response: Any = self.relais.get(
                parts.path, parse_qs(parts.query), HTTP_ACCEPT=BROWSER_ACCEPT
            )
            return Page(
                url=url,
                status=response.status_code,
                location=urljoin(url, response.get("Location", ""))
                if response.has_header("Location")
                else "",
                text=response.content.decode("utf-8", "replace"),
            )
        answer = self.web.get(url, allow_redirects=False, timeout=10)
        return self._page(url, answer)

    def post_form(self, url: str, data: dict[str, str]) -> Page:
        answer = self.web.post(url, data=data, allow_redirects=False, timeout=10)
        return self._page(url, answer)

    @staticmethod
    def _page(url: str, answer: requests.Response) -> Page:
        location = answer.headers.get("Location", "")
        return Page(
            url=url,
            status=answer.status_code,
            location=urljoin(url, location) if location else "",
            text=answer.text,
        )

    def follow(self, page: Page, *, until: str) -> Page:
        """Follow redirects until the next URL starts with ``until`` (not fetched)."""
        for _ in range(15):
            if page.status not in (301, 302, 303, 307) or not page.location:
                return page
            if page.location.startswith(until):
                return page
            page = self.get(page.location)
        raise AssertionError("too many redirects")


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of an HTML form (the provider's logout form has an xsrf token)."""
    fields = {}
    for match in re.finditer(r"<input[^>]*>", html):
        tag = match.group(0)
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
    return fields


def form_action(html: str, base: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]*)"', html)
    assert match, html[:500]
    return urljoin(base, unescape(match.group(1)))
