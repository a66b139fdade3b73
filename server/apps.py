from django.apps import AppConfig


class ServerConfig(AppConfig):
    name = "server"
    verbose_name = "Relais server"

    def ready(self) -> None:
        from server import checks  # noqa: F401 (registers the deployment checks)
