from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime (Socket.IO)"

    def ready(self) -> None:
        from . import broadcast, checks, cluster  # noqa: F401  system checks; channel-layer message handlers
        from .consumers.daphne import close_sessions_on_shutdown, patch_daphne

        patch_daphne()
        close_sessions_on_shutdown()
