from django.urls import path

from mobile_api.views.auth import DevLoginView, LogoutView
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
    path("auth/psc/start", PscStartView.as_view(), name="psc-start"),
    path("auth/psc/callback", PscCallbackView.as_view(), name="psc-callback"),
    path("auth/psc/finish", PscFinishView.as_view(), name="psc-finish"),
    path("auth/psc/token", PscTokenView.as_view(), name="psc-token"),
    path("auth/psc/session", PscSessionView.as_view(), name="psc-session"),
    path("auth/psc/activity", PscActivityView.as_view(), name="psc-activity"),
    path("auth/psc/logout", PscLogoutView.as_view(), name="psc-logout"),
    path("auth/psc/logged-out", PscLoggedOutView.as_view(), name="psc-logged-out"),
    path("directory/practitioners", DirectorySearchView.as_view(), name="directory-search"),
    path(
        "directory/practitioners/<str:national_id>",
        PractitionerDetailView.as_view(),
        name="directory-practitioner",
    ),
]
