"""Three hosts that are really apart: Linux network namespaces joined by veth pairs and two bridges.

    clients (this namespace, 10.202.0.1) ── front bridge ── h1 (10.202.0.11)   h2 (10.202.0.12)
                                                            │                  │
    redis (10.201.0.10) ──────────────── back bridge ────── h1 (10.201.0.11)   h2 (10.201.0.12)

Each bridge lives in a namespace of its own, so nothing outside changes but one veth end in
the test's namespace (the clients' side). Every server process on a host runs in that host's
namespace (``ip netns exec``) and reaches Redis only over the back network; a client reaches
a host only over the front one. ``cut(host, network)`` takes that host's link down (its packets
are lost, nothing is refused: what a pulled cable or a partitioned switch does), ``mend`` puts it back.
The kernel here has no netem, so there is no added latency or loss: a link is up or down.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from tests.cluster import Proxy, until
from tests.servers import ServerProcess

BACK, FRONT = "10.201.0", "10.202.0"
REDIS_ADDRESS = f"{BACK}.10"
CLIENT_ADDRESS = f"{FRONT}.1"
HOSTS = {"h1": 11, "h2": 12}
PORTS = (8001, 8002)  # each host's two server processes: every namespace has its own ports


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def ensure_netns_possible() -> None:
    """Fail loudly, naming what is missing: root, and iproute2's ip (.ci/run installs it)."""
    if shutil.which("ip") is None:
        raise RuntimeError("ip (iproute2) is not installed: the hosts test needs it (.ci/run installs it with apt)")
    if os.geteuid() != 0:
        raise RuntimeError("the hosts test builds network namespaces: it must run as root, as CI does")


class Hosts:
    def __init__(self, settings: str = "tests.settings", env: dict[str, str] | None = None) -> None:
        self.tag = f"rt{os.getpid() % 100000}"  # namespaces and links of this run only
        self.settings = settings
        self.extra_env = env or {}
        self.redis: subprocess.Popen[bytes] | None = None
        self.servers: dict[str, list[ServerProcess]] = {}
        self.proxy: Proxy | None = None

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    @property
    def env(self) -> dict[str, str]:
        url = f"redis://{REDIS_ADDRESS}:6379/0"
        names = ",".join(["127.0.0.1", "localhost", *(f"{FRONT}.{last}" for last in HOSTS.values())])
        return {"REDIS_URL": url, "CELERY_BROKER_URL": url, "DJANGO_ALLOWED_HOSTS": names, **self.extra_env}

    # -- the networks ----------------------------------------------------------------------
    def build(self) -> Hosts:
        _clear_leftovers()
        for name in ("back", "front", "redis", *HOSTS):
            ip("netns", "add", self.ns(name))
            ip("-n", self.ns(name), "link", "set", "lo", "up")
        for bridge in ("back", "front"):
            ip("-n", self.ns(bridge), "link", "add", "br0", "type", "bridge")
            ip("-n", self.ns(bridge), "link", "set", "br0", "up")
        self._wire("redis", "back", REDIS_ADDRESS, "r")
        for host, last in HOSTS.items():
            self._wire(host, "back", f"{BACK}.{last}", f"b{last}")
            self._wire(host, "front", f"{FRONT}.{last}", f"f{last}")
        # the clients' end, here
        end = f"{self.tag}c"
        ip("link", "add", end, "type", "veth", "peer", "name", "pc", "netns", self.ns("front"))
        ip("-n", self.ns("front"), "link", "set", "pc", "master", "br0", "up")
        ip("addr", "add", f"{CLIENT_ADDRESS}/24", "dev", end)
        ip("link", "set", end, "up")
        return self

    def _wire(self, host: str, network: str, address: str, name: str) -> None:
        """A veth pair: ``name`` in the host's namespace with ``address``, its peer on the network's bridge."""
        ip(
            "link",
            "add",
            name,
            "netns",
            self.ns(host),
            "type",
            "veth",
            "peer",
            "name",
            f"p{name}",
            "netns",
            self.ns(network),
        )
        ip("-n", self.ns(network), "link", "set", f"p{name}", "master", "br0", "up")
        ip("-n", self.ns(host), "addr", "add", f"{address}/24", "dev", name)
        ip("-n", self.ns(host), "link", "set", name, "up")

    def cut(self, host: str, network: str) -> None:
        """Take ``host``'s link to ``network`` (back: Redis, front: the clients) down."""
        ip("-n", self.ns(host), "link", "set", self._link(host, network), "down")

    def mend(self, host: str, network: str) -> None:
        ip("-n", self.ns(host), "link", "set", self._link(host, network), "up")

    def _link(self, host: str, network: str) -> str:
        return f"{network[0]}{HOSTS[host]}"

    # -- what runs on them -------------------------------------------------------------------
    def start(self) -> Hosts:
        """Build the networks and start everything on them; on any failure, take it all down again."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Hosts:
        self.build()
        self.redis = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns("redis"),
                "redis-server",
                "--port",
                "6379",
                "--bind",
                REDIS_ADDRESS,
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for host in HOSTS:
            self.servers[host] = [self.server(host, port).start() for port in PORTS]
        for server in self.all():
            server.wait_for_log(r"Listening on TCP address", timeout=20)
        self.proxy = Proxy([server.url for server in self.all()]).start()
        for server in self.all():  # a first request makes each process join the cluster
            until(
                lambda s=server: _get(f"{s.url}/socket.io/?EIO=4&transport=polling"), 15, f"{server.url} never answered"
            )
        for server in self.all():
            server.wait_for_log(r"(?s)(peer \S+ joined.*){3}", timeout=15)
        return self

    def server(self, host: str, port: int) -> ServerProcess:
        address = f"{FRONT}.{HOSTS[host]}"
        return ServerProcess(
            self.settings, app="tests.asgi:application", env=self.env, netns=(self.ns(host), address, port)
        )

    def all(self) -> list[ServerProcess]:
        return [server for servers in self.servers.values() for server in servers]

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for server in self.all():
            server.stop()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait()
        subprocess.run(["ip", "link", "del", f"{self.tag}c"], capture_output=True, check=False)
        for name in ("back", "front", "redis", *HOSTS):
            subprocess.run(["ip", "netns", "del", self.ns(name)], capture_output=True, check=False)


def _clear_leftovers() -> None:
    """What a run killed before its teardown left: its namespaces (and what runs in them), its veth end here."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for name in re.findall(r"^(rt\d+-(?:back|front|redis|h1|h2))\b", listed, re.MULTILINE):
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout
        for pid in pids.split():
            subprocess.run(["kill", "-9", pid], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    links = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False).stdout
    for line in links.splitlines():
        if f" {CLIENT_ADDRESS}/24 " in line:
            subprocess.run(["ip", "link", "del", line.split()[1]], capture_output=True, check=False)


def _get(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
