from django.urls import path

from mobile_api.views.auth import DevLoginView, LogoutView
from mobile_api.views.push import MuteListView, RoomMuteView, SubscriptionView, VapidKeyView
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
    path("push/vapid-key", VapidKeyView.as_view(), name="push-vapid-key"),
    path("push/subscription", SubscriptionView.as_view(), name="push-subscription"),
    path("push/mutes", MuteListView.as_view(), name="push-mutes"),
    path("rooms/<int:room_id>/mute", RoomMuteView.as_view(), name="room-mute"),
]
