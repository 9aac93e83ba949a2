from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime (Socket.IO)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Build this process's runtime (once), then hook up the checks, receivers and daphne's gaps.

        Django imports an app's modules only once its registry is ready, so
        everything that needs models or settings is imported here, not at the top.
        """
        from . import checks, receivers  # noqa: F401  system checks and signal receivers register on import
        from .consumers.daphne import close_sessions_on_shutdown, patch_daphne
        from .registry import Registry
        from .runtime import install
        from .server import start_runtime

        runtime = install(start_runtime())
        self.registry = Registry(runtime.member.info(), runtime.metrics)
        runtime.on_serving(start_metrics)
        install_admin_ui()
        runtime.member.install_log_filter()  # one channels-redis ERROR per Redis outage, not one a second
        patch_daphne()
        close_sessions_on_shutdown()


def start_metrics() -> None:
    """The process serves its first request: start what its metrics need (prometheus_client, on first use)."""
    from .prometheus import start
    from .runtime import current

    start(current())


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
