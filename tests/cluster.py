"""A private Redis, several daphne processes sharing it, and a round-robin proxy in front."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.servers import ROOT, ServerProcess

ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if needle in line:
            return
        if not line and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited ({process.returncode}) before {needle!r}")
    raise RuntimeError(f"{process.args[0]} never printed {needle!r}")


class RedisServer:
    """redis-server on a free loopback port, in memory only; fails loudly when it cannot start."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.args = args  # more of redis-server's options: --replicaof HOST PORT
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def env(self) -> dict[str, str]:
        """What the servers, Celery and manage.py need to use it."""
        return {"REDIS_URL": self.url, "CELERY_BROKER_URL": self.url}

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for_line(self.process, "Ready to accept connections")
        _drain(self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered (a hung or blackholed Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def _drain(process: subprocess.Popen[str]) -> None:
    """Read what a server prints from now on, so that a full pipe never blocks it; the pipe is closed at its end."""

    def read() -> None:
        assert process.stdout is not None
        with process.stdout:
            for _ in process.stdout:
                pass

    threading.Thread(target=read, daemon=True).start()


SENTINEL_CONF = """port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {name} 127.0.0.1 {primary} 2
sentinel down-after-milliseconds {name} 1000
sentinel failover-timeout {name} 3000
sentinel parallel-syncs {name} 1
"""


class SentinelRedis:
    """A primary, its replica and three of Debian's redis-sentinel on free loopback ports (quorum 2).

    A primary silent for 1 s is down; the sentinels then promote the replica, which takes
    a few seconds. The servers find the primary through the sentinels (REDIS_SENTINELS).
    """

    NAME = "mymaster"

    def __init__(self) -> None:
        self.primary = RedisServer()
        self.replica = RedisServer("--replicaof", "127.0.0.1", str(self.primary.port))
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[str]] = []
        self._dir = tempfile.TemporaryDirectory(prefix="sentinel-")

    @property
    def env(self) -> dict[str, str]:
        sentinels = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return {"REDIS_SENTINELS": sentinels, "REDIS_SENTINEL_MASTER": self.NAME, "CELERY_BROKER_URL": "memory://"}

    def start(self) -> SentinelRedis:
        import redis

        self.primary.start()
        self.replica.start()
        replica = redis.Redis(port=self.replica.port)
        until(lambda: replica.info("replication").get("master_link_status") == "up", 15, "the replica never synced")
        for port in self.ports:
            conf = Path(self._dir.name) / f"sentinel-{port}.conf"
            conf.write_text(
                SENTINEL_CONF.format(port=port, dir=self._dir.name, name=self.NAME, primary=self.primary.port)
            )
            process = subprocess.Popen(
                ["redis-sentinel", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            wait_for_line(process, "monitor master")
            _drain(process)
            self.sentinels.append(process)
        for port in self.ports:  # each knows the replica and the two other sentinels: a failover can happen
            sentinel = redis.Redis(port=port)
            until(
                lambda s=sentinel: len(s.sentinel_slaves(self.NAME)) == 1 and len(s.sentinel_sentinels(self.NAME)) == 2,
                30,
                "the sentinels never found the replica and each other",
            )
        return self

    def primary_port(self) -> int:
        """The primary's port as the sentinels see it now."""
        import redis

        _, port = redis.Redis(port=self.ports[0]).sentinel_get_master_addr_by_name(self.NAME)
        return int(port)

    def kill_primary(self) -> None:
        self.primary.stop()

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.replica.stop()
        self.primary.stop()
        self._dir.cleanup()


def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll another process's state (no event to await) until ``condition()``; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(what)


class Proxy:
    def __init__(self, backends: list[str]) -> None:
        self.port = free_port()
        self.backends = backends
        self.process: subprocess.Popen[str] | None = None
        # a file, not the pipe read for "listening": lines nobody reads would fill the pipe and block the proxy
        self.log_path = ARTIFACTS / f"proxy-{os.getpid()}-{id(self)}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "proxy.py"), str(self.port), *self.backends],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        wait_for_line(self.process, "listening")
        return self

    def log(self) -> str:
        """What the proxy said on stderr: one line per 502, and any traceback."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


class Cluster:
    def __init__(
        self, size: int, env: dict[str, str] | None = None, redis: RedisServer | SentinelRedis | None = None
    ) -> None:
        self.redis = redis or RedisServer()
        self.servers: list[ServerProcess] = []
        self.size = size
        self.proxy: Proxy | None = None
        self.extra_env = env or {}

    @property
    def env(self) -> dict[str, str]:
        return {**self.redis.env, **self.extra_env}

    def start(self) -> Cluster:
        self.redis.start()
        app = "tests.asgi:application"
        self.servers = [ServerProcess("tests.settings", app=app, env=self.env).start() for _ in range(self.size)]
        self.proxy = Proxy([s.url for s in self.servers]).start()
        for server in self.servers:  # a first request makes each process join the cluster
            urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=10).read()
        for server in self.servers:  # all peers have heard each other
            server.wait_for_log(rf"(?s)(peer \S+ joined.*){{{self.size - 1}}}", timeout=15)
        return self

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env}
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def celery_worker(self, log_path: Path) -> subprocess.Popen[bytes]:
        """A real Celery worker process on the cluster's Redis (broker and channel layer)."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env}
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "--pool=solo", "-l", "info"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh interpreter configured like the servers (Django settings, Redis)."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **self.env}
        return subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for server in self.servers:
            server.stop()
        self.redis.stop()


def ensure_redis_installed(program: str = "redis-server") -> None:
    if not any((Path(p) / program).exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        raise RuntimeError(f"{program} is not installed: the cluster tests need it (.ci/run installs it with apt)")
