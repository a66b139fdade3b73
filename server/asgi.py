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

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.middleware import DeviceTokenAuthMiddleware  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from observability.asgi import ObservedApplication, redis_push_queue  # noqa: E402
from push.jobs import STREAM_GROUP, stream_key  # noqa: E402

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
