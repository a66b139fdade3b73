"""The operator's view of the archivers in the Django admin: read-only, metadata only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from archiving.models import ArchiveRoomStatus


@admin.register(ArchiveRoomStatus)
class ArchiveRoomStatusAdmin(admin.ModelAdmin[ArchiveRoomStatus]):
    list_display = (
        "room",
        "archiver_device",
        "archived_up_to",
        "received_up_to",
        "pending",
        "sent",
        "integrated",
        "rejected",
        "failed",
        "last_error_code",
        "recipients_accepted",
        "recipients_refused",
        "members_not_sent",
        "reported_at",
    )
    list_filter = ("last_error_code",)
    ordering = ("room_id",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in ArchiveRoomStatus._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
