from django.urls import path

from mobile_api.views.auth import DevLoginView, LogoutView
from mobile_api.views.rooms import HistoryView, MemberAddView, MemberRemoveView, RoomListCreateView

urlpatterns = [
    path("auth/dev-login", DevLoginView.as_view(), name="dev-login"),
    path("auth/logout", LogoutView.as_view(), name="logout"),
    path("rooms", RoomListCreateView.as_view(), name="rooms"),
    path("rooms/<int:room_id>/members", MemberAddView.as_view(), name="room-members"),
    path(
        "rooms/<int:room_id>/members/<str:practitioner_id>",
        MemberRemoveView.as_view(),
        name="room-member",
    ),
    path("rooms/<int:room_id>/messages", HistoryView.as_view(), name="room-messages"),
]

# Encrypted attachments (docs/protocol.md, "Attachments").
from mobile_api.views.attachments import (  # noqa: E402
    DownloadView,
    UploadCompleteView,
    UploadPartView,
    UploadStartView,
    UploadView,
)

urlpatterns += [
    path("attachments/uploads", UploadStartView.as_view(), name="attachment-uploads"),
    path("attachments/uploads/<str:attachment_id>", UploadView.as_view(), name="attachment-upload"),
    path(
        "attachments/uploads/<str:attachment_id>/parts/<int:index>",
        UploadPartView.as_view(),
        name="attachment-upload-part",
    ),
    path(
        "attachments/uploads/<str:attachment_id>/complete",
        UploadCompleteView.as_view(),
        name="attachment-upload-complete",
    ),
    path("attachments/<str:attachment_id>", DownloadView.as_view(), name="attachment"),
]
