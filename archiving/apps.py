from django.apps import AppConfig


class ArchivingConfig(AppConfig):
    name = "archiving"
    verbose_name = "Archivage MSSanté (état des archiveurs)"
