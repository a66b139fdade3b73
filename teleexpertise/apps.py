from django.apps import AppConfig


class TeleexpertiseConfig(AppConfig):
    name = "teleexpertise"
    verbose_name = "Téléexpertise"
