"""Client addresses behind a proxy: noticing a proxy whose forwarded address nobody applies, and allow-lists.

realtime reads a client's address where Django does, from the ASGI server
(the scope's ``client``): the server is the one that knows which proxy it may
believe, and it rewrites the address from ``X-Forwarded-For`` when told to
(daphne ``--proxy-headers``, uvicorn and gunicorn ``--forwarded-allow-ips``).
When it is not told, every client behind the proxy arrives with the proxy's
address, and the per-address limits (MAX_CONNECTIONS_PER_IP,
HANDSHAKE_RATE_PER_IP) count them all together: after a deploy, most of a
site's reconnecting users are refused. That is easy to miss and easy to
notice: handshakes from a loopback or private address that carry an
``X-Forwarded-For`` naming other clients. ``ProxyWatch`` says so once, as an
ERROR naming the flag to set.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Iterable, Sequence

logger = logging.getLogger("realtime.engineio")

# A proxy is taken for untrusted after this many handshakes from it forwarded for this many clients.
SUSPECT_HANDSHAKES = 10
SUSPECT_CLIENTS = 2
# Addresses whose kind (private or not) is remembered; the rest are judged afresh.
KNOWN_ADDRESSES = 1024

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str] | None:
    """The addresses of every ``X-Forwarded-For`` header, in order; None when there is none."""
    found: list[str] | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            found = found if found is not None else []
            found.extend(part.strip() for part in value.decode("latin-1").split(",") if part.strip())
    return found


class ProxyWatch:
    """Counts handshakes that came through a proxy the ASGI server does not believe; warns once."""

    def __init__(self) -> None:
        self.untrusted: str | None = None  # the proxy's address, once it was reported
        self._private: dict[str, bool] = {}
        self._suspects: dict[str, tuple[int, set[str]]] = {}

    def handshake(self, address: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """A handshake from ``address`` (the ASGI server's idea of the client) with these headers."""
        if self.untrusted is not None:
            return
        forwarded = forwarded_for(headers)
        if not forwarded or address in forwarded or not self._is_private(address):
            return  # no proxy, a proxy the server believed (it took the address from the header), or a client
        count, clients = self._suspects.get(address, (0, set()))
        if len(clients) < SUSPECT_CLIENTS:
            clients.add(forwarded[-1])
        count += 1
        if count >= SUSPECT_HANDSHAKES and len(clients) >= SUSPECT_CLIENTS:
            self._report(address)
            return
        if len(self._suspects) < KNOWN_ADDRESSES or address in self._suspects:
            self._suspects[address] = (count, clients)

    def _is_private(self, address: str) -> bool:
        private = self._private.get(address)
        if private is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                private = False  # a Unix socket path, or nothing: not an address a proxy connects from
            else:
                private = ip.is_private or ip.is_loopback
            if len(self._private) < KNOWN_ADDRESSES:
                self._private[address] = private
        return private

    def _report(self, proxy: str) -> None:
        self.untrusted = proxy
        self._suspects.clear()
        logger.error(
            "Handshakes from %s carry X-Forwarded-For naming other clients, but the ASGI server does not apply "
            "it: every client behind that proxy shares the address %s, and MAX_CONNECTIONS_PER_IP and "
            "HANDSHAKE_RATE_PER_IP count them together (most of them will be refused). %s "
            "(README, Deploy and Operating). Said once per process.",
            proxy,
            proxy,
            fix_for_this_server(proxy),
        )


def fix_for_this_server(proxy: str) -> str:
    """The flag that makes the running ASGI server believe ``proxy``, this server's first."""
    fixes = {
        "daphne": "run daphne with --proxy-headers",
        "gunicorn": f"run gunicorn with --forwarded-allow-ips={proxy}",
        "uvicorn": f"run uvicorn with --proxy-headers --forwarded-allow-ips={proxy}",
    }
    first = running_server()
    ordered = [fixes[first]] if first else []
    ordered += [text for name, text in fixes.items() if name != first]
    return "Fix: " + "; or ".join(ordered) + "."


def running_server() -> str | None:
    """Which ASGI server loaded us, by the modules it imported (gunicorn runs uvicorn's worker)."""
    if "gunicorn.arbiter" in sys.modules or "gunicorn.workers" in sys.modules:
        return "gunicorn"
    for name in ("uvicorn", "daphne"):
        if f"{name}.server" in sys.modules:
            return name
    return None


def networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` as networks; ValueError names a bad entry (system check E014)."""
    parsed = []
    for entry in entries:
        try:
            parsed.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(parsed)


def allowed(addresses: Iterable[str], allow: Sequence[IPNetwork]) -> bool:
    """True when every address is inside one of ``allow`` (no address at all: False).

    A request is judged by the address the ASGI server gave it and by every address its
    ``X-Forwarded-For`` names: through a proxy whose header the server ignores the first is
    the proxy's own (often 127.0.0.1), and only the second is the client's.
    """
    seen = False
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if not any(ip in network for network in allow):
            return False
        seen = True
    return seen
