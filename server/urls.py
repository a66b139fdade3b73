from django.contrib import admin
from django.urls import include, path

from server.api_index import api_index
from server.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/", api_index, name="api-index"),
    path("api/v1/", api_index, name="api-v1-index"),
    path("api/v1/", include("mobile_api.urls")),
    path("admin/", admin.site.urls),
    # The web client at the root (docs/web.md); last, so the paths above come first.
    path("", include("webapp.urls")),
]

# Errors raised before a REST view answers get the API's error envelope under /api/.
handler400 = "mobile_api.errors.bad_request"
handler404 = "mobile_api.errors.page_not_found"
handler500 = "mobile_api.errors.server_error"
