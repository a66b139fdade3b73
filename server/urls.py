from django.contrib import admin
from django.urls import include, path

from server.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("mobile_api.urls")),
    path("admin/", admin.site.urls),
]
