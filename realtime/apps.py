from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime (Socket.IO)"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
        from .consumers.daphne import patch_daphne

        patch_daphne()
