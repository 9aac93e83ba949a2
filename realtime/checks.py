"""System checks for ``settings.REALTIME``: bad values fail at startup, not at the first client."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import DEFAULTS, AdminUISettings, RecoverySettings

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
    "CLUSTER_QUEUE_AGE",
    "SHUTDOWN_GRACE",
    "REGISTRY_FLUSH_INTERVAL",
    "METRICS_INTERVAL",
    "MAX_BUFFERED_BYTES",
    "MAX_BUFFERED_PACKETS",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_NAMESPACES",
    "MAX_ROOMS_PER_SOCKET",
    "MAX_PENDING_ACKS",
    "MAX_RUNNING_HANDLERS",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_BYTES",
    "ATTACHMENT_TIMEOUT",
    "RATE_LIMIT_STRIKES",
    "LOG_RATE_LINES",
    "LOG_RATE_INTERVAL",
    "METRICS_FLUSH_INTERVAL",
)
OPTIONAL_POSITIVE_INTS = ("HTTP_COMPRESSION_THRESHOLD", "MALLOC_TRIM_INTERVAL")  # None turns them off
BOOLEANS = ("REQUIRE_DECLARED_ROOMS", "REGISTRY", "ALLOW_EIO3", "METRICS", "READINESS_REQUIRES_LAYER", "TRACING")
OPERATOR_PATHS = ("METRICS_PATH", "LIVENESS_PATH", "READINESS_PATH")


@register()
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
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
        *_allow_request(merged["ALLOW_REQUEST"]),
        *_booleans(merged),
        *_rates(merged),
        *_admin_ui(merged["ADMIN_UI"]),
        *_parser(merged["PARSER"]),
        *_recovery(merged["CONNECTION_STATE_RECOVERY"]),
        *_allowed_ips(merged["METRICS_ALLOWED_IPS"]),
        *_operator_paths(merged),
        *_tracing(merged["TRACING"]),
        *_queue_age(merged),
        *_sentinel_hosts(getattr(settings, "CHANNEL_LAYERS", {})),
    ]


def _unknown_keys(value: dict[str, Any]) -> list[CheckMessage]:
    return [
        Warning(f"REALTIME[{key!r}] is not a setting realtime knows; it is ignored.", id="realtime.W001")
        for key in value
        if key not in DEFAULTS
    ]


def _positive_ints(merged: dict[str, Any]) -> list[CheckMessage]:
    def bad(value: object) -> bool:
        return isinstance(value, bool) or not isinstance(value, int) or value <= 0

    errors: list[CheckMessage] = [
        Error(f"REALTIME[{key!r}] must be a positive whole number, not {merged[key]!r}.", id="realtime.E002")
        for key in POSITIVE_INTS
        if bad(merged[key])
    ]
    for key in OPTIONAL_POSITIVE_INTS:
        if merged[key] is not None and bad(merged[key]):
            errors.append(
                Error(
                    f"REALTIME[{key!r}] must be a positive whole number or None, not {merged[key]!r}.",
                    id="realtime.E002",
                )
            )
    return errors


def _transports(value: object) -> list[CheckMessage]:
    if not isinstance(value, (list, tuple)) or not value or any(t not in KNOWN_TRANSPORTS for t in value):
        return [
            Error(
                f"REALTIME['TRANSPORTS'] must be a non-empty list drawn from {list(KNOWN_TRANSPORTS)}, not {value!r}.",
                id="realtime.E003",
            )
        ]
    return []


def _origins(value: object) -> list[CheckMessage]:
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
    if "*" in value:
        return [
            Warning(
                "REALTIME['CORS_ALLOWED_ORIGINS'] contains '*': pages of any site may open sockets here.",
                hint="They connect without the visitor's cookies (Django session auth never works cross-site; "
                "tokens do). List the origins you trust by name instead, e.g. 'https://app.example.com'.",
                id="realtime.W002",
            )
        ]
    return []


def _is_origin(value: object) -> bool:
    if value == "*":
        return True
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path == "" and not parts.query


def _path(value: object) -> list[CheckMessage]:
    if not isinstance(value, str) or not value.strip("/") or value != value.strip("/"):
        return [
            Error(
                f"REALTIME['PATH'] must be a URL prefix without leading or trailing slashes, not {value!r}.",
                id="realtime.E005",
            )
        ]
    return []


def _imports(merged: dict[str, Any], key: str) -> list[CheckMessage]:
    value = merged[key]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [Error(f"REALTIME[{key!r}] must be a list of import strings.", id="realtime.E006")]
    errors: list[CheckMessage] = []
    for path in value:
        try:
            import_namespace_entry(path)
        except ImportError as exc:
            errors.append(
                Error(f"REALTIME[{key!r}] names {path!r}, which cannot be imported: {exc}", id="realtime.E006")
            )
    return errors


def _authenticators(value: object) -> list[CheckMessage]:
    """Each entry must import to a class with an ``authenticate`` method: a typo fails at startup."""
    from django.utils.module_loading import import_string

    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [Error("REALTIME['AUTHENTICATORS'] must be a list of import strings.", id="realtime.E007")]
    errors: list[CheckMessage] = []
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


def _allow_request(value: object) -> list[CheckMessage]:
    """None, or an import string naming a callable: a typo would otherwise refuse every handshake."""
    from django.utils.module_loading import import_string

    if value is None:
        return []
    problem = None
    if not isinstance(value, str):
        problem = f"must be None or an import string, not {value!r}"
    else:
        try:
            if not callable(import_string(value)):
                problem = f"names {value!r}, which is not callable"
        except ImportError as exc:
            problem = f"names {value!r}, which cannot be imported: {exc}"
    return [Error(f"REALTIME['ALLOW_REQUEST'] {problem}.", id="realtime.E009")] if problem else []


def _booleans(merged: dict[str, Any]) -> list[CheckMessage]:
    return [
        Error(f"REALTIME[{key!r}] must be True or False, not {merged[key]!r}.", id="realtime.E008")
        for key in BOOLEANS
        if not isinstance(merged[key], bool)
    ]


def _rates(merged: dict[str, Any]) -> list[CheckMessage]:
    from .limits import Rate

    limits = merged["RATE_LIMITS"]
    if not isinstance(limits, dict):
        return [Error("REALTIME['RATE_LIMITS'] must be a dict of event name -> rate ('10/s').", id="realtime.E010")]
    rates = {}
    if merged["HANDSHAKE_RATE_PER_IP"] is not None:  # None: no handshake rate limit
        rates["HANDSHAKE_RATE_PER_IP"] = merged["HANDSHAKE_RATE_PER_IP"]
    rates.update({f"RATE_LIMITS[{name!r}]": rate for name, rate in limits.items()})
    errors: list[CheckMessage] = []
    for key, rate in rates.items():
        try:
            Rate.parse(rate)
        except ValueError as exc:
            errors.append(Error(f"REALTIME[{key!r}]: {exc}.", id="realtime.E010"))
    return errors


def import_namespace_entry(path: str) -> object:
    """A module path (imported for its @io.on handlers) or a dotted path to a Namespace class."""
    from importlib import import_module

    from django.utils.module_loading import import_string

    try:
        return import_module(path)
    except ImportError:
        return import_string(path)


def _admin_ui(value: object) -> list[CheckMessage]:
    if value is None or value is False:
        return []
    return _parses(AdminUISettings.parse, value, "ADMIN_UI", "{'NAMESPACE': '/admin'}", "realtime.E011")


def _parses(parse: Callable[[object], object], value: object, key: str, example: str, check: str) -> list[CheckMessage]:
    """The error a dict-valued setting earns when ``parse`` refuses it (none when it parses)."""
    try:
        parse(value)
    except (TypeError, ValueError) as exc:
        return [Error(f"REALTIME['{key}']: {exc}.", hint=f"REALTIME['{key}'] = {example}", id=check)]
    return []


def _parser(value: object) -> list[CheckMessage]:
    from .parsers import parser_named

    try:
        parser_named(value if isinstance(value, str) else repr(value))
    except ValueError as exc:
        return [
            Error(
                f"REALTIME['PARSER']: {exc}.",
                hint="The client needs the same parser: socket.io-msgpack-parser for 'msgpack'.",
                id="realtime.E012",
            )
        ]
    return []


def _recovery(value: object) -> list[CheckMessage]:
    example = "{'MAX_DISCONNECTION_DURATION': 120_000}"
    return _parses(RecoverySettings.parse, value, "CONNECTION_STATE_RECOVERY", example, "realtime.E013")


def _allowed_ips(value: object) -> list[CheckMessage]:
    from .proxies import networks

    problem = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        problem = f"must be a list of IP addresses or networks, not {value!r}"
    else:
        try:
            networks(value)
        except ValueError as exc:
            problem = str(exc)
    if problem is None:
        return []
    return [
        Error(
            f"REALTIME['METRICS_ALLOWED_IPS'] {problem}.",
            hint="REALTIME['METRICS_ALLOWED_IPS'] = ['127.0.0.1', '::1', '10.0.0.0/8']",
            id="realtime.E014",
        )
    ]


def _operator_paths(merged: dict[str, Any]) -> list[CheckMessage]:
    """The router's own paths: None, or a path without slashes at either end, none the Engine.IO path's."""
    errors: list[CheckMessage] = []
    seen = {merged["PATH"]: "PATH"}
    for key in OPERATOR_PATHS:
        value = merged[key]
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip("/") or value != value.strip("/"):
            problem = f"must be None or a path without leading or trailing slashes, not {value!r}"
        elif value in seen:
            problem = f"is {value!r}, which REALTIME[{seen[value]!r}] already uses"
        else:
            seen[value] = key
            continue
        errors.append(Error(f"REALTIME[{key!r}] {problem}.", hint=f"REALTIME[{key!r}] = 'metrics'", id="realtime.E015"))
    return errors


def _tracing(value: object) -> list[CheckMessage]:
    if value is not True:
        return []
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return [
            Error(
                "REALTIME['TRACING'] is True, but opentelemetry-api is not installed.",
                hint='pip install "django-realtime-socketio[otel]", and set up the SDK (TracerProvider) yourself.',
                id="realtime.E016",
            )
        ]
    return []


# A Redis restart or a Sentinel failover takes a few seconds; an outbox that forgets sooner loses them.
SHORTEST_SAFE_QUEUE_AGE = 10_000


def _queue_age(merged: dict[str, Any]) -> list[CheckMessage]:
    age = merged["CLUSTER_QUEUE_AGE"]
    if isinstance(age, int) and not isinstance(age, bool) and 0 < age < SHORTEST_SAFE_QUEUE_AGE:
        return [
            Warning(
                f"REALTIME['CLUSTER_QUEUE_AGE'] is {age} ms: cross-process messages kept through a Redis "
                "outage are dropped after that, shorter than a Redis restart or a Sentinel failover takes.",
                hint=f"Keep it at {SHORTEST_SAFE_QUEUE_AGE} ms or more (the default is 60000).",
                id="realtime.W003",
            )
        ]
    return []


def _sentinel_hosts(layers: object) -> list[CheckMessage]:
    """channels-redis takes a Sentinel host as {"sentinels": [(host, port), ...], "master_name": ...}."""
    layer = layers.get("default") if isinstance(layers, dict) else None
    if not isinstance(layer, dict) or "channels_redis" not in str(layer.get("BACKEND", "")):
        return []
    hosts = layer.get("CONFIG", {}).get("hosts") or []
    errors: list[CheckMessage] = []
    for host in hosts if isinstance(hosts, (list, tuple)) else []:
        if not isinstance(host, dict) or ("sentinels" not in host and "master_name" not in host):
            continue
        sentinels = host.get("sentinels")
        pairs = isinstance(sentinels, (list, tuple)) and sentinels and all(_is_address(s) for s in sentinels)
        if not pairs or not isinstance(host.get("master_name"), str) or not host["master_name"]:
            errors.append(
                Error(
                    f"CHANNEL_LAYERS['default'] has a Sentinel host realtime cannot use: {host!r}.",
                    hint="Give it 'sentinels', a list of (host, port) pairs, and 'master_name', the name the "
                    "sentinels monitor: {'sentinels': [('10.0.0.1', 26379), ...], 'master_name': 'mymaster'}.",
                    id="realtime.E017",
                )
            )
    return errors


def _is_address(value: object) -> bool:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    host, port = value
    return isinstance(host, str) and isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536
