from django.urls import path

from webapp import views

urlpatterns = [
    path("", views.index, name="webapp-index"),
    path("manifest.webmanifest", views.manifest, name="webapp-manifest"),
    path("sw.js", views.service_worker, name="webapp-service-worker"),
    path("app/<path:name>", views.asset, name="webapp-asset"),
]
