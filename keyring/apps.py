from django.apps import AppConfig


class KeyringConfig(AppConfig):
    name = "keyring"
    default_auto_field = "django.db.models.BigAutoField"
