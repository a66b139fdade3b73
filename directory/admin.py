from django.contrib import admin

from directory.models import Practitioner


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin[Practitioner]):
    list_display = (
        "national_id",
        "last_name",
        "first_name",
        "profession_code",
        "town",
        "is_active",
    )
    list_filter = ("profession_code", "is_active")
    search_fields = ("national_id", "last_name", "first_name", "town", "postcode")
