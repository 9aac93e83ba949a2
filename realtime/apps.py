from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime (Socket.IO)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import broadcast, checks, cluster, policy, receivers  # noqa: F401  checks; layer handlers; receivers
        from .consumers.daphne import close_sessions_on_shutdown, patch_daphne
        from .node import node

        node.install_log_filter()  # one channels-redis ERROR per Redis outage, not one a second
        patch_daphne()
        close_sessions_on_shutdown()
