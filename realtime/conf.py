"""The ``REALTIME`` settings dict, merged over documented defaults.

One dict (like ``REST_FRAMEWORK``) keeps the knobs discoverable; values are
read once and cached, and the cache is dropped when a test overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # URL prefix the Engine.IO endpoint answers on, without slashes.
    "PATH": "socket.io",
    # Heartbeat, in milliseconds: the server pings every PING_INTERVAL and
    # drops a client that has not answered PING_TIMEOUT after a ping.
    "PING_INTERVAL": 25_000,
    "PING_TIMEOUT": 20_000,
    # Largest polling body or WebSocket frame accepted, in bytes.
    "MAX_PAYLOAD": 1_000_000,
    # Polling answers of at least this many bytes are sent gzip- or deflate-compressed to
    # clients whose Accept-Encoding takes it, as Node's httpCompression; None turns it off.
    "HTTP_COMPRESSION_THRESHOLD": 1024,
    # Engine.IO v3 clients (EIO=3: socket.io-client@2, SocketIoClientDotNet, older Go, Java and
    # Swift clients), as Node's allowEIO3: off by default; when off they are refused with code 5.
    "ALLOW_EIO3": False,
    # Connection state recovery, as Node's connectionStateRecovery (realtime.recovery): None (off),
    # True, or a dict of MAX_DISCONNECTION_DURATION (ms, 120_000), SKIP_MIDDLEWARES (True) and
    # MAX_BUFFER_BYTES (bytes of packets kept per namespace for clients that are away, 16 MiB).
    "CONNECTION_STATE_RECOVERY": None,
    # Transports offered, in the order a client should try them.
    "TRANSPORTS": ["polling", "websocket"],
    # Origins allowed for cross-origin requests ("https://example.com", or "*").
    # Empty means same-origin only; requests without an Origin always pass.
    # Only origins listed by name (and the same origin) may use cookies: "*"
    # lets any site connect, but never as the visitor's Django session.
    "CORS_ALLOWED_ORIGINS": [],
    # A callable (import string) that sees each handshake before any session
    # exists, like Node's allowRequest: it takes the realtime.sessions.ClientRequest
    # and returns True to let it in; anything else refuses (HTTP 403, Engine.IO
    # error 4 "Forbidden"). May be async; a plain def runs in a thread (ORM ok).
    "ALLOW_REQUEST": None,
    # Refusals and other bad-input warnings: at most LOG_RATE_LINES lines of each
    # kind per LOG_RATE_INTERVAL ms; the rest are counted, and the count is
    # reported on the next line of that kind (realtime.logs.RateLimitedLogger).
    "LOG_RATE_LINES": 10,
    "LOG_RATE_INTERVAL": 10_000,
    # How long a probe WebSocket may take to complete an upgrade, in ms.
    "UPGRADE_TIMEOUT": 10_000,
    # How long a new connection may take to connect to a namespace, in ms.
    "CONNECT_TIMEOUT": 45_000,
    # Namespace classes (import strings), or modules whose @io.on(...)
    # handlers should be registered. "/" exists even when nothing names it.
    "NAMESPACES": [],
    # How often each server process announces itself to the others, in ms;
    # a process silent for three intervals is taken for dead.
    "HEARTBEAT_INTERVAL": 5_000,
    # How long cluster-wide operations (fetch_sockets, ...) wait for answers, in ms.
    "CLUSTER_TIMEOUT": 5_000,
    # The outbox: cross-process messages a process holds while Redis is slow or away, published
    # in order when it is back. Past CLUSTER_QUEUE_BYTES bytes new messages are dropped (the
    # sender's emit raises ClusterUnavailable), past CLUSTER_QUEUE_AGE ms old ones are; each
    # counted, and a WARNING says so (once per 10 s).
    "CLUSTER_QUEUE_BYTES": 32 * 1024 * 1024,
    "CLUSTER_QUEUE_AGE": 60_000,
    # How often each server process hands the free memory inside its C heap back to the
    # system (glibc's malloc_trim, in a thread; realtime/memory.py says why), in ms; None: never.
    "MALLOC_TRIM_INTERVAL": 60_000,
    # On SIGTERM: how long, in ms, the process takes to refuse new handshakes, close
    # its transports in batches (clients reconnect elsewhere) and answer what it forwards.
    "SHUTDOWN_GRACE": 5_000,
    # The Socket.IO parser, as Node's `parser` option: "json" (socket.io-parser) or "msgpack"
    # (npm's socket.io-msgpack-parser); clients must use the same one, and so must every process.
    "PARSER": "json",
    # What receives the Engine.IO messages of a session: a callable taking
    # the Session and returning an object with on_open/on_message/on_close.
    # The Socket.IO server by default; realtime.testing.EchoHandler echoes.
    "HANDLER": "realtime.server.Client",
    # Who is connecting: authenticator classes (import strings), tried in order
    # at every CONNECT, like DRF's DEFAULT_AUTHENTICATION_CLASSES. Each returns
    # a user (or (user, credential)), None to pass, or raises ConnectionRefused.
    "AUTHENTICATORS": ["realtime.auth.TokenAuthentication", "realtime.auth.SessionAuthentication"],
    # When True, socket.join_checked() refuses rooms that no Room row declares.
    "REQUIRE_DECLARED_ROOMS": False,
    # The live-connection registry the admin reads (realtime.registry): on or off,
    # and how often each process writes its batch of changes, in ms.
    "REGISTRY": True,
    "REGISTRY_FLUSH_INTERVAL": 250,
    # Width of one dashboard sample (connections, messages in and out), in ms.
    "METRICS_INTERVAL": 10_000,
    # The official Socket.IO admin UI (@socket.io/admin-ui, realtime.admin_ui): None (off), or a
    # dict of NAMESPACE ("/admin"), READONLY (False), SERVER_ID (None: host:pid:key), EVENTS
    # (True: relay every event while a UI watches) and SESSION_TTL (ms a login is remembered).
    "ADMIN_UI": None,
    # -- limits: what one client can make a process hold (README, "Security and limits") --
    # Unsent data one session may leave behind, in bytes (WebSocket: what the ASGI server
    # still holds; polling: the backlog between GETs) and, on polling, in packets. Past
    # either the session is closed with "transport error"; volatile packets go first.
    "MAX_BUFFERED_BYTES": 4 * 1024 * 1024,
    "MAX_BUFFERED_PACKETS": 1_000,
    # Engine.IO sessions per process, and per client address (an office or a carrier's NAT puts
    # hundreds of real users behind one address: README, "Security and limits", says why these are safe).
    "MAX_CONNECTIONS": 10_000,
    "MAX_CONNECTIONS_PER_IP": 1_000,
    # New sessions per client address ("N/s", "N/m" or "N/h": N at once, refilled over the period).
    "HANDSHAKE_RATE_PER_IP": "60/s",
    # Namespaces one session may join at once.
    "MAX_NAMESPACES": 32,
    # Rooms one socket may be in (its own room included).
    "MAX_ROOMS_PER_SOCKET": 1_000,
    # Acknowledgements outstanding per socket, each way: events from the client still being
    # answered, and emit_with_ack calls still waiting for the client.
    "MAX_PENDING_ACKS": 256,
    # Event handlers of one session running at once.
    "MAX_RUNNING_HANDLERS": 256,
    # A binary packet's attachments: how many, how many bytes in all, and how long (ms)
    # the server waits for them.
    "MAX_ATTACHMENTS": 10,
    "MAX_ATTACHMENT_BYTES": 10 * 1024 * 1024,
    "ATTACHMENT_TIMEOUT": 30_000,
    # Events per socket: {"event name" or "*": "N/s"}; handlers may also carry
    # @rate_limit("N/s"). Over the limit an event is refused (an error ack); a socket
    # refused RATE_LIMIT_STRIKES times within 10 s is disconnected.
    "RATE_LIMITS": {},
    "RATE_LIMIT_STRIKES": 50,
    # -- operating (README, "Operating") --
    # What the process counts (realtime.metrics), for Prometheus and the admin dashboard. False leaves
    # out the handler and emit_with_ack timings, the only counting that reads a clock.
    "METRICS": True,
    # The router answers Prometheus's scrape at this path ("metrics": /metrics) before Django's
    # middleware; None: only where you mount realtime.views.metrics.
    "METRICS_PATH": None,
    # Who may scrape (addresses and networks: "10.0.0.0/8"); staff users may also read the view.
    "METRICS_ALLOWED_IPS": ["127.0.0.1", "::1"],
    # Under gunicorn's workers (prometheus_client's multiprocess mode): how often, in ms, each worker
    # copies its counters to the shared files the scrape reads.
    "METRICS_FLUSH_INTERVAL": 1_000,
    # Probes the router answers before Django (no ALLOWED_HOSTS, no database): liveness and
    # readiness paths such as "healthz" and "readyz"; None: only where you mount realtime.views.
    "LIVENESS_PATH": None,
    "READINESS_PATH": None,
    # Readiness also fails while the channel layer (Redis) is unreachable. Off by default: with one
    # Redis for every process, an outage would take every process out of the load balancer at once.
    "READINESS_REQUIRES_LAYER": False,
    # OpenTelemetry spans (needs opentelemetry-api; the SDK and its exporter are the project's).
    "TRACING": False,
}


def user_settings() -> dict[str, Any]:
    value = getattr(settings, "REALTIME", {})
    return value if isinstance(value, dict) else {}


@lru_cache(maxsize=1)
def realtime_settings() -> dict[str, Any]:
    """Defaults overlaid with ``settings.REALTIME`` (checked by realtime.checks)."""
    return {**DEFAULTS, **user_settings()}


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "REALTIME":
        realtime_settings.cache_clear()


def settings_dict(value: object, keys: dict[str, str]) -> dict[str, Any]:
    """A setting that is True (every default) or a dict of some of ``keys``; TypeError/ValueError otherwise."""
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise TypeError(f"must be None, True or a dict, not {value!r}")
    unknown = set(value) - set(keys)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    return value


@dataclass(frozen=True)
class AdminUISettings:
    """``REALTIME["ADMIN_UI"]`` parsed: what realtime.admin_ui serves (checked as realtime.E011)."""

    namespace: str = "/admin"
    readonly: bool = False
    server_id: str | None = None
    events: bool = True
    session_ttl: int = 24 * 3600 * 1000

    KEYS = {
        "NAMESPACE": "namespace",
        "READONLY": "readonly",
        "SERVER_ID": "server_id",
        "EVENTS": "events",
        "SESSION_TTL": "session_ttl",
    }

    @classmethod
    def parse(cls, value: object) -> AdminUISettings:
        """True means every default; a dict overrides some. Raises TypeError/ValueError when malformed."""
        value = settings_dict(value, cls.KEYS)
        parsed = cls(**{cls.KEYS[key]: v for key, v in value.items()})
        if not isinstance(parsed.namespace, str) or not parsed.namespace.startswith("/"):
            raise ValueError(f"NAMESPACE must be a namespace name such as '/admin', not {parsed.namespace!r}")
        if not isinstance(parsed.readonly, bool) or not isinstance(parsed.events, bool):
            raise TypeError("READONLY and EVENTS must be True or False")
        if parsed.server_id is not None and not isinstance(parsed.server_id, str):
            raise TypeError(f"SERVER_ID must be a string or None, not {parsed.server_id!r}")
        if not isinstance(parsed.session_ttl, int) or isinstance(parsed.session_ttl, bool) or parsed.session_ttl <= 0:
            raise ValueError(f"SESSION_TTL must be a positive number of ms, not {parsed.session_ttl!r}")
        return parsed


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    """``REALTIME["CONNECTION_STATE_RECOVERY"]`` parsed (checked as realtime.E013; used by realtime.recovery)."""

    max_disconnection: float = 120.0  # seconds
    skip_middlewares: bool = True
    max_buffer_bytes: int = 16 * 1024 * 1024

    KEYS = {
        "MAX_DISCONNECTION_DURATION": "max_disconnection",
        "SKIP_MIDDLEWARES": "skip_middlewares",
        "MAX_BUFFER_BYTES": "max_buffer_bytes",
    }

    @classmethod
    def parse(cls, value: object) -> RecoverySettings | None:
        """None (off), True (every default) or a dict; raises TypeError/ValueError when malformed."""
        if value is None or value is False:
            return None
        value = settings_dict(value, cls.KEYS)
        duration = value.get("MAX_DISCONNECTION_DURATION", 120_000)
        skip = value.get("SKIP_MIDDLEWARES", True)
        limit = value.get("MAX_BUFFER_BYTES", 16 * 1024 * 1024)
        for name, number in (("MAX_DISCONNECTION_DURATION", duration), ("MAX_BUFFER_BYTES", limit)):
            if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
                raise ValueError(f"{name} must be a positive whole number, not {number!r}")
        if not isinstance(skip, bool):
            raise TypeError("SKIP_MIDDLEWARES must be True or False")
        return cls(duration / 1000, skip, limit)
