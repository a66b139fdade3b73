from django.urls import path

from chat.consumer import ChatConsumer

websocket_urlpatterns = [
    path("ws/v1/", ChatConsumer.as_asgi()),
]
