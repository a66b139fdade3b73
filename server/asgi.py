"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSocket connections pass the origin check (the ``Origin`` host must be an allowed
host), then device-token authentication, then routing. Around everything,
``observability.asgi`` gives each request and connection an id for the logs and answers
``/metrics`` to the Prometheus scraper.
"""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

from server.environment import ConfigurationError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
try:
    django_asgi_app = get_asgi_application()
except ConfigurationError as error:
    # A wrong setting is the operator's to fix: one line in the journal, not a traceback.
    raise SystemExit(f"Configuration error: {error}") from None

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings

from chat.middleware import DeviceTokenAuthMiddleware
from chat.routing import websocket_urlpatterns
from observability.asgi import ObservedApplication, redis_push_queue
from push.jobs import STREAM_GROUP, stream_key

application = ObservedApplication(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                DeviceTokenAuthMiddleware(URLRouter(websocket_urlpatterns))
            ),
        }
    ),
    metrics_networks=settings.METRICS_ALLOWED_NETWORKS,
    push_queue=redis_push_queue(
        settings.REDIS_URL, stream_key(str(settings.RELAIS["REDIS_PREFIX"])), STREAM_GROUP
    )
    if settings.REDIS_URL
    else None,
)

# Everything loaded so far lives as long as the process: keep it out of the garbage
# collector's way, so that a full collection does not pause message delivery for tens of
# milliseconds (measured: worst-case latency halved; docs/performance.md).
gc.collect()
gc.freeze()
