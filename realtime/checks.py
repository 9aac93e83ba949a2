"""System checks for ``settings.REALTIME``: bad values fail at startup, not at the first client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register

from .conf import DEFAULTS

KNOWN_TRANSPORTS = ("polling", "websocket")
POSITIVE_INTS = (
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "MAX_PAYLOAD",
    "UPGRADE_TIMEOUT",
    "CONNECT_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "CLUSTER_TIMEOUT",
    "CLUSTER_QUEUE_BYTES",
    "SHUTDOWN_GRACE",
    "REGISTRY_FLUSH_INTERVAL",
    "METRICS_INTERVAL",
)
BOOLEANS = ("REQUIRE_DECLARED_ROOMS", "REGISTRY")


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    value = getattr(settings, "REALTIME", {})
    if not isinstance(value, dict):
        return [Error("REALTIME must be a dict.", hint="REALTIME = {'PING_INTERVAL': 25000, ...}", id="realtime.E001")]
    merged = {**DEFAULTS, **value}
    return [
        *_unknown_keys(value),
        *_positive_ints(merged),
        *_transports(merged["TRANSPORTS"]),
        *_origins(merged["CORS_ALLOWED_ORIGINS"]),
        *_path(merged["PATH"]),
        *_imports(merged, "NAMESPACES"),
        *_authenticators(merged["AUTHENTICATORS"]),
        *_booleans(merged),
    ]


def _unknown_keys(value: dict[str, Any]) -> list[Any]:
    return [
        Warning(f"REALTIME[{key!r}] is not a setting realtime knows; it is ignored.", id="realtime.W001")
        for key in value
        if key not in DEFAULTS
    ]


def _positive_ints(merged: dict[str, Any]) -> list[Any]:
    return [
        Error(f"REALTIME[{key!r}] must be a positive whole number, not {merged[key]!r}.", id="realtime.E002")
        for key in POSITIVE_INTS
        if isinstance(merged[key], bool) or not isinstance(merged[key], int) or merged[key] <= 0
    ]


def _transports(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)) or not value or any(t not in KNOWN_TRANSPORTS for t in value):
        return [
            Error(
                f"REALTIME['TRANSPORTS'] must be a non-empty list drawn from {list(KNOWN_TRANSPORTS)}, not {value!r}.",
                id="realtime.E003",
            )
        ]
    return []


def _origins(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        return [Error("REALTIME['CORS_ALLOWED_ORIGINS'] must be a list of origins.", id="realtime.E004")]
    bad = [o for o in value if not _is_origin(o)]
    if bad:
        return [
            Error(
                f"REALTIME['CORS_ALLOWED_ORIGINS'] holds values that are not origins: {bad!r}.",
                hint="Write each as scheme://host[:port] with no path, e.g. 'https://example.com', or '*'.",
                id="realtime.E004",
            )
        ]
    return []


def _is_origin(value: Any) -> bool:
    if value == "*":
        return True
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path == "" and not parts.query


def _path(value: Any) -> list[Any]:
    if not isinstance(value, str) or not value.strip("/") or value != value.strip("/"):
        return [
            Error(
                f"REALTIME['PATH'] must be a URL prefix without leading or trailing slashes, not {value!r}.",
                id="realtime.E005",
            )
        ]
    return []


def _imports(merged: dict[str, Any], key: str) -> list[Any]:
    value = merged[key]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [Error(f"REALTIME[{key!r}] must be a list of import strings.", id="realtime.E006")]
    errors = []
    for path in value:
        try:
            import_namespace_entry(path)
        except ImportError as exc:
            errors.append(
                Error(f"REALTIME[{key!r}] names {path!r}, which cannot be imported: {exc}", id="realtime.E006")
            )
    return errors


def _authenticators(value: Any) -> list[Any]:
    """Each entry must import to a class with an ``authenticate`` method: a typo fails at startup."""
    from django.utils.module_loading import import_string

    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [Error("REALTIME['AUTHENTICATORS'] must be a list of import strings.", id="realtime.E007")]
    errors = []
    for path in value:
        try:
            cls = import_string(path)
        except ImportError as exc:
            errors.append(
                Error(f"REALTIME['AUTHENTICATORS'] names {path!r}, which cannot be imported: {exc}", id="realtime.E007")
            )
            continue
        if not callable(getattr(cls, "authenticate", None)):
            errors.append(
                Error(f"REALTIME['AUTHENTICATORS'] names {path!r}, which has no authenticate().", id="realtime.E007")
            )
    return errors


def _booleans(merged: dict[str, Any]) -> list[Any]:
    return [
        Error(f"REALTIME[{key!r}] must be True or False, not {merged[key]!r}.", id="realtime.E008")
        for key in BOOLEANS
        if not isinstance(merged[key], bool)
    ]


def import_namespace_entry(path: str) -> Any:
    """A module path (imported for its @io.on handlers) or a dotted path to a Namespace class."""
    from importlib import import_module

    from django.utils.module_loading import import_string

    try:
        return import_module(path)
    except ImportError:
        return import_string(path)
