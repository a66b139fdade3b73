from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Notifications Web Push"

    def ready(self) -> None:
        from chat.fanout import add_pipeline_tap, add_publish_listener
        from push.conf import push_settings
        from push.feed import drain_into_pipeline, on_publish

        push_settings()  # a wrong RELAIS_VAPID_* / RELAIS_PUSH_* value stops the start here
        add_publish_listener(on_publish)
        add_pipeline_tap(drain_into_pipeline)
