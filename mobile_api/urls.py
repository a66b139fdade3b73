"""The REST API, version 1 (``/api/v1/``). One view per operation, grouped by subject."""

from django.urls import path

from archiving.views import ArchiverStatusView
from mobile_api import openapi_attachments  # noqa: F401  (describes the attachment views)
from mobile_api.docs import ApiDocsView, ApiSchemaView
from mobile_api.throttling import UPLOAD
from mobile_api.views import devices as device_views
from mobile_api.views import keyring as keyring_views
from mobile_api.views import keys as key_views
from mobile_api.views.account import MeView
from mobile_api.views.attachments import (
    DownloadView,
    UploadCompleteView,
    UploadPartView,
    UploadStartView,
    UploadView,
)
from mobile_api.views.auth import DevLoginView, LogoutView
from mobile_api.views.billing import CountView, LedgerView, RecordActView
from mobile_api.views.directory import DirectorySearchView, PractitionerDetailView
from mobile_api.views.login import (
    PscActivityView,
    PscCallbackView,
    PscFinishView,
    PscLoggedOutView,
    PscLogoutView,
    PscSessionView,
    PscStartView,
    PscTokenView,
)
from mobile_api.views.messages import ReadMarkerView, RoomMessagesView, UnreadView
from mobile_api.views.push import MuteListView, RoomMuteView, SubscriptionView, VapidKeyView
from mobile_api.views.rooms import (
    MemberAddView,
    MemberRemoveView,
    RoomListCreateView,
    RoomStateView,
)
from mobile_api.views.teleexpertise import (
    TeleexpertiseListCreateView,
    TeleexpertiseStepView,
    TeleexpertiseView,
)

login = [
    path("auth/dev-login", DevLoginView.as_view(), name="dev-login"),
    path("auth/logout", LogoutView.as_view(), name="logout"),
    # Pro Santé Connect (docs/identity.md).
    path("auth/psc/start", PscStartView.as_view(), name="psc-start"),
    path("auth/psc/callback", PscCallbackView.as_view(), name="psc-callback"),
    path("auth/psc/finish", PscFinishView.as_view(), name="psc-finish"),
    path("auth/psc/token", PscTokenView.as_view(), name="psc-token"),
    path("auth/psc/session", PscSessionView.as_view(), name="psc-session"),
    path("auth/psc/activity", PscActivityView.as_view(), name="psc-activity"),
    path("auth/psc/logout", PscLogoutView.as_view(), name="psc-logout"),
    path("auth/psc/logged-out", PscLoggedOutView.as_view(), name="psc-logged-out"),
]

# The RPPS directory (docs/identity.md).
directory = [
    path("directory/practitioners", DirectorySearchView.as_view(), name="directory-search"),
    path(
        "directory/practitioners/<str:national_id>",
        PractitionerDetailView.as_view(),
        name="directory-practitioner",
    ),
]

rooms = [
    path("rooms", RoomListCreateView.as_view(), name="rooms"),
    path("rooms/<int:room_id>/state", RoomStateView.as_view(), name="room-state"),
    path("rooms/<int:room_id>/members", MemberAddView.as_view(), name="room-members"),
    path(
        "rooms/<int:room_id>/members/<str:practitioner_id>",
        MemberRemoveView.as_view(),
        name="room-member",
    ),
    path("rooms/<int:room_id>/messages", RoomMessagesView.as_view(), name="room-messages"),
    path("rooms/<int:room_id>/read", ReadMarkerView.as_view(), name="room-read"),
    path("rooms/unread", UnreadView.as_view(), name="rooms-unread"),
]

# Key transparency, devices and the to-device queue (docs/protocol.md §10).
keys_and_devices = [
    path("keys/log", key_views.LogInfoView.as_view(), name="keys-log"),
    path("keys/log/tree-head", key_views.TreeHeadView.as_view(), name="keys-tree-head"),
    path("keys/log/consistency", key_views.ConsistencyView.as_view(), name="keys-consistency"),
    path("keys/log/entries", key_views.EntriesView.as_view(), name="keys-entries"),
    path("keys/log/cosignatures", key_views.CosignatureView.as_view(), name="keys-cosignatures"),
    path("identity", device_views.IdentityView.as_view(), name="identity"),
    path(
        "keys/practitioners/<str:national_id>",
        key_views.PractitionerKeysView.as_view(),
        name="keys-practitioner",
    ),
    path("devices", device_views.DeviceListView.as_view(), name="devices"),
    path("devices/keys", device_views.DeviceKeysView.as_view(), name="device-keys"),
    path("devices/messages", device_views.ToDeviceView.as_view(), name="device-messages"),
    path(
        "devices/messages/ack", device_views.ToDeviceAckView.as_view(), name="device-messages-ack"
    ),
    path("devices/<int:device_id>", device_views.DeviceRevokeView.as_view(), name="device"),
    path(
        "devices/revoke-others",
        device_views.RevokeOthersView.as_view(),
        name="devices-revoke-others",
    ),
    path("devices/kex", keyring_views.KexView.as_view(), name="devices-kex"),
    path(
        "devices/link-requests",
        keyring_views.LinkRequestsView.as_view(),
        name="devices-link-requests",
    ),
    path(
        "devices/link-requests/<str:link_id>",
        keyring_views.LinkRequestView.as_view(),
        name="devices-link-request",
    ),
    path(
        "devices/link-requests/<str:link_id>/approve",
        keyring_views.LinkApproveView.as_view(),
        name="devices-link-approve",
    ),
    path("backup/identity", keyring_views.IdentityBackupView.as_view(), name="backup-identity"),
    path("backup/keys", keyring_views.HistoryKeysView.as_view(), name="backup-keys"),
]

# Encrypted attachments (docs/protocol.md §11); uploads have their own rate limits.
attachments = [
    path(
        "attachments/uploads",
        UploadStartView.as_view(throttle_classes=UPLOAD),
        name="attachment-uploads",
    ),
    path("attachments/uploads/<str:attachment_id>", UploadView.as_view(), name="attachment-upload"),
    path(
        "attachments/uploads/<str:attachment_id>/parts/<int:index>",
        UploadPartView.as_view(throttle_classes=UPLOAD),
        name="attachment-upload-part",
    ),
    path(
        "attachments/uploads/<str:attachment_id>/complete",
        UploadCompleteView.as_view(throttle_classes=UPLOAD),
        name="attachment-upload-complete",
    ),
    path("attachments/<str:attachment_id>", DownloadView.as_view(), name="attachment"),
]

# Web Push (docs/push.md).
push = [
    path("push/vapid-key", VapidKeyView.as_view(), name="push-vapid-key"),
    path("push/subscription", SubscriptionView.as_view(), name="push-subscription"),
    path("push/mutes", MuteListView.as_view(), name="push-mutes"),
    path("rooms/<int:room_id>/mute", RoomMuteView.as_view(), name="room-mute"),
]

# Téléexpertise and its billing (docs/protocol.md §12, docs/teleexpertise.md).
teleexpertise = [
    path("archiver/status", ArchiverStatusView.as_view(), name="archiver-status"),
    path("teleexpertise", TeleexpertiseListCreateView.as_view(), name="teleexpertise"),
    path("teleexpertise/<int:room_id>", TeleexpertiseView.as_view(), name="teleexpertise-one"),
    path(
        "teleexpertise/<int:room_id>/steps",
        TeleexpertiseStepView.as_view(),
        name="teleexpertise-steps",
    ),
    path("teleexpertise/<int:room_id>/act", RecordActView.as_view(), name="teleexpertise-act"),
    path("billing/ledger", LedgerView.as_view(), name="billing-ledger"),
    path("billing/count", CountView.as_view(), name="billing-count"),
]

# The caller's account (docs/api.md).
account = [
    path("me", MeView.as_view(), name="me"),
]

# The OpenAPI schema and its interactive page (docs/api.md).
schema = [
    path("schema", ApiSchemaView.as_view(), name="api-schema"),
    path("docs", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    *login,
    *directory,
    *rooms,
    *keys_and_devices,
    *attachments,
    *push,
    *teleexpertise,
    *account,
    *schema,
]
