from django.apps import AppConfig


class MobileApiConfig(AppConfig):
    name = "mobile_api"
    verbose_name = "API des clients"

    def ready(self) -> None:
        # Registers the device-token security scheme with drf-spectacular.
        from mobile_api import openapi  # noqa: F401
