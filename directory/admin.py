"""Django admin for the directory: find a practitioner fast among a million rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from directory.models import Activity, MailboxAddress, Practitioner
from directory.normalise import search_key


class ActivityInline(admin.TabularInline[Activity, Practitioner]):
    model = Activity
    extra = 0
    can_delete = False
    fields = ("profession_code", "mode_label", "sector_label", "structure_name", "postcode", "town")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Practitioner | None = None) -> bool:
        return False


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin[Practitioner]):
    list_display = (
        "national_id",
        "last_name",
        "first_name",
        "profession_code",
        "specialty_code",
        "postcode",
        "town",
        "source",
        "is_active",
    )
    list_filter = ("is_active", "source", "check_digit_valid", "profession_code")
    search_fields = ("national_id",)
    search_help_text = "Nom (début, sans accents), nom prénom, ou identifiant national exact."
    readonly_fields = ("name_key", "reversed_name_key", "row_hash", "updated_at", "source")
    ordering = ("name_key", "national_id")
    list_per_page = 50
    show_full_result_count = False  # counting a million rows on every page is slow
    inlines = (ActivityInline,)

    def has_delete_permission(self, request: HttpRequest, obj: Practitioner | None = None) -> bool:
        # A practitioner who left the directory is deactivated, never deleted: their
        # messages, devices and key history stay attributable (chat.models.Envelope).
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Practitioner], search_term: str
    ) -> tuple[QuerySet[Practitioner], bool]:
        """Exact national id, or a name prefix on the indexed search keys."""
        term = search_term.strip()
        if not term:
            return queryset, False
        key = search_key(term)
        condition = Q(national_id=term)
        if key:
            condition |= Q(name_key__startswith=key) | Q(reversed_name_key__startswith=key)
        return queryset.filter(condition), False


@admin.register(MailboxAddress)
class MailboxAddressAdmin(admin.ModelAdmin[MailboxAddress]):
    list_display = ("address", "kind", "national_id", "organisation")
    list_filter = ("kind",)
    search_fields = ("=address", "=national_id")
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("row_hash",)
