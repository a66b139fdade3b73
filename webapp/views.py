"""The web client's few HTTP answers: its page, its manifest, its service worker and its
built files (docs/web.md). The app itself runs in the browser; every other request it
makes goes to the REST API and the WebSocket."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_safe

from chat.conf import relais_settings
from identity.conf import psc_settings
from webapp.security import secure

STATIC_DIR = Path(__file__).resolve().parent / "static" / "webapp"
BUILD_DIR = STATIC_DIR / "dist"
# What /app/ may serve: built bundles (with the chunks loaded on first use, named by
# their content's hash) and icons, nothing else of the tree.
_ASSET = re.compile(
    r"^(dist|icons|dist/chunks)/[A-Za-z0-9][A-Za-z0-9.-]{0,80}\.(js|css|png|svg|map)$"
)
MISSING_BUILD = (
    "The web app is not built: run `make run` (or `cd web && npm ci && npm run build`); "
    "building it needs Node.js and npm (apt-get install nodejs npm)."
)


def app_config() -> dict[str, object]:
    """What the page tells the app about this server: which logins exist."""
    return {
        "devLogin": bool(relais_settings().dev_login),
        "psc": psc_settings().enabled,
    }


def _version(path: Path) -> str:
    """A short hash of a built file, so a new build is a new URL (no stale cache)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    script = BUILD_DIR / "main.js"
    if not script.exists():
        response = HttpResponse(MISSING_BUILD, status=503, content_type="text/plain")
        return secure(response, request)
    response = render(
        request,
        "webapp/index.html",
        {
            "config": app_config(),
            "script_version": _version(script),
            "style_version": _version(BUILD_DIR / "main.css"),
        },
    )
    response["Cache-Control"] = "no-cache"
    return secure(response, request)


@require_safe
def manifest(request: HttpRequest) -> HttpResponse:
    body = {
        "name": "Relais",
        "short_name": "Relais",
        "description": "Messagerie sécurisée des professionnels de santé",
        "lang": "fr",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0b5cad",
        "icons": [
            {"src": "/app/icons/icon-192.png", "sizes": "192x192", "type": "image/png"},
            {"src": "/app/icons/icon-512.png", "sizes": "512x512", "type": "image/png"},
            {
                "src": "/app/icons/icon-maskable-512.png",
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    response = HttpResponse(json.dumps(body), content_type="application/manifest+json")
    response["Cache-Control"] = "no-cache"
    return secure(response, request)


@require_safe
def service_worker(request: HttpRequest) -> HttpResponseBase:
    """The service worker, at the root so that its scope is the whole app."""
    path = BUILD_DIR / "sw.js"
    if not path.exists():
        raise Http404
    response = FileResponse(path.open("rb"), content_type="text/javascript")
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/"
    return secure(response, request)


@require_safe
def asset(request: HttpRequest, name: str) -> HttpResponseBase:
    if not _ASSET.match(name):
        raise Http404
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        raise Http404
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        content_type = "text/javascript"
    response = FileResponse(path.open("rb"), content_type=content_type)
    # A versioned URL (?v=<hash>) never changes; the service worker keeps its own copy.
    response["Cache-Control"] = (
        "public, max-age=31536000, immutable" if request.GET.get("v") else "no-cache"
    )
    return secure(response, request)
