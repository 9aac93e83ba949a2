from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime (Socket.IO)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import broadcast, checks, cluster, policy, receivers  # noqa: F401  checks; layer handlers; receivers
        from .consumers.daphne import close_sessions_on_shutdown, patch_daphne
        from .node import node

        install_admin_ui()
        node.install_log_filter()  # one channels-redis ERROR per Redis outage, not one a second
        patch_daphne()
        close_sessions_on_shutdown()


def install_admin_ui() -> None:
    """REALTIME["ADMIN_UI"]: serve the official admin UI's namespace (a malformed value is realtime.E011's)."""
    from .conf import AdminUISettings, realtime_settings

    value = realtime_settings()["ADMIN_UI"]
    if value is None or value is False:
        return
    try:
        AdminUISettings.parse(value)
    except (TypeError, ValueError):
        return
    from .admin_ui import install

    install(value)
