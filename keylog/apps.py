from django.apps import AppConfig


class KeylogConfig(AppConfig):
    name = "keylog"
    verbose_name = "Journal de transparence des clés"
